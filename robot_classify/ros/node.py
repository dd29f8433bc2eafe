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

import contextlib
import gc
import json
import re
import signal
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import ParameterNotDeclaredException
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data)
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import String
from std_srvs.srv import Trigger
from visualization_msgs.msg import Marker, MarkerArray

from ..runtime.allocator import keep_frame_buffers
from ..runtime.threads import set_node_threads
from ..runtime.cv_bridge_backend import load_bridge
from ..runtime.default_model import default_model_path, get_default_model
from ..runtime.frame_processor import UNKNOWN, FrameProcessor, FrameSkipped
from ..runtime.results import FrameLabels
from ..runtime.image_conversion import array_to_fields
from ..learn.model_io import is_model_file, load_model
from ..runtime.parameters import (NODE_NAME, PARAMETERS, ParameterError, ParameterSpec, check_parameters,
                                  check_value, unknown_parameter)
from ..runtime.stream_health import StampGapMonitor
from ..runtime.stamps import header_to_ns
from ..runtime.sync import StampSynchronizer
from ..runtime.teaching import Teacher, TeachStatus, default_save_path
from ..runtime.tracking import Tracker, TrackerParams
from ..runtime.visualize import draw_objects, label_color, track_color
from .vision_output import VisionOutput

_DIGITS = re.compile(r"\d+")
NO_INPUT_WARN_S = 5.0
LOSS_WARN = 0.10  # share of a camera stream's frames lost over HEALTH_WINDOW_S that earns a warning
COLOUR_FLOWS_S = 1.0  # colour received this recently: the stream is running (not ending)
FRAME_WARN_EVERY_S = 30.0  # a labelled frame's segmentation warning, at most this often in the log
HEALTH_WINDOW_S = 5.0  # rates in /diagnostics; loss must last this long to warn
LOSS_WINDOW_S = 10.0  # stamps the loss estimate looks at (a few frames even when most are lost)
MASK_WAIT_S = 0.25  # how long a frame waits for its mask (a segmenter publishes after the camera)
SPIN_WAKE_S = 0.5  # the executor's longest wait (main)
NO_EVENT_CALLBACKS = SubscriptionEventCallbacks(use_default_callbacks=False)  # see `_activate`
FIRST_INFO_WAIT_S = 0.25  # how long a frame waits for the first camera_info ever (_camera_info_for)
# With 2+ workers, how long a finished result waits for the older pairs still being worked on,
# so that results go out in order without being thrown away. Found from outside: dropping a
# result that finished first lost 10-15% of the frames on 2 busy cores, which one worker labelled
# whole. Past this wait it goes out, and the older one is dropped as late.
ORDER_WAIT_S = 0.5
RELIABILITY = {"reliable": ReliabilityPolicy.RELIABLE, "best_effort": ReliabilityPolicy.BEST_EFFORT}
# best_available is resolved by the node itself (`_best_available`), per topic, whenever publishers change.
PROFILE_FIX = ("export FASTRTPS_DEFAULT_PROFILES_FILE=<robot_classify share>/config/fastdds_large_images.xml for "
               "the camera driver (its shared-memory segments must fit a whole image), or make it publish reliable")


def _descriptor(name: str, spec: ParameterSpec, read_only: bool) -> ParameterDescriptor:
    """The ROS view of one entry of the shared table: ranges for `ros2 param describe`."""
    text = spec.description + (f" ({', '.join(map(str, spec.choices))})" if spec.choices else "")
    # on/off may arrive as YAML booleans, and a float as an integer (`min_score: 1` in a params file
    # or `ros2 param set ... min_score 1`; rclpy refused it, and at start the node died): check_value
    # turns them into the parameter's own type, and checks its range.
    d = ParameterDescriptor(name=name, description=text, read_only=read_only,
                            dynamic_typing=spec.on_off or isinstance(spec.default, float))
    if spec.range is not None and isinstance(spec.default, float):
        d.floating_point_range = [FloatingPointRange(from_value=spec.range[0], to_value=spec.range[1])]
    elif spec.range is not None:
        d.integer_range = [IntegerRange(from_value=spec.range[0], to_value=spec.range[1], step=1)]
    return d


class _ClassifyPipeline:
    """classify_node's work, whatever kind of rclpy node runs it: `ClassifyNode` (plain: configure
    and activate at start) and `ManagedClassifyNode` (lifecycle: a manager drives the same steps).

    configure: check the parameters, load the model, build the processor (`_configure`);
    activate: subscribe, publish, serve, start the workers (`_activate`); deactivate: stop the
    workers and release every subscription, publisher, service and timer (`_deactivate`, the
    model stays loaded); cleanup: release the model (`_cleanup`)."""

    processor: FrameProcessor | None = None
    tracker: Tracker | None = None  # set at configure with tracking.enabled
    vision: VisionOutput | None = None  # set while active with vision_msgs on (a parameter may change before that)
    _active = False

    # Managed: the parameters read at configure (model_path, segmentation, ...) may be set while
    # unconfigured, as lifecycle managers expect (a configure that failed on a bad model_path is
    # then fixed by setting it); the plain node configures at start, so they are read-only there.
    _static_while_unconfigured = False
    _next_track_id = 1  # the first track id of the next configuration (`_cleanup` keeps the count)
    _generation = 0  # activations so far: a worker's results count only in its own

    def _declare(self) -> None:
        # Values given at start (-p, a params file) pass through `_as_declared` too, before they are
        # declared: `min_score: 1` in a params file had read back as an INTEGER (a set at run time
        # already read back as a DOUBLE).
        overrides = getattr(self, "_parameter_overrides", None)
        if isinstance(overrides, dict):
            overrides.update((p.name, p) for p in self._as_declared(list(overrides.values())))
        for name, spec in PARAMETERS.items():
            writable = spec.dynamic or (self._static_while_unconfigured and name != "managed")
            self.declare_parameter(name, spec.default, _descriptor(name, spec, read_only=not writable))
        # A name given to this node (its params file section, -p) that it does not have is ignored
        # by rclpy without a word; a typo (min_scor) would leave the robot on the default.
        unknown = sorted(n for n in getattr(self, "_parameter_overrides", {})
                         if n not in PARAMETERS and not self.has_parameter(n) and not n.startswith("qos_overrides."))
        if unknown:
            self.get_logger().warning(f"parameters given to this node that it does not have, ignored: "
                                      f"{', '.join(unknown)} (a typo? see doc/parameters.md)")
        self.add_pre_set_parameters_callback(self._as_declared)
        self.add_on_set_parameters_callback(self._on_set_parameters)

    @staticmethod
    def _as_declared(params: list[Parameter]) -> list[Parameter]:
        """A value of another type that `check_value` accepts (`min_score 1`, a YAML `true` for an
        on/off switch) is stored as the parameter's own type: it had read back as an INTEGER
        (found from outside). Values it refuses pass unchanged, for `_on_set_parameters` to refuse."""
        out = []
        for prm in params:
            spec = PARAMETERS.get(prm.name)
            if spec is not None and (spec.on_off or isinstance(spec.default, float)):
                try:
                    prm = Parameter(prm.name, value=check_value(prm.name, prm.value))
                except (ParameterError, TypeError, ValueError):
                    pass
            out.append(prm)
        return out

    def _configure(self) -> None:
        """Parameters checked, model loaded, processor built; raises with a clear message."""
        # The checks replay-eval applies to a params file, so both refuse the same settings.
        p = check_parameters({name: self.get_parameter(name).value for name in PARAMETERS})
        VisionOutput.require(p["output.vision_msgs"])  # "on" without vision_msgs: fail before loading the model
        self._p = p
        self.model = self._load_model(p["model_path"], p["device"])
        processor = FrameProcessor.from_parameters(self.model, p)
        processor.bridge, why = load_bridge(lambda fields: Image(**fields))
        self.get_logger().info("images: cv_bridge (checked against the package's converter)" if processor.bridge
                               else f"images: the package's converter; {why}")
        self._model_path, self._save_path = p["model_path"], p["teach.save_path"]
        self.teacher = Teacher(processor, p["teach.timeout"], p["teach.jitter_crops"], p["teach.mirror"],
                               p["teach.occluded_crops"], p["teach.white_balance"],
                               on_done=self._publish_teach_status)
        self.sync = StampSynchronizer(p["sync_slop"])
        self._max_queue_wait = p["max_queue_wait"]
        self.mode = p["segmentation.mode"]
        self._transport = {"color/image_raw": p["input.transport.color"], "depth/image_raw": p["input.transport.depth"]}
        self._slop_ns = int(p["sync_slop"] * 1e9)
        self._reliability = p["qos.reliability"]
        # One tracker per node, updated at publish time in publish order (runtime/tracking.py).
        # Ids go on from the previous configuration's: an id never names two objects while the node runs.
        self.tracker = Tracker(TrackerParams.from_parameters(p), self._next_track_id) if p["tracking.enabled"] \
            else None
        self.processor = processor  # last: set means configured

    def _reset_state(self) -> None:
        """Per activation: what the callbacks, workers and health checks accumulate."""
        self._info: CameraInfo | None = None  # latest
        self._first_info = threading.Event()  # set by the first camera_info (see _camera_info_for)
        self._infos: dict[int, CameraInfo] = {}  # recent, by stamp: the one taken with the image wins
        self._masks: dict[int, Image] = {}  # recent, by stamp: a frame takes the mask stamped like it
        self._mask_arrived = threading.Condition()
        self._last_rx: dict[str, float] = {}
        # Worker threads append while the diagnostics timer reads: every access under one lock.
        self._stats_lock = threading.Lock()
        self._rx_times: deque[float] = deque(maxlen=300)
        self._done_times: deque[float] = deque(maxlen=300)
        self._latency_ms: deque[float] = deque(maxlen=300)  # receipt of the colour image -> publish
        self._processing_ms: deque[float] = deque(maxlen=300)  # FrameProcessor alone
        self._conversion_ms: deque[float] = deque(maxlen=300)  # ...before it: messages to arrays (decoding)
        self._waiting_ms: deque[float] = deque(maxlen=300)  # colour receipt -> a worker takes the pair
        self._health = {t: StampGapMonitor(LOSS_WINDOW_S) for t in ("color/image_raw", "depth/image_raw")}
        self._lossy_since: dict[str, float] = {}
        self._warned_loss: set[str] = set()
        self._skipped: dict[str, int] = {}
        self._last_skip: tuple[float, str] | None = None  # when, and "why: detail", of the latest skipped frame
        self._last_taken = -1e9  # when a worker last took a pair
        self._last_warned: dict[str, float] = {}
        self._receipt: dict[int, float] = {}
        self._warned_qos: set[str] = set()
        self._stall_logged: str | None = None  # the kind of reason last logged while nothing was labelled
        self._started = time.monotonic()
        self._colour_since: float | None = None  # when colour began to flow again after a silence
        # Frames labelled with a warning of the segmentation's (a blind depth camera: every one empty)
        self._last_clean = self._started  # the latest processed frame without one
        self._last_frame_warning: tuple[float, str] | None = None
        self.sync = StampSynchronizer(self._p["sync_slop"])  # no pair of a former activation is processed
        if self.tracker is not None:
            self.tracker.reset()  # objects seen before a deactivation may have moved since

    def _activate(self) -> None:
        """Subscriptions, publishers, the service, timers and workers; every one kept in
        `self._entities` so that `_deactivate` releases them all."""
        p = self._p
        self._reset_state()
        self._entities: list[tuple[Any, Any]] = []  # (destroy function, entity)

        # No QoS event callbacks, rclpy's default ones included (`_subscribe`): each adds a waitable
        # the executor rebuilds its wait set with on every wake-up (30 Hz x 3 topics), and the
        # default one logged "offering incompatible QoS. No messages will be received from it" three
        # times for a best-effort camera that best_available then heard (found from outside).
        # `_check_inputs` polls the publishers instead, and says what to set where it matters.
        image = {"raw": Image, "compressed": CompressedImage, "compressedDepth": CompressedImage}
        self._inputs = {"color/image_raw": (image[self._transport["color/image_raw"]], self._on_color),
                        "depth/image_raw": (image[self._transport["depth/image_raw"]], self._on_depth),
                        "color/camera_info": (CameraInfo, self._on_info)}
        if self.mode == "mask":
            self._inputs["mask/image_raw"] = (Image, self._on_mask)
        self._subs: dict[str, Any] = {}
        self._sub_reliability: dict[str, ReliabilityPolicy] = {}
        for topic in self._inputs:
            self._subscribe(topic, self._best_available(topic) if self._reliability == "best_available"
                            else RELIABILITY[self._reliability])
        self.labels_pub = self._keep(self.destroy_publisher, self.create_publisher(String, "object_labels", QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)))
        self.markers_pub = self._keep(self.destroy_publisher, self.create_publisher(MarkerArray, "~/markers", 10))
        self.debug_pub = self._keep(self.destroy_publisher,
                                    self.create_publisher(Image, "~/debug_image", qos_profile_sensor_data))
        self.diag_pub = self._keep(self.destroy_publisher, self.create_publisher(DiagnosticArray, "/diagnostics", 10))
        self.vision = VisionOutput.create(self, p["output.vision_msgs"])  # None: JSON only
        if self.vision is not None:
            for pub in (self.vision.pub_2d, self.vision.pub_3d, self.vision.pub_info):
                self._keep(self.destroy_publisher, pub)
        self._on_classes_changed()  # the first ~/label_info
        # Teaching: control topics reliable, keep last 10; the status is also kept for late joiners.
        control = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.teach_status_pub = self._keep(self.destroy_publisher, self.create_publisher(
            String, "~/teach/status", QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                                                 reliability=ReliabilityPolicy.RELIABLE,
                                                 durability=DurabilityPolicy.TRANSIENT_LOCAL)))
        self._keep(self.destroy_subscription,
                   self.create_subscription(String, "~/teach", self._guarded(self._on_teach), control))
        self._keep(self.destroy_subscription,
                   self.create_subscription(String, "~/forget", self._guarded(self._on_forget), control))
        self._keep(self.destroy_service, self.create_service(Trigger, "~/save_model", self._on_save_model))
        self._keep(self.destroy_timer, self.create_timer(1.0, self._guarded(self._publish_diagnostics)))
        self._keep(self.destroy_timer, self.create_timer(1.0, self._guarded(self._check_inputs)))
        self._stop = threading.Event()
        # Results go out in the order their pairs were taken from the queue (stamp order there),
        # not by comparing stamps here: stamps may jump back (a looped bag, a reset sim clock).
        self._pop_lock, self._publish_lock = threading.Lock(), threading.Lock()
        self._popped = 0  # pairs taken by the workers
        self._last_published = 0  # the number of the pair published last
        self._order = threading.Condition()  # pairs finished (published, skipped, failed): ...
        self._next_due, self._finished = 1, set()  # ... all below _next_due, and these beyond it
        self._late = 0  # results dropped: an older pair outlasted ORDER_WAIT_S while a newer one waited
        # labelled without valid depth: centroid null, left out of ~/detections_3d. Counted here, not
        # by the vision_msgs output, which a pip install without vision_msgs lacks (found from outside)
        self._no_depth = 0
        self._segmentation_scale: int | str = ""  # set per frame: what segmentation.scale 0 chose
        # Each worker keeps its activation's stop event and number: one that outlives the join at
        # deactivation (5 s) ends there and publishes nothing into the next activation (found in review).
        self._generation += 1
        self._workers = [threading.Thread(target=self._work, args=(self._stop, self._generation),
                                          name=f"robot_classify_worker_{i}", daemon=True)
                         for i in range(p["workers"])]
        for w in self._workers:
            w.start()
        self._active = True
        inputs = ", ".join(f"{self._wire_name(t)} [{self._inputs[t][0].__name__}]" for t in self._inputs)
        self.get_logger().info(
            f"ready: model {self.processor.model_name} ({self.model.kind}, {len(self.model.known_class_names)} "
            f"classes{' + unknown examples' if len(self.model.negative_classes) else ''}; features "
            f"{self.model.features.describe()}), segmentation {self.mode}, "
            f"input QoS {self._reliability}; inputs {inputs}; publishing {self.labels_pub.topic_name}")
        if (note := self.model.features.slow_engine_note()) is not None:
            self.get_logger().warning(note)

    def _keep(self, destroy, entity):
        self._entities.append((destroy, entity))
        return entity

    def _deactivate(self) -> None:
        """Workers stopped (a frame in progress finishes first), then every entity `_activate`
        made released: nothing is received, processed or published until the next activation."""
        if not self._active:
            return
        self._active = False
        # A request collecting views ends here, with its status while its topic still exists (found
        # from outside: one collecting at cleanup never had a last status, and one across a pause
        # took views from before and after it under one label).
        if self.teacher is not None and (status := self.teacher.cancel("the node was deactivated")) is not None:
            self._publish_teach_status(status, topic_open=True)
        self._stop.set()
        for w in self._workers:
            w.join(timeout=5.0)
        for destroy, entity in reversed(self._entities):
            destroy(entity)
        for sub in self._subs.values():
            self.destroy_subscription(sub)
        self._entities, self._subs, self.vision = [], {}, None

    def _cleanup(self) -> None:
        """The model and everything built from it released (configure loads them again)."""
        if self.tracker is not None:
            self._next_track_id = self.tracker.next_id
        self.processor = self.model = self.teacher = self.sync = self.tracker = None
        gc.collect()

    # ----------------------------------------------------------------- setup
    def _wire_name(self, topic: str) -> str:
        """The full name an input is taken from: the topic as remapped, and for a compressed
        transport image_transport's `<topic>/compressed` or `<topic>/compressedDepth` beside it
        (remapping the raw topic moves its transports too, as with image_transport)."""
        transport = getattr(self, "_transport", {}).get(topic, "raw")
        name = self.resolve_topic_name(topic)
        return name if transport == "raw" else f"{name}/{transport}"

    def _subscribe(self, topic: str, reliability: ReliabilityPolicy) -> None:
        if topic in self._subs:
            self.destroy_subscription(self._subs[topic])
        msg_type, callback = self._inputs[topic]
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=reliability,
                         durability=DurabilityPolicy.VOLATILE)
        self._subs[topic] = self.create_subscription(msg_type, self._wire_name(topic), callback, qos,
                                                     event_callbacks=NO_EVENT_CALLBACKS)
        self._sub_reliability[topic] = reliability

    def _best_available(self, topic: str) -> ReliabilityPolicy:
        """Reliable unless a publisher is best effort: what the middleware's BEST_AVAILABLE does,
        except that it decides once, when the subscription is made, so a node started before its
        camera stays reliable and never hears a best-effort driver. The node decides again
        whenever the publishers change (`_check_inputs`)."""
        pubs = self.get_publishers_info_by_topic(self._wire_name(topic))
        if any(i.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for i in pubs):
            return ReliabilityPolicy.BEST_EFFORT
        return ReliabilityPolicy.RELIABLE

    def _match_publishers(self) -> None:
        for topic in self._inputs:
            wanted = self._best_available(topic)
            if wanted != self._sub_reliability[topic]:
                self.get_logger().info(f"{self._wire_name(topic)}: publishers are now "
                                       f"{'best effort' if wanted == ReliabilityPolicy.BEST_EFFORT else 'reliable'}; "
                                       "subscribing to match (qos.reliability: best_available)")
                self._subscribe(topic, wanted)

    def _load_model(self, path: str, device: str):
        if path:
            return load_model(path, device=device)
        self.get_logger().info(f"no model_path given: using the embedded default model {default_model_path()}")
        return get_default_model(device=device)

    def set_parameters_atomically(self, parameter_list: list[Parameter]) -> SetParametersResult:
        """rclpy's parameter services call this and answer an undeclared name with the exception's
        repr, `('Invalid access to undeclared parameter(s)', 'min_scor')`; `ros2 param set` then
        prints that. The answer names the nearest parameter instead. In-process callers of
        `set_parameters` still get rclpy's exception."""
        try:
            return super().set_parameters_atomically(parameter_list)
        except ParameterNotDeclaredException as e:
            name = next((p.name for p in parameter_list if not self.has_parameter(p.name)), None)
            return SetParametersResult(successful=False, reason=str(e) if name is None else unknown_parameter(name))

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        changes = {}
        for prm in params:
            if prm.name not in PARAMETERS or prm.name == "managed":
                return SetParametersResult(successful=False, reason=f"{prm.name} cannot change at run time")
            if not PARAMETERS[prm.name].dynamic and not (self._static_while_unconfigured and self.processor is None):
                reason = (f"{prm.name} is read at configure: it can change only while unconfigured (cleanup, set "
                          "it, configure)" if self._static_while_unconfigured else
                          f"{prm.name} cannot change at run time")
                return SetParametersResult(successful=False, reason=reason)
            try:
                changes[prm.name] = check_value(prm.name, prm.value)
            except ParameterError as e:
                return SetParametersResult(successful=False, reason=str(e))
        if self.processor is None:  # unconfigured (managed): configure reads the checked values
            return SetParametersResult(successful=True)
        tracking = {k.split(".", 1)[1]: v for k, v in changes.items() if k.startswith("tracking.")}
        try:  # k = 0 restores the model's tuned k
            if tracking and self.tracker is not None:  # validated before anything else changes
                TrackerParams(**{**vars(self.tracker.params), **tracking})
            self.processor.set_thresholds(changes.get("min_score"), changes.get("top_k"), changes.get("k"))
            if "size_check" in changes:
                self.processor.size_check = bool(changes["size_check"])
            if "pose_check" in changes:
                self.processor.pose_check = bool(changes["pose_check"])
            if tracking and self.tracker is not None:
                self.tracker.set_params(**tracking)
        except (ValueError, TypeError) as e:
            return SetParametersResult(successful=False, reason=str(e))
        if "min_score" in changes:  # LabelInfo.threshold says the min_score in force
            self._on_classes_changed()
        return SetParametersResult(successful=True)

    # ----------------------------------------------------------------- callbacks (fast)
    def _on_color(self, msg: Image, info: dict) -> None:
        now = time.monotonic()
        if now - self._last_rx.get("color/image_raw", -1e9) >= NO_INPUT_WARN_S:
            self._colour_since = now
        self._last_rx["color/image_raw"] = now
        self._warned_qos.discard("color/image_raw")  # a later silence is news again
        key = header_to_ns(msg.header)
        with self._stats_lock:
            self._rx_times.append(now)
        self._health["color/image_raw"].add(now, key, info.get("publication_sequence_number"))
        self._receipt[key] = now
        if len(self._receipt) > 100:
            for old in sorted(self._receipt)[:50]:
                self._receipt.pop(old, None)
        self.sync.add_color(key, msg)

    def _on_depth(self, msg: Image, info: dict) -> None:
        now = self._last_rx["depth/image_raw"] = time.monotonic()
        self._warned_qos.discard("depth/image_raw")
        key = header_to_ns(msg.header)
        self._health["depth/image_raw"].add(now, key, info.get("publication_sequence_number"))
        self.sync.add_depth(key, msg)

    def _on_info(self, msg: CameraInfo) -> None:
        self._last_rx["color/camera_info"] = time.monotonic()
        self._warned_qos.discard("color/camera_info")
        self._info = msg
        self._first_info.set()
        self._infos[header_to_ns(msg.header)] = msg
        while len(self._infos) > 30:
            self._infos.pop(next(iter(self._infos)))

    def _on_mask(self, msg: Image) -> None:
        self._last_rx["mask/image_raw"] = time.monotonic()
        self._warned_qos.discard("mask/image_raw")
        with self._mask_arrived:
            self._masks[header_to_ns(msg.header)] = msg
            while len(self._masks) > 30:
                self._masks.pop(next(iter(self._masks)))
            self._mask_arrived.notify_all()

    def _mask_for(self, key: int) -> Image | None:
        """The mask stamped like the frame (nearest within sync_slop), waiting briefly for it: a
        mask from another frame would put its objects where this frame has none."""
        def find() -> Image | None:
            near = [(abs(k - key), k) for k in self._masks if abs(k - key) <= self._slop_ns]
            return self._masks[min(near)[1]] if near else None
        with self._mask_arrived:
            found = self._mask_arrived.wait_for(find, MASK_WAIT_S)
        if found is None:
            raise FrameSkipped("no mask", f"no mask/image_raw stamped within sync_slop of the frame "
                                          f"({key / 1e9:.3f} s) arrived within {MASK_WAIT_S} s")
        return found

    def _guarded(self, fn):
        """Timer and subscription callbacks log their errors instead of raising into the
        executor (an exception there ends spin() and with it the node)."""
        def run(*msg) -> None:
            try:
                fn(*msg)
            except Exception as e:  # noqa: BLE001
                self.get_logger().error(f"{fn.__name__}: {type(e).__name__}: {e}", throttle_duration_sec=10.0)
        return run

    # ----------------------------------------------------------------- teaching
    def _publish_teach_status(self, status: TeachStatus, topic_open: bool = False) -> None:
        """On ~/teach/status and in the log. A teach applied in the background may finish while
        the node deactivates: its publisher is gone then (0.7.0 raised in the teach thread and the
        result was lost), so the log alone says it. `topic_open`: deactivating, the publisher not
        yet released."""
        try:
            if not (self._active or topic_open):
                raise RuntimeError("inactive")
            self.teach_status_pub.publish(String(data=json.dumps(status.to_doc())))
        except Exception:  # noqa: BLE001 -- rclpy's InvalidHandle once the publisher is destroyed
            self.get_logger().info(f"{status.action} {status.label!r} {status.state} while the node was not active: "
                                   "not on ~/teach/status")
        if status.state == "failed":
            self.get_logger().warning(f"{status.action} {status.label!r} failed: {status.reason}")
        elif status.state == "done":
            done = ("forgot" if status.action == "forget" else "taught") + f" {status.label!r}"
            classes = status.known_classes
            proc = self.processor  # None once a cleanup released it while the teach was applied
            held = ("its examples removed" if status.action == "forget"  # n_samples: what is left, 0 (it read "forgot 'x': 0 examples")
                    else f"{status.n_samples} examples of it now")
            self.get_logger().info(f"{done}: {held}; classes now {len(classes)}; model "
                                   f"{proc.model_sha256[:12] if proc is not None else '(released at cleanup)'}")
            if status.reason:  # what teaching took in its own frame (`Teacher._after_note`)
                self.get_logger().warning(f"{done}, but: {status.reason}")
            if self._active:
                self._on_classes_changed()

    def _on_classes_changed(self) -> None:
        """The class set changed (a teach or forget finished): outputs that carry the class list
        announce the new one here. ~/label_info (transient local) gets the classes and the
        min_score in force; nothing without vision_msgs."""
        if self.vision is None:
            return
        with self.processor.model_lock.reading():
            names = list(self.processor.model.class_names)
            min_score = self.processor.min_score
            if min_score < 0:  # -1: the model's own default is in force
                min_score = float(getattr(self.processor.model, "default_min_score", 0.0))
        self.vision.publish_label_info(names, min_score)

    def _on_teach(self, msg: String) -> None:
        status = self.teacher.request(msg.data)
        self._publish_teach_status(status)
        if status.state == "collecting":
            self.get_logger().info(f"teaching {status.label!r}: collecting {status.views_wanted} views")

    def _on_forget(self, msg: String) -> None:
        status = self.teacher.forget(msg.data)
        if status.state == "done" and self.tracker is not None:  # no track keeps publishing it as fused_label
            self.tracker.forget(status.label)
        self._publish_teach_status(status)

    def _check_teach_timeout(self) -> None:
        status = self.teacher.check_timeout()
        if status is not None:
            self._publish_teach_status(status)

    def _on_save_model(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        path = self._save_path or str(default_save_path(self._model_path))
        try:  # every check of the path too: a name too long for the file system raises in exists()
            out, replaced = self._save_to(path)
        except Exception as e:  # noqa: BLE001 -- an unwritable path is an answer, not a crash
            response.success, response.message = False, f"could not save the model to {path}: {type(e).__name__}: {e}"
            self.get_logger().warning(response.message)
            return response
        response.success = True
        response.message = (f"saved {out}{' (replaced the file that was there)' if replaced else ''} "
                            f"({len(self.model.known_class_names)} classes, sha256 {self.processor.model_sha256}); "
                            f"restart with model_path:={out}")
        self.get_logger().info(response.message)
        return response

    def _save_to(self, path: str) -> tuple[Path, bool]:
        """Write the running model to `path` (`~` expanded; relative to the node's working folder,
        reported absolute): (where, whether a file was replaced). A folder that does not exist
        is an error for teach.save_path (a typo would otherwise create it); the default path's
        cache folder is created."""
        target = Path(path).expanduser().absolute()
        start = Path(self._model_path).expanduser() if self._model_path else default_model_path()
        if target.resolve() == start.resolve():
            # the file a restart would fall back to stays as it was (found from outside: the
            # embedded default, model_path empty, was replaced)
            which = "the model this node started from (model_path)" if self._model_path else \
                "the embedded default model, which this node started from"
            raise ValueError(f"{target} is {which}; set teach.save_path to another file")
        if target.is_dir():
            raise ValueError(f"{target} is a folder; teach.save_path names a file (e.g. {target / 'taught.safetensors'})")
        if target.exists() and not is_model_file(target):
            raise ValueError(f"{target} exists and is not a robot_classify model: teach.save_path replaces only a "
                             "model file; name a new file, or move that one away")
        if self._save_path and not target.parent.is_dir():
            raise ValueError(f"the folder {target.parent} does not exist; create it, or set teach.save_path to a "
                             "file in a folder that does")
        replaced = target.exists()
        return self.teacher.save(target), replaced

    # ----------------------------------------------------------------- worker
    def _skip(self, why: str, detail: str) -> None:
        """Count and warn, throttled per distinct problem (rclpy's throttle is per call site:
        one bad topic would hide every other problem). Numbers do not make a problem distinct:
        a stamp or a byte count that changes every frame had defeated the throttle."""
        self._skipped[why] = self._skipped.get(why, 0) + 1
        now = time.monotonic()
        self._last_skip = (now, f"{why}: {detail}")
        self._warn_throttled(f"{why}: {detail}", f"frame skipped ({why}): {detail}", now)

    def _warn_throttled(self, problem: str, text: str, now: float, every_s: float = 5.0) -> None:
        """One warning per distinct problem every `every_s` (numbers in it do not make it distinct)."""
        key = _DIGITS.sub("#", problem)
        if now - self._last_warned.get(key, -1e9) >= every_s:
            if len(self._last_warned) > 1000:
                self._last_warned.clear()
            self._last_warned[key] = now
            self.get_logger().warning(text)

    def _frame_warned(self, warning: str | None) -> None:
        """A labelled frame's segmentation warning (no valid depth, no support plane): said in the
        log (throttled) and in the diagnostics while no frame comes without one. Found from outside:
        an all-zero depth stream gave empty frames while /diagnostics said "ok"."""
        now = time.monotonic()
        if warning is None:
            self._last_clean = now
            return
        self._last_frame_warning = (now, warning)
        self._warn_throttled(f"frame: {warning}", f"frames labelled without objects: {warning}"
                             + (" (is the depth camera blind, or the depth topic another's?)"
                                if warning.startswith("no valid depth") else ""), now, FRAME_WARN_EVERY_S)

    def _work(self, stop: threading.Event, gen: int) -> None:
        while not stop.is_set():
            with self._pop_lock:  # pop order = the order results may be published in
                pair = self.sync.pop_next(timeout=0.1, max_wait=self._max_queue_wait)
                self._popped += pair is not None
                seq, taken = self._popped, time.monotonic()
                if pair is not None:
                    self._last_taken = taken  # a pair a worker has begun (diagnostics: slow, not starved)
            if pair is None:
                continue
            try:
                self._process(seq, taken, *pair, gen=gen)
            except Exception as e:  # noqa: BLE001 -- one bad frame must never stop the node
                if not self.context.ok():  # Ctrl-C shut the context while this frame was published:
                    return  # no frame error (it had read "frame skipped (error): ... context is invalid")
                self._skip("error", f"{type(e).__name__}: {e}")
            finally:
                self._finish(seq, gen)

    def _finish(self, seq: int, gen: int | None = None) -> None:
        """Pair `seq` needs nothing more from the publish order (published, skipped or failed):
        newer results waiting for it may go (`_await_turn`). Twice is harmless; so is a worker of
        an earlier activation (`gen`)."""
        with self._order:
            if gen in (None, self._generation) and seq >= self._next_due:
                self._finished.add(seq)
                self._advance()

    def _published(self, seq: int) -> None:
        """Pair `seq` went out: every older one still being worked on is late now (it will be
        dropped), so nothing newer waits for it. Without this, one slow frame made each newer
        result wait the whole ORDER_WAIT_S (found in review)."""
        with self._order:
            if seq >= self._next_due:
                self._next_due = seq + 1
                self._finished = {f for f in self._finished if f > seq}
                self._advance()

    def _advance(self) -> None:
        """Under `_order`: past the finished pairs that follow `_next_due`; wakes the waiters."""
        while self._next_due in self._finished:
            self._finished.discard(self._next_due)
            self._next_due += 1
        self._order.notify_all()

    def _await_turn(self, seq: int) -> None:
        """Until every older pair is finished, at most ORDER_WAIT_S (one worker: at once)."""
        with self._order:
            self._order.wait_for(lambda: self._next_due >= seq, timeout=ORDER_WAIT_S)

    def _camera_info_for(self, key: int) -> CameraInfo | None:
        """The camera_info stamped like the frame if it has arrived, else the latest one: intrinsics
        of a running camera do not change, and one of another size than the image is refused
        (FrameProcessor) rather than used. Waits only for the very first camera_info, at most
        FIRST_INFO_WAIT_S: the first frame's images may overtake their small camera_info on
        another topic, and without any the frame could only be skipped."""
        if self._info is None and self.mode == "depth":
            self._first_info.wait(FIRST_INFO_WAIT_S)
        return self._infos.get(key, self._info)

    def _process(self, seq: int, taken: float, key: int, color_msg: Image, depth_msg: Image,
                 gen: int | None = None) -> None:
        try:
            mask_msg = self._mask_for(key) if self.mode == "mask" else None
            result = self.processor.process_messages(color_msg, depth_msg, self._camera_info_for(key), mask_msg)
        except FrameSkipped as e:
            self._skip(e.reason, e.detail)
            return
        h = color_msg.header
        if gen not in (None, self._generation):  # a frame of an earlier activation
            return
        self._await_turn(seq)
        with self._publish_lock:  # one frame at a time, in the order taken
            if gen not in (None, self._generation):
                return
            if seq < self._last_published:  # an older pair that outlasted ORDER_WAIT_S
                self._late += 1
                return
            self._last_published = seq
            if self.tracker is not None:  # here: tracks advance in publish (stamp) order, whatever the workers
                result.labels = self.tracker.update(result.labels)
            self.labels_pub.publish(String(data=json.dumps(result.labels.to_doc())))
            self._no_depth += sum(o.centroid is None for o in result.labels.objects)
            done = time.monotonic()  # latency = receipt -> /object_labels; markers are for people
            if self.vision is not None:  # same frames, same order as /object_labels
                self.vision.publish(result.labels, h, self.tracker is not None)
            if self.markers_pub.get_subscription_count() > 0:  # built only for a viewer (~1 ms a frame)
                self._publish_markers(result.labels, h)
        self._published(seq)  # the next result may go while this one's bookkeeping runs
        self._record(done, self._receipt.pop(key, None), result.ms, taken, result.stages_ms.get("conversion", 0.0))
        self._frame_warned(result.extraction.warning)
        self._segmentation_scale = result.extraction.scale
        if self.teacher.collecting:
            for status in self.teacher.offer(result):
                self._publish_teach_status(status)
        if self.debug_pub.get_subscription_count() > 0:
            items = [(o.bbox, o.label, o.score) if o.track is None else
                     (o.bbox, f"{o.track.label} #{o.track.id}", o.track.score) for o in result.labels.objects]
            img = Image(header=h, **array_to_fields(draw_objects(result.color, items), "rgb8"))
            self.debug_pub.publish(img)

    def _record(self, done: float, received: float | None, processing_ms: float, taken: float,
                conversion_ms: float = 0.0) -> None:
        """Worker threads record here while the diagnostics timer reads: one lock for both.
        latency (receipt -> publish) = waiting (for the depth image and a free worker) + conversion
        (messages to arrays: decoding a compressed image) + processing + publishing."""
        with self._stats_lock:
            self._processing_ms.append(processing_ms)
            self._conversion_ms.append(conversion_ms)
            if received is not None:
                self._latency_ms.append((done - received) * 1000)
                self._waiting_ms.append((taken - received) * 1000)
            self._done_times.append(done)

    def _publish_markers(self, labels: FrameLabels, header) -> None:
        arr = MarkerArray()
        arr.markers.append(Marker(header=header, action=Marker.DELETEALL))
        for o in labels.objects:
            if o.centroid is None:
                continue
            x, y, z = o.centroid
            # Tracked: the colour is the track's and the text its fused label (a flicker of one frame shows nowhere).
            r, g, b = (v / 255.0 for v in (label_color(o.label) if o.track is None else track_color(o.track.id)))
            label, score = (o.label, o.score) if o.track is None else (o.track.label, o.track.score)
            mid = o.instance if o.track is None else o.track.id  # RViz keeps a marker of the same id in place
            box = Marker(header=header, ns="objects", id=2 * mid, type=Marker.CUBE, action=Marker.ADD)
            box.pose.position = Point(x=x, y=y, z=z)
            box.pose.orientation.w = 1.0
            # the visible surface's extent along the camera axes (at least 1 cm: a flat label still shows)
            box.scale.x, box.scale.y, box.scale.z = (max(0.01, v) for v in (o.extent or (0.05, 0.05, 0.05)))
            box.color.r, box.color.g, box.color.b, box.color.a = r, g, b, 0.5
            text = Marker(header=header, ns="labels", id=2 * mid + 1, type=Marker.TEXT_VIEW_FACING,
                          action=Marker.ADD)
            text.pose.position = Point(x=x, y=y - box.scale.y / 2 - 0.02, z=z)  # above the box (y points down)
            text.pose.orientation.w = 1.0
            text.scale.z = 0.03
            text.color.r = text.color.g = text.color.b = text.color.a = 1.0
            text.text = label if label == UNKNOWN else f"{label} {score:.2f}"
            if o.track is not None:
                text.text += f" #{o.track.id}"
            arr.markers += [box, text]
        self.markers_pub.publish(arr)

    # ----------------------------------------------------------------- health
    @staticmethod
    def _rate(times: list[float], now: float) -> float:
        return sum(now - t <= HEALTH_WINDOW_S for t in times) / HEALTH_WINDOW_S

    def _publish_diagnostics(self) -> None:
        s = self.sync.stats
        now = time.monotonic()
        with self._stats_lock:  # snapshot: worker threads keep appending
            rx, done = list(self._rx_times), list(self._done_times)
            lat = np.array(self._latency_ms or [0.0])
            proc = np.array(self._processing_ms or [0.0])
            wait = np.array(self._waiting_ms or [0.0])
            conv = np.array(self._conversion_ms or [0.0])
        in_rate, out_rate = self._rate(rx, now), self._rate(done, now)
        health = {t: m.health(now) for t, m in self._health.items()}
        values = {
            "input_rate_hz": f"{in_rate:.1f}", "processed_rate_hz": f"{out_rate:.1f}",
            "dropped_pairs": str(s.dropped_pairs), "late_results": str(self._late),
            "unpaired_colour": str(s.unpaired_colour), "unpaired_depth": str(s.unpaired_depth),
            "skipped": json.dumps(self._skipped),
            "latency_p50_ms": f"{np.percentile(lat, 50):.1f}", "latency_p99_ms": f"{np.percentile(lat, 99):.1f}",
            "processing_p50_ms": f"{np.percentile(proc, 50):.1f}",
            "processing_p99_ms": f"{np.percentile(proc, 99):.1f}",
            "waiting_p50_ms": f"{np.percentile(wait, 50):.1f}", "waiting_p99_ms": f"{np.percentile(wait, 99):.1f}",
            # found from outside: 1280x720 JPEG + PNG cost 13 ms a frame that no figure here showed
            "conversion_p50_ms": f"{np.percentile(conv, 50):.1f}",
            "conversion_p99_ms": f"{np.percentile(conv, 99):.1f}",
            "device": str(getattr(getattr(self.model.classifier, "index_", None), "device", "cpu")),
            "model": f"{self.processor.model_name} {self.processor.model_sha256[:12]}",
            "vision_msgs": "off" if self.vision is None else "on",
            # the grid the latest frame was segmented on (segmentation.scale 0 chooses it by image width)
            "segmentation_scale": str(self._segmentation_scale),
            # objects in /object_labels without valid depth, so not in ~/detections_3d
            "objects_without_depth": str(self._no_depth),
        }
        for topic, hs in health.items():
            short = topic.split("/")[0]
            values[f"{short}_received_hz"] = f"{hs.received_hz:.1f}"
            values[f"{short}_camera_hz_estimated"] = "" if hs.camera_hz is None else f"{hs.camera_hz:.1f}"
            values[f"{short}_loss_estimated"] = "" if hs.loss is None else f"{hs.loss:.3f}"
            values[f"{short}_publishers"] = str(self.count_publishers(self._wire_name(topic)))  # several: often no estimate
        lossy = {t: hs for t, hs in health.items() if t in self._lossy_since and hs.loss is not None}
        level, message = DiagnosticStatus.OK, "ok"
        if out_rate > 0:
            self._stall_logged = None  # labelling again: a later stall is news
        if in_rate == 0:
            hint = self._transport_hint()
            level, message = DiagnosticStatus.WARN, "no colour images in the last 5 s" + hint
            if hint:  # images arrive, on the other transport: say it once in the log too
                self._log_stall("transport", message)
        elif out_rate == 0 and now - self._started >= HEALTH_WINDOW_S:
            level, message = DiagnosticStatus.WARN, self._why_nothing_labelled(in_rate, now)
        elif lossy:
            level = DiagnosticStatus.WARN
            message = "; ".join(f"{self._wire_name(t)} loses {hs.loss:.0%} of frames (received "
                                f"{hs.received_hz:.1f} Hz, camera ~{hs.camera_hz:.1f} Hz)" for t, hs in lossy.items())
        elif (self._last_frame_warning is not None and now - self._last_frame_warning[0] <= HEALTH_WINDOW_S
              and now - self._last_clean > HEALTH_WINDOW_S):
            level = DiagnosticStatus.WARN
            message = f"every frame labelled in the last 5 s warns: {self._last_frame_warning[1]}"
        elif self._last_skip is not None and now - self._last_skip[0] <= HEALTH_WINDOW_S:  # not since the start
            level, message = DiagnosticStatus.OK, "running (frames skipped in the last 5 s, see 'skipped')"
        status = DiagnosticStatus(level=level, name=f"{self.get_name()}: pipeline", message=message,
                                  hardware_id="robot_classify",
                                  values=[KeyValue(key=k, value=v) for k, v in values.items()])
        arr = DiagnosticArray(status=[status])
        arr.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(arr)

    def _why_nothing_labelled(self, in_rate: float, now: float) -> str:
        """Colour arrives, nothing goes out: the latest skipped frame's reason, else the input
        that is missing (a depth topic remapped wrong pairs nothing and skips nothing). Frames
        that never pair are also logged (`_log_stall`): nothing else in the log says so."""
        head = f"colour images arrive ({in_rate:.1f} Hz) but no frame was labelled in the last 5 s"
        if self._last_skip is not None and now - self._last_skip[0] <= HEALTH_WINDOW_S:
            return f"{head}: frames skipped ({self._last_skip[1]})"
        if now - self._last_taken <= HEALTH_WINDOW_S:
            return f"{head}: frames are taken but none finished: one takes longer than that (a slow device?)"
        silent = [self._wire_name(t) for t in self._inputs
                  if t != "color/image_raw" and now - self._last_rx.get(t, -1e9) > HEALTH_WINDOW_S]
        if silent:
            return f"{head}: nothing received on {', '.join(silent)}"  # _check_inputs logs that
        message = (f"{head}: colour and depth do not pair (are their stamps more than sync_slop = "
                   f"{self._p['sync_slop']} s apart?)")
        self._log_stall("pairing", message)
        return message

    def _log_stall(self, kind: str, message: str) -> None:
        """Log why nothing is labelled once, until frames are labelled again or the reason's `kind`
        changes: found from outside, only /diagnostics had said that colour and depth never
        paired, or that images arrived on the other transport."""
        if kind != self._stall_logged:
            self._stall_logged = kind
            self.get_logger().warning(message)

    def _transport_hint(self) -> str:
        """Where no colour arrives on the transport this node takes (raw, or compressed beside it)
        but a publisher offers the other one: which parameter takes it."""
        raw = self.resolve_topic_name("color/image_raw")
        transport = getattr(self, "_transport", {}).get("color/image_raw", "raw")
        other, setting = (f"{raw}/compressed", "compressed") if transport == "raw" else (raw, "raw")
        own, n = self._wire_name("color/image_raw"), self.count_publishers(other)
        return (f" on {own}, but {n} publisher(s) on {other} (input.transport.color: {setting} takes them)"
                if n and not self.count_publishers(own) else "")

    def _check_loss(self, now: float) -> None:
        """One warning per topic when a camera stream loses more than LOSS_WARN of its frames for
        HEALTH_WINDOW_S: the loss happens in the transport, where nothing else would report it."""
        for topic, monitor in self._health.items():
            hs = monitor.health(now)
            if hs.loss is None or hs.loss <= LOSS_WARN:
                self._lossy_since.pop(topic, None)
                continue
            since = self._lossy_since.setdefault(topic, now)
            if now - since >= HEALTH_WINDOW_S and topic not in self._warned_loss:
                self._warned_loss.add(topic)
                self.get_logger().warning(
                    f"{self._wire_name(topic)} loses {hs.loss:.0%} of its frames: received {hs.received_hz:.1f} Hz "
                    f"of an estimated {hs.camera_hz:.1f} Hz (from sequence numbers and header stamps). Large images from a publisher "
                    f"with Fast DDS defaults do not fit its shared memory. Fix: {PROFILE_FIX}.")

    def _check_inputs(self) -> None:
        """Warn once per topic: silent for 5 s while publishers with incompatible QoS exist."""
        now = time.monotonic()
        self._check_teach_timeout()  # here, not in a timer of its own: every entity costs the executor per wake-up
        if self._reliability == "best_available":
            self._match_publishers()
        self._check_loss(now)
        if now - self._started < NO_INPUT_WARN_S:
            return
        # Colour still arriving, and flowing for NO_INPUT_WARN_S: the other topics' silence is
        # counted from then, not from the node's start (a camera started later) and not across the
        # end of a stream (camera_info stopping a frame before the colour). Found from outside.
        colour_flows = (now - self._last_rx.get("color/image_raw", -1e9) < COLOUR_FLOWS_S
                        and self._colour_since is not None and now - self._colour_since >= NO_INPUT_WARN_S)
        for topic in self._inputs:
            since = self._last_rx.get(topic, self._started)
            if topic != "color/image_raw" and self._colour_since is not None:
                since = max(since, self._colour_since)
            if topic in self._warned_qos or now - since < NO_INPUT_WARN_S:
                continue
            name = self._wire_name(topic)
            bad = [i for i in self.get_publishers_info_by_topic(name)
                   if self._sub_reliability[topic] == ReliabilityPolicy.RELIABLE
                   and i.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT]
            if not bad and colour_flows and topic == "color/camera_info" and topic in self._last_rx:
                self._warned_qos.add(topic)  # found from outside: it said "no frame can be labelled" and labelled them
                self.get_logger().warning(
                    f"nothing on {name} for {now - self._last_rx[topic]:.0f} s ("
                    f"{len(self.get_publishers_info_by_topic(name))} publisher(s)): frames are labelled with the "
                    "last camera_info received. Check that the camera still publishes it.")
            elif not bad and colour_flows and topic != "color/image_raw":
                self._warned_qos.add(topic)  # once, as the QoS warning
                self.get_logger().warning(
                    f"colour images arrive but nothing on {name} for {NO_INPUT_WARN_S:.0f} s ("
                    f"{len(self.get_publishers_info_by_topic(name))} publisher(s)): no frame can be labelled "
                    "without it. Check the topic's name (remapping) and that the camera publishes it.")
            elif bad:
                self._warned_qos.add(topic)
                self.get_logger().warning(
                    f"nothing received on {name} for {NO_INPUT_WARN_S:.0f} s although {len(bad)} publisher(s) exist: "
                    f"they publish best_effort and this node subscribes reliable. Set the parameter qos.reliability to "
                    "best_available (the default) or best_effort (launch argument qos_reliability:=, ros2 run: "
                    "-p qos.reliability:=).")

    def destroy_node(self) -> None:
        self._deactivate()
        super().destroy_node()


class ClassifyNode(_ClassifyPipeline, Node):
    """The plain node: configured and active from the start, until it is killed."""

    def __init__(self, **kwargs) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self._declare()
        self._configure()
        self._activate()


class ManagedClassifyNode(_ClassifyPipeline, LifecycleNode):
    """`managed: true`: a lifecycle node (the standard ~/get_state, ~/change_state, ... services and
    ~/transition_event), started unconfigured. configure loads and checks (a failure, such as a
    bad model file, is logged and leaves it unconfigured), activate subscribes and publishes,
    deactivate stops all of it (no CPU spent while the arm is parked), cleanup drops the model,
    shutdown does what is left. Each transition logs one line."""

    _static_while_unconfigured = True

    def __init__(self, **kwargs) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self._declare()
        self._service_change_state.callback = self._guard_change_state(self._service_change_state.callback)
        self.get_logger().info("managed: unconfigured; waiting for configure (ros2 lifecycle set "
                               f"{self.get_fully_qualified_name()} configure)")

    def _guard_change_state(self, change_state):
        """~/change_state answers success=False, with one warning, to a transition (id or label) the
        current state has not. For an id, rclpy 7.1.6 (Jazzy's wheels) raises there instead, and
        the raise ends the node (ros2/rclpy#1209, fixed upstream after that release): a lifecycle
        manager that sends ids (Nav2's) and retries a configure would kill perception."""
        def guarded(request, response):
            available = {t[0]: t[1] for t in self._state_machine.available_transitions}  # id: label
            asked = request.transition.label or request.transition.id
            if asked not in (available.values() if request.transition.label else available):
                state = self._state_machine.current_state[1]
                self.get_logger().warning(f"change_state: no transition {asked} from {state} (available: "
                                          f"{', '.join(f'{i} {n}' for i, n in sorted(available.items()))}); "
                                          "nothing changed")
                response.success = False
                return response
            return change_state(request, response)
        return guarded

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._configure()
            self.processor.warm_up()  # first-use costs here, so that activate is quick
        except Exception as e:  # noqa: BLE001 -- a failed configure is an answer: unconfigured, with the reason
            self.get_logger().error(f"configure failed, still unconfigured: {type(e).__name__}: {e}")
            self._cleanup()  # after the reason is logged: it stays in the log whatever happens here
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info(f"configured: model {self.processor.model_name} ({self.model.kind}, "
                               f"{len(self.model.known_class_names)} classes); inactive until activate")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._activate()
        except Exception as e:  # noqa: BLE001
            self.get_logger().error(f"activate failed, still inactive: {type(e).__name__}: {e}")
            self._deactivate()
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info("activated: subscribed and publishing")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._deactivate()
        self.get_logger().info("deactivated: no subscriptions, publishers or workers; the model stays loaded")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._cleanup()
        self.get_logger().info("cleaned up: model released; unconfigured")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._deactivate()
        self._cleanup()
        self.get_logger().info(f"shut down (from {state.label})")
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._deactivate()
        self._cleanup()
        self.get_logger().error(f"error while {state.label}: released everything; unconfigured")
        return TransitionCallbackReturn.SUCCESS


def _managed_requested() -> bool:
    """The `managed` parameter, read before the node exists (it decides the node's class) by a
    short-lived node of the same name: the same -p options and params file sections apply."""
    probe = rclpy.create_node(NODE_NAME, start_parameter_services=False, enable_rosout=False)
    try:
        value = probe.declare_parameter("managed", PARAMETERS["managed"].default,
                                        _descriptor("managed", PARAMETERS["managed"], read_only=True)).value
        return bool(check_value("managed", value))
    finally:
        probe.destroy_node()


def usage() -> str:
    """`classify_node --help`: how to run it and every parameter (from the same table as the docs)."""
    rows = "\n".join(f"  {name} (default {spec.default!r}{', run time' if spec.dynamic else ''}): {spec.description}"
                     for name, spec in PARAMETERS.items())
    return ("usage: classify_node [--ros-args -p NAME:=VALUE ... --params-file FILE -r OLD:=NEW ...]\n"
            "       ros2 launch robot_classify classify.launch.py [params_file:=FILE] [namespace:=NS]\n\n"
            "Labels the objects of an RGB-D camera on /object_labels (doc/node.md).\n\nparameters:\n" + rows)


@contextlib.contextmanager
def _one_sigint() -> Iterator[None]:
    """The first Ctrl-C ends the node (a KeyboardInterrupt, beside rclpy's own handler, which shuts
    its context down); any later one is ignored, so that teardown and the interpreter's exit run to
    their end: `main` is the process's last work. A Ctrl-C in a terminal under `ros2 launch`
    reaches the node twice, from the terminal and forwarded by launch, and the second had broken
    teardown with a KeyboardInterrupt traceback and exit code -2 in 8 of 13 tries (found from
    outside; torch's exit finalizers were hit too). Teardown is bounded: workers are joined with a
    timeout. Set before `rclpy.init`, whose handler then calls this one."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread sets handlers
        yield
        return

    def first(signum: int, frame: Any) -> None:
        _ignore_sigint()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, first)
    try:
        yield
    finally:
        _ignore_sigint()


def _ignore_sigint() -> None:
    """From here on the process ends: a Ctrl-C must not break what is left of it."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def main(args: list[str] | None = None) -> int:
    argv = sys.argv[1:] if args is None else list(args)
    own = argv[:argv.index("--ros-args")] if "--ros-args" in argv else argv
    if "-h" in own or "--help" in own:  # not a node started by mistake
        print(usage())
        return 0
    keep_frame_buffers()
    # One thread per step (runtime.threads). OpenCV's pool too: on a frame's small images its
    # second thread buys no latency and costs CPU (with ~/markers built only for a viewer: the
    # node at 30 Hz, mean of 4 runs, 0.74 / 0.79 cores for the hog_color / cnn_color defaults
    # against 0.78 / 0.86; latency the same).
    set_node_threads()
    # A corrupt image earns the node's own throttled warning; OpenCV's decoders would add a line of
    # their own per frame (a camera sending bad PNGs at 30 Hz: 30 lines a second, unthrottled).
    if hasattr(cv2, "utils") and hasattr(cv2.utils, "logging"):
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    with _one_sigint():
        return _run(args)


def _run(args: list[str] | None) -> int:
    """rclpy up, the node built and spun until Ctrl-C or shutdown, then both torn down."""
    try:
        rclpy.init(args=args)
    except Exception as e:  # noqa: BLE001 -- rcl's parse of --ros-args (a malformed params file): one line
        print(f"[FATAL] [robot_classify]: cannot start: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    node = None
    try:
        # Built before the node: a Ctrl-C that lands while the executor is half built (on a loaded
        # machine, between the node's "ready" line and its first spin) left rclpy's Executor.__del__
        # an AttributeError to print at exit (found by CI under load).
        executor = SingleThreadedExecutor()
        try:
            node = ManagedClassifyNode() if _managed_requested() else ClassifyNode()
        except Exception as e:  # noqa: BLE001 -- a clear fatal line, not a traceback wall
            rclpy.logging.get_logger("robot_classify").fatal(f"cannot start: {type(e).__name__}: {e}")
            return 1
        if node.processor is not None:  # the plain node: configured and active already
            node.processor.warm_up()  # first-use costs (OpenCV tables, allocations) before the first real frame
        gc.freeze()  # the model and ROS objects built so far never die: keep them out of every GC pass
        executor.add_node(node)
        # Woken at least every SPIN_WAKE_S: a SIGINT that reaches Python's own handler (not rclpy's,
        # which wakes the executor) is acted on only when the wait returns. After a lifecycle
        # deactivate, cleanup and shutdown no timer is left to end a wait, and the node outlived
        # Ctrl-C (found from outside).
        while rclpy.ok():
            executor.spin_once(timeout_sec=SPIN_WAKE_S)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        _ignore_sigint()  # also where no Ctrl-C ended the spin (SIGTERM, a lifecycle shutdown)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
