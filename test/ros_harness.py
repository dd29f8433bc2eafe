"""Real rclpy over Fast DDS: classify_node in a subprocess, a tester node in this process.

Isolation: ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a per-run ROS_DOMAIN_ID, so two test
runs on one machine never hear each other. Everything started here is stopped by `close()`.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
# As a robot set up per the README: images fit Fast DDS shared-memory segments (both processes).
os.environ.setdefault("FASTRTPS_DEFAULT_PROFILES_FILE",
                      str(Path(__file__).parents[1] / "config" / "fastdds_large_images.xml"))

import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from rcl_interfaces.msg import Parameter as ParameterMsg  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from robot_classify.runtime.compressed import encode_color, encode_depth  # noqa: E402
from robot_classify.runtime.image_conversion import array_to_fields  # noqa: E402
from robot_classify.runtime.stamps import ns_to_stamp  # noqa: E402


def make_image(arr: np.ndarray, encoding: str, stamp_ns: int, frame_id: str = "camera_color_optical_frame") -> Image:
    msg = Image(**array_to_fields(arr, encoding))
    msg.header.stamp.sec, msg.header.stamp.nanosec = ns_to_stamp(stamp_ns)
    msg.header.frame_id = frame_id
    return msg


def make_compressed(fmt: str, data: bytes, stamp_ns: int, frame_id: str = "camera_color_optical_frame"
                    ) -> CompressedImage:
    msg = CompressedImage(format=fmt, data=data)
    msg.header.stamp.sec, msg.header.stamp.nanosec = ns_to_stamp(stamp_ns)
    msg.header.frame_id = frame_id
    return msg


def make_info(K: list[float], w: int, h: int, stamp_ns: int) -> CameraInfo:
    info = CameraInfo(width=w, height=h, k=[float(v) for v in K], distortion_model="plumb_bob")
    info.header.stamp.sec, info.header.stamp.nanosec = ns_to_stamp(stamp_ns)
    info.header.frame_id = "camera_color_optical_frame"
    return info


def start_node(ros_args: list[str], node_env: dict | None = None) -> tuple[subprocess.Popen, list[str]]:
    """classify_node in a process of its own, its logging unbuffered, and the list its output
    lines are appended to as they come (a reader thread)."""
    env = {**os.environ, "RCUTILS_LOGGING_BUFFERED_STREAM": "0", "PYTHONUNBUFFERED": "1", **(node_env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "robot_classify.ros.node", "--ros-args", *ros_args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    log: list[str] = []

    def read() -> None:
        for line in proc.stdout:
            log.append(line.rstrip())

    threading.Thread(target=read, daemon=True).start()
    return proc, log


class RosHarness:
    def __init__(self, model_path: str, topics: tuple[str, str, str] = ("/test_cam/color", "/test_cam/depth",
                                                                         "/test_cam/info"),
                 timeout: float = 120.0, params: dict | None = None, node_env: dict | None = None,
                 publisher_reliability: str = "reliable", params_file: str | None = None,
                 transports: tuple[str, str] = ("raw", "raw"), managed: bool = False) -> None:
        """`node_env` overrides the node's environment only (e.g. its Fast DDS profile);
        `publisher_reliability` is the tester's camera publishers' QoS (a driver's choice).
        `transports`: colour and depth as image_transport publishes them (raw, compressed,
        compressedDepth): the node is told the same, the tester publishes on `<topic>/<transport>`
        with `color_codec` / `depth_codec`. `managed`: a lifecycle node, ready once its
        ~/get_state service answers (unconfigured: no topics yet)."""
        params = {"qos.reliability": "reliable", "device": "cpu", **(params or {})}
        if transports != ("raw", "raw"):
            params.update({"input.transport.color": transports[0], "input.transport.depth": transports[1]})
        if managed:
            params["managed"] = "true"
        self.transports, self.managed = transports, managed
        self.color_codec, self.depth_codec = "png", "rvl"
        wire = [t if tr == "raw" else f"{t}/{tr}" for t, tr in zip(topics[:2], transports)]
        # model_path "" = the embedded default model
        ros_args = [*(["--params-file", str(params_file)] if params_file else []),
                    "-p", f"model_path:={model_path or chr(39) * 2}",
                    *[a for k, v in params.items() for a in ("-p", f"{k}:={v}")],
                    "-r", f"color/image_raw:={topics[0]}", "-r", f"depth/image_raw:={topics[1]}",
                    "-r", f"color/camera_info:={topics[2]}"]
        self.topics, self.wire_topics = topics, wire
        self.proc, self.log = start_node(ros_args, node_env)
        try:  # the node process must not outlive a harness that failed to start
            rclpy.init()
            self.node = rclpy.create_node("robot_classify_tester")
            qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE if publisher_reliability == "reliable"
                             else ReliabilityPolicy.BEST_EFFORT)
            self.color_pub = self.node.create_publisher(Image if transports[0] == "raw" else CompressedImage, wire[0],
                                                        qos)
            self.depth_pub = self.node.create_publisher(Image if transports[1] == "raw" else CompressedImage, wire[1],
                                                        qos)
            self.info_pub = self.node.create_publisher(CameraInfo, topics[2], qos)
            self.received: list[dict] = []
            self.received_at: list[float] = []  # time.monotonic() of each, for latency per frame
            self._cv = threading.Condition()
            self.node.create_subscription(String, "/object_labels", self._on_labels, QoSProfile(
                depth=50, reliability=ReliabilityPolicy.RELIABLE))
            self.param_client = self.node.create_client(SetParameters, "/robot_classify/set_parameters")
            if managed:
                from lifecycle_msgs.srv import ChangeState, GetState

                self.get_state_client = self.node.create_client(GetState, "/robot_classify/get_state")
                self.change_state_client = self.node.create_client(ChangeState, "/robot_classify/change_state")
            self.executor = SingleThreadedExecutor()
            self.executor.add_node(self.node)
            self._spin = threading.Thread(target=self.executor.spin, daemon=True)
            self._spin.start()
            self._wait_ready(timeout)
        except BaseException:
            self.proc.kill()
            self.proc.wait()
            raise

    def _wait_ready(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("classify_node exited:\n" + "\n".join(self.log[-30:]))
            if self.managed and self.get_state_client.service_is_ready() and self.param_client.service_is_ready():
                time.sleep(0.5)
                return
            if (self.node.count_publishers("/object_labels") and self.node.count_subscribers(self.wire_topics[0])
                    and self.param_client.service_is_ready()):
                time.sleep(0.5)  # let discovery settle both ways
                return
            time.sleep(0.1)
        raise TimeoutError("classify_node did not come up:\n" + "\n".join(self.log[-30:]))

    def _on_labels(self, msg: String) -> None:
        with self._cv:
            self.received.append(json.loads(msg.data))
            self.received_at.append(time.monotonic())
            self._cv.notify_all()

    def publish_frame(self, color: np.ndarray, depth: np.ndarray, K: list[float], stamp_ns: int,
                      color_encoding: str = "rgb8", depth_encoding: str = "16UC1", info_lead: float = 0.1) -> None:
        h, w = color.shape[:2]
        self.info_pub.publish(make_info(K, w, h, stamp_ns))
        time.sleep(info_lead)  # tests: let the frame's camera_info land first, so each check is deterministic
        if self.transports[1] == "raw":
            self.depth_pub.publish(make_image(depth, depth_encoding, stamp_ns))
        else:
            self.depth_pub.publish(make_compressed(*encode_depth(depth, self.depth_codec), stamp_ns))
        if self.transports[0] == "raw":
            self.color_pub.publish(make_image(color, color_encoding, stamp_ns))
        else:
            self.color_pub.publish(make_compressed(*encode_color(color, self.color_codec), stamp_ns))

    def wait_for(self, stamp_ns: int, timeout: float = 20.0) -> dict:
        sec, nsec = ns_to_stamp(stamp_ns)
        end = time.monotonic() + timeout
        with self._cv:
            while True:
                for doc in self.received:
                    if doc["header"]["stamp"] == {"sec": sec, "nanosec": nsec}:
                        return doc
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no /object_labels for stamp {stamp_ns}:\n" + "\n".join(self.log[-20:]))
                self._cv.wait(left)

    def set_parameters(self, **values) -> list:
        req = SetParameters.Request(parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
        future = self.param_client.call_async(req)
        end = time.monotonic() + 10
        while not future.done() and time.monotonic() < end:
            time.sleep(0.02)
        return future.result().results

    def _call(self, client, request, timeout: float = 30.0):
        future = client.call_async(request)
        end = time.monotonic() + timeout
        while not future.done() and time.monotonic() < end:
            time.sleep(0.02)
        if not future.done():
            raise TimeoutError(f"{client.srv_name}: no answer in {timeout} s:\n" + "\n".join(self.log[-20:]))
        return future.result()

    def lifecycle_state(self) -> str:
        """The managed node's state label through its ~/get_state service."""
        from lifecycle_msgs.srv import GetState

        return self._call(self.get_state_client, GetState.Request()).current_state.label

    def change_state(self, transition: str, by_label: bool = False) -> bool:
        """One transition (configure, activate, deactivate, cleanup, shutdown) through
        ~/change_state, by id as a lifecycle manager sends it (or by label, as `ros2 lifecycle
        set` does): its success."""
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        ids = {"configure": Transition.TRANSITION_CONFIGURE, "activate": Transition.TRANSITION_ACTIVATE,
               "deactivate": Transition.TRANSITION_DEACTIVATE, "cleanup": Transition.TRANSITION_CLEANUP,
               "shutdown": {"unconfigured": Transition.TRANSITION_UNCONFIGURED_SHUTDOWN,
                            "inactive": Transition.TRANSITION_INACTIVE_SHUTDOWN,
                            "active": Transition.TRANSITION_ACTIVE_SHUTDOWN}.get(self.lifecycle_state(), 0)}
        req = ChangeState.Request(transition=Transition(label=transition) if by_label
                                  else Transition(id=ids[transition]))
        return self._call(self.change_state_client, req, timeout=60.0).success

    def wait_log(self, text: str, timeout: float = 5.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if any(text in line for line in list(self.log)):
                return True
            time.sleep(0.05)
        return False

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.executor.shutdown()
        self._spin.join(timeout=5)  # a spin thread still in rclpy's wait at exit aborts the process
        self.node.destroy_node()
        rclpy.try_shutdown()


__all__ = ["RosHarness", "ParameterMsg", "make_compressed", "make_image", "make_info", "start_node"]
