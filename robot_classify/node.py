"""`classify_node`: RGB-D in, `/object_labels` out. A thin rclpy shell around `FrameProcessor`.

Subscription callbacks only store messages (fast, never block the executor); a worker thread
takes the newest colour/depth pair, converts, classifies and publishes. Older pairs are
dropped and counted, so the node never falls behind the camera.

The callbacks are tiny, so one SingleThreadedExecutor thread serves them all: the
MultiThreadedExecutor's thread pool and futures cost more CPU than the callbacks themselves,
CPU the worker needs on a 2-core robot computer. (rclpy's experimental EventsExecutor in the
Jazzy wheels holds the GIL while it spins, which starves the worker: not used.)
"""
from __future__ import annotations

import gc
import json
import sys
import threading
import time
from collections import deque

import numpy as np
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data)
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import String
from visualization_msgs.msg import Marker, MarkerArray

from threadpoolctl import threadpool_limits

from .allocator import keep_frame_buffers
from .frame_processor import UNKNOWN, FrameProcessor, FrameSkipped
from .image_conversion import array_to_fields
from .patches import SegmentationParams
from .sync import StampSynchronizer
from .visualize import draw_objects, label_colour

SEGMENTATION_DEFAULTS = SegmentationParams()
# name -> (default, description, range or None, dynamic)
PARAMETERS = {
    "model_path": ("", "model file (.safetensors); empty = the embedded default model", None, False),
    "device": ("auto", "auto, cpu or cuda", None, False),
    "min_score": (0.5, "objects scoring below this are labelled 'unknown' (top_k kept)", (0.0, 1.0), True),
    "top_k": (3, "alternatives reported per object", (1, 1000), True),
    "k": (0, "kNN neighbours; 0 = the model's tuned k", (0, 1_000_000), True),
    "max_objects": (SEGMENTATION_DEFAULTS.max_objects, "objects per frame (largest first)", (1, 1000), False),
    "workers": (1, "frames processed at once; 2+ raise throughput when one frame takes longer than the "
                   "camera period (results older than one already published are dropped)", (1, 16), False),
    "sync_slop": (0.02, "max colour/depth stamp difference to pair, seconds", (0.0, 1.0), False),
    "qos.reliability": ("best_effort", "camera input QoS: best_effort (live camera) or reliable (bag replay)",
                        None, False),
    "segmentation.mode": (SEGMENTATION_DEFAULTS.mode, "depth, mask or full", None, False),
    "segmentation.min_depth": (SEGMENTATION_DEFAULTS.min_depth, "metres", (0.0, 20.0), False),
    "segmentation.max_depth": (SEGMENTATION_DEFAULTS.max_depth, "metres", (0.0, 20.0), False),
    "segmentation.min_height": (SEGMENTATION_DEFAULTS.min_height, "above the table, metres", (0.0, 5.0), False),
    "segmentation.max_height": (SEGMENTATION_DEFAULTS.max_height, "above the table, metres", (0.0, 5.0), False),
    "segmentation.grow_height": (SEGMENTATION_DEFAULTS.grow_height,
                                 "pixels above this height join an object reaching min_height, metres",
                                 (0.0, 5.0), False),
    "segmentation.min_area": (SEGMENTATION_DEFAULTS.min_area, "pixels", (1, 100_000_000), False),
    "segmentation.max_area": (SEGMENTATION_DEFAULTS.max_area, "pixels", (1, 100_000_000), False),
    "segmentation.depth_jump": (SEGMENTATION_DEFAULTS.depth_jump, "metres at 1 m between two objects", (0.001, 1.0),
                                False),
    "segmentation.crease": (SEGMENTATION_DEFAULTS.crease, "concave-crease cut between touching objects "
                            "(sag / chord); 0 = off", (0.0, 10.0), False),
    "segmentation.rejoin_colour": (SEGMENTATION_DEFAULTS.rejoin_colour, "pieces cut at a crease rejoin below this "
                                   "CIELAB colour distance", (0.0, 500.0), False),
    "segmentation.padding": (SEGMENTATION_DEFAULTS.padding, "crop padding per side (fraction)", (0.0, 2.0), False),
    "segmentation.scale": (SEGMENTATION_DEFAULTS.scale, "1 = full resolution, 2 = half (faster)", (1, 4), False),
    "segmentation.mask_background": (SEGMENTATION_DEFAULTS.mask_background, "grey out pixels outside the object",
                                     None, False),
}
NO_INPUT_WARN_S = 5.0


def _descriptor(name: str, description: str, rng, dynamic: bool) -> ParameterDescriptor:
    d = ParameterDescriptor(name=name, description=description, read_only=not dynamic)
    if isinstance(rng, tuple) and isinstance(rng[0], float):
        d.floating_point_range = [FloatingPointRange(from_value=rng[0], to_value=rng[1])]
    elif isinstance(rng, tuple):
        d.integer_range = [IntegerRange(from_value=rng[0], to_value=rng[1], step=1)]
    return d


def stamp_ns(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


class ClassifyNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("robot_classify", **kwargs)
        for name, (default, desc, rng, dynamic) in PARAMETERS.items():
            self.declare_parameter(name, default, _descriptor(name, desc, rng, dynamic))
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        seg = SegmentationParams(**{k.split(".", 1)[1]: v for k, v in p.items() if k.startswith("segmentation.")},
                                 max_objects=p["max_objects"])
        reliability = p["qos.reliability"]
        if reliability not in ("best_effort", "reliable"):
            raise ValueError(f"qos.reliability must be best_effort or reliable, got {reliability!r}")
        self.model = self._load_model(p["model_path"], p["device"])
        self.processor = FrameProcessor(self.model, seg, p["min_score"], min(p["top_k"], len(self.model.class_names)))
        if p["k"]:
            self.processor.set_thresholds(k=p["k"])
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.sync = StampSynchronizer(p["sync_slop"])
        self.mode = seg.mode
        self._info: CameraInfo | None = None  # latest
        self._infos: dict[int, CameraInfo] = {}  # recent, by stamp: the one taken with the image wins
        self._mask: tuple[int, Image] | None = None
        self._last_rx: dict[str, float] = {}
        self._rx_times: deque[float] = deque(maxlen=300)
        self._done_times: deque[float] = deque(maxlen=300)
        self._latency_ms: deque[float] = deque(maxlen=300)  # receipt of the colour image -> publish
        self._processing_ms: deque[float] = deque(maxlen=300)  # FrameProcessor alone
        self._skipped: dict[str, int] = {}
        self._last_warned: dict[str, float] = {}
        self._receipt: dict[int, float] = {}
        self._warned_qos: set[str] = set()
        self._started = time.monotonic()

        qos_in = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                            reliability=ReliabilityPolicy.BEST_EFFORT if reliability == "best_effort"
                            else ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
        self._qos_in = qos_in
        # No QoS event callbacks: each adds a waitable the executor rebuilds its wait set with on
        # every wake-up (30 Hz x 3 topics). `_check_inputs` finds incompatible publishers by polling.
        self.create_subscription(Image, "color/image_raw", self._on_colour, qos_in)
        self.create_subscription(Image, "depth/image_raw", self._on_depth, qos_in)
        self.create_subscription(CameraInfo, "color/camera_info", self._on_info, qos_in)
        self._topics = ["color/image_raw", "depth/image_raw", "color/camera_info"]
        if self.mode == "mask":
            self.create_subscription(Image, "mask/image_raw", self._on_mask, qos_in)
            self._topics.append("mask/image_raw")
        self.labels_pub = self.create_publisher(String, "object_labels", QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE))
        self.markers_pub = self.create_publisher(MarkerArray, "~/markers", 10)
        self.debug_pub = self.create_publisher(Image, "~/debug_image", qos_profile_sensor_data)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(1.0, self._guarded(self._publish_diagnostics))
        self.create_timer(1.0, self._guarded(self._check_inputs))
        self._stop = threading.Event()
        # Results go out in the order their pairs were taken (newest-first at the time), not by
        # stamp: stamps may jump back (a looped bag, a reset simulation clock).
        self._pop_lock, self._publish_lock = threading.Lock(), threading.Lock()
        self._popped = 0  # pairs taken by the workers
        self._last_published = 0  # the number of the pair published last
        self._late = 0  # results dropped because a pair taken later was published first
        self._workers = [threading.Thread(target=self._work, name=f"robot_classify_worker_{i}", daemon=True)
                         for i in range(p["workers"])]
        for w in self._workers:
            w.start()
        self.get_logger().info(
            f"ready: model {self.processor.model_info['name']} ({self.model.kind}, {len(self.model.class_names)} "
            f"classes), segmentation {self.mode}, input QoS {reliability}; publishing {self.labels_pub.topic_name}")

    # ----------------------------------------------------------------- setup
    def _load_model(self, path: str, device: str):
        from .default_model import get_default_model
        from .model_io import load_model

        if path:
            return load_model(path, device=device)
        self.get_logger().info("no model_path given: using the embedded default model (built on first use, "
                               "about 2-3 minutes, then cached)")
        return get_default_model(device=device, quiet=True)

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        changes = {}
        for prm in params:
            if prm.name not in ("min_score", "top_k", "k"):
                return SetParametersResult(successful=False, reason=f"{prm.name} cannot change at run time")
            changes[prm.name] = prm.value
        try:
            if changes.get("k") == 0:
                changes.pop("k")
            self.processor.set_thresholds(changes.get("min_score"), changes.get("top_k"), changes.get("k"))
        except (ValueError, TypeError) as e:
            return SetParametersResult(successful=False, reason=str(e))
        return SetParametersResult(successful=True)

    # ----------------------------------------------------------------- callbacks (fast)
    def _on_colour(self, msg: Image) -> None:
        now = time.monotonic()
        self._last_rx["color/image_raw"] = now
        self._rx_times.append(now)
        key = stamp_ns(msg.header)
        self._receipt[key] = now
        if len(self._receipt) > 100:
            for old in sorted(self._receipt)[:50]:
                self._receipt.pop(old, None)
        self.sync.add_colour(key, msg)

    def _on_depth(self, msg: Image) -> None:
        self._last_rx["depth/image_raw"] = time.monotonic()
        self.sync.add_depth(stamp_ns(msg.header), msg)

    def _on_info(self, msg: CameraInfo) -> None:
        self._last_rx["color/camera_info"] = time.monotonic()
        self._info = msg
        self._infos[stamp_ns(msg.header)] = msg
        while len(self._infos) > 30:
            self._infos.pop(next(iter(self._infos)))

    def _on_mask(self, msg: Image) -> None:
        self._last_rx["mask/image_raw"] = time.monotonic()
        self._mask = (stamp_ns(msg.header), msg)

    def _guarded(self, fn):
        """Timer callbacks log their errors instead of raising into the executor (an exception
        there ends spin() and with it the node)."""
        def run() -> None:
            try:
                fn()
            except Exception as e:  # noqa: BLE001
                self.get_logger().error(f"{fn.__name__}: {type(e).__name__}: {e}", throttle_duration_sec=10.0)
        return run

    # ----------------------------------------------------------------- worker
    def _skip(self, why: str, detail: str) -> None:
        """Count and warn, throttled per distinct problem (rclpy's throttle is per call site:
        one bad topic would hide every other problem)."""
        self._skipped[why] = self._skipped.get(why, 0) + 1
        now = time.monotonic()
        key = f"{why}: {detail}"
        if now - self._last_warned.get(key, -1e9) >= 5.0:
            if len(self._last_warned) > 1000:
                self._last_warned.clear()
            self._last_warned[key] = now
            self.get_logger().warning(f"frame skipped ({why}): {detail}")

    def _work(self) -> None:
        while not self._stop.is_set():
            with self._pop_lock:  # pop order = the order results may be published in
                pair = self.sync.pop_latest(timeout=0.1)
                self._popped += pair is not None
                seq = self._popped
            if pair is None:
                continue
            try:
                self._process(seq, *pair)
            except Exception as e:  # noqa: BLE001 -- one bad frame must never stop the node
                self._skip("error", f"{type(e).__name__}: {e}")

    def _camera_info_for(self, key: int) -> CameraInfo | None:
        """The camera_info stamped like the frame if it has arrived, else the latest one. Never
        waits: intrinsics of a running camera do not change, and one of another size than the
        image is refused (FrameProcessor) rather than used."""
        return self._infos.get(key, self._info)

    def _process(self, seq: int, key: int, colour_msg: Image, depth_msg: Image) -> None:
        mask_msg = self._mask[1] if self._mask is not None else None
        try:
            result = self.processor.process_messages(colour_msg, depth_msg, self._camera_info_for(key), mask_msg)
        except FrameSkipped as e:
            self._skip(e.reason, e.detail)
            return
        h = colour_msg.header
        self._processing_ms.append(result.ms)
        text = json.dumps(result.doc)
        with self._publish_lock:  # one frame at a time, in the order taken
            if seq < self._last_published:
                self._late += 1
                return
            self._last_published = seq
            self.labels_pub.publish(String(data=text))
            done = time.monotonic()  # latency = receipt -> /object_labels; markers are for people
            self._publish_markers(result.doc, h)
        received = self._receipt.pop(key, None)
        if received is not None:
            self._latency_ms.append((done - received) * 1000)
        self._done_times.append(done)
        if self.debug_pub.get_subscription_count() > 0:
            items = [((o["bbox"]["x_offset"], o["bbox"]["y_offset"], o["bbox"]["width"], o["bbox"]["height"]),
                      o["label"], o["score"]) for o in result.doc["objects"]]
            img = Image(header=h, **array_to_fields(draw_objects(result.colour, items), "rgb8"))
            self.debug_pub.publish(img)

    def _publish_markers(self, doc: dict, header) -> None:
        arr = MarkerArray()
        arr.markers.append(Marker(header=header, action=Marker.DELETEALL))
        for o in doc["objects"]:
            c = o["centroid"]
            if c is None:
                continue
            r, g, b = (v / 255.0 for v in label_colour(o["label"]))
            box = Marker(header=header, ns="objects", id=2 * o["instance"], type=Marker.CUBE, action=Marker.ADD)
            box.pose.position = Point(x=c["x"], y=c["y"], z=c["z"])
            box.pose.orientation.w = 1.0
            box.scale.x = box.scale.y = box.scale.z = 0.05
            box.color.r, box.color.g, box.color.b, box.color.a = r, g, b, 0.5
            text = Marker(header=header, ns="labels", id=2 * o["instance"] + 1, type=Marker.TEXT_VIEW_FACING,
                          action=Marker.ADD)
            text.pose.position = Point(x=c["x"], y=c["y"] - 0.06, z=c["z"])
            text.pose.orientation.w = 1.0
            text.scale.z = 0.03
            text.color.r = text.color.g = text.color.b = text.color.a = 1.0
            text.text = o["label"] if o["label"] == UNKNOWN else f"{o['label']} {o['score']:.2f}"
            arr.markers += [box, text]
        self.markers_pub.publish(arr)

    # ----------------------------------------------------------------- health
    @staticmethod
    def _rate(times: deque) -> float:
        now = time.monotonic()
        recent = [t for t in times if now - t <= 5.0]
        return len(recent) / 5.0

    def _publish_diagnostics(self) -> None:
        s = self.sync.stats
        lat = np.array(self._latency_ms) if self._latency_ms else np.zeros(1)
        proc = np.array(self._processing_ms) if self._processing_ms else np.zeros(1)
        in_rate, out_rate = self._rate(self._rx_times), self._rate(self._done_times)
        values = {
            "input_rate_hz": f"{in_rate:.1f}", "processed_rate_hz": f"{out_rate:.1f}",
            "dropped_pairs": str(s.dropped_pairs), "late_results": str(self._late),
            "unpaired_colour": str(s.unpaired_colour), "unpaired_depth": str(s.unpaired_depth),
            "skipped": json.dumps(self._skipped),
            "latency_p50_ms": f"{np.percentile(lat, 50):.1f}", "latency_p99_ms": f"{np.percentile(lat, 99):.1f}",
            "processing_p50_ms": f"{np.percentile(proc, 50):.1f}",
            "processing_p99_ms": f"{np.percentile(proc, 99):.1f}",
            "device": str(getattr(getattr(self.model.classifier, "index_", None), "device", "cpu")),
            "model": f"{self.processor.model_info['name']} {self.processor.model_info['sha256'][:12]}",
        }
        level, message = DiagnosticStatus.OK, "ok"
        if in_rate == 0:
            level, message = DiagnosticStatus.WARN, "no colour images in the last 5 s"
        elif self._skipped:
            level, message = DiagnosticStatus.OK, "running (some frames skipped, see 'skipped')"
        status = DiagnosticStatus(level=level, name=f"{self.get_name()}: pipeline", message=message,
                                  hardware_id="robot_classify",
                                  values=[KeyValue(key=k, value=v) for k, v in values.items()])
        arr = DiagnosticArray(status=[status])
        arr.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(arr)

    def _check_inputs(self) -> None:
        """Warn once per topic: silent for 5 s while publishers with incompatible QoS exist."""
        now = time.monotonic()
        if now - self._started < NO_INPUT_WARN_S:
            return
        for topic in self._topics:
            if topic in self._warned_qos or now - self._last_rx.get(topic, self._started) < NO_INPUT_WARN_S:
                continue
            name = self.resolve_topic_name(topic)
            bad = [i for i in self.get_publishers_info_by_topic(name)
                   if self._qos_in.reliability == ReliabilityPolicy.RELIABLE
                   and i.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT]
            if bad:
                self._warned_qos.add(topic)
                self.get_logger().warning(
                    f"nothing received on {name} for {NO_INPUT_WARN_S:.0f} s although {len(bad)} publisher(s) exist: "
                    f"they publish best_effort and this node subscribes reliable. Set qos.reliability:=best_effort.")

    def destroy_node(self) -> None:
        self._stop.set()
        for w in self._workers:
            w.join(timeout=2.0)
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    keep_frame_buffers()
    # One thread per step: the executor, DDS and the worker(s) already share the cores, and idle
    # OpenBLAS / OpenMP threads spin between calls (measured: ~1 core burnt at 30 Hz, p99 +6 ms).
    threadpool_limits(1)
    torch.set_num_threads(1)
    rclpy.init(args=args)
    try:
        node = ClassifyNode()
    except Exception as e:  # noqa: BLE001 -- a clear fatal line, not a traceback wall
        rclpy.logging.get_logger("robot_classify").fatal(f"cannot start: {type(e).__name__}: {e}")
        rclpy.try_shutdown()
        return 1
    node.processor.warm_up()  # first-use costs (OpenCV tables, allocations) before the first real frame
    gc.freeze()  # the model and ROS objects built so far never die: keep them out of every GC pass
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
