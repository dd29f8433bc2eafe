"""The demo's live part: start classify_node, replay a bag into it once it is really
receiving, and count the frames it labelled. Lives here because it speaks rclpy."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ..runtime.results import FrameLabels
from ..runtime.stamps import header_to_ns


def run_live(model_file: str, bag: Path, topics: tuple[str, str, str], device: str, params_file: str | None = None,
             show: int = 5, start_timeout: float = 120.0) -> tuple[int, int]:
    """Start classify_node, replay the bag into it once it is really receiving, and count the
    frames it labelled: (labelled, frames in the bag)."""
    import os
    import subprocess
    import threading

    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")  # the demo talks to itself only
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    from .replay import replay

    node_proc = subprocess.Popen(
        [sys.executable, "-m", "robot_classify.ros.node", "--ros-args",
         *(["--params-file", str(params_file)] if params_file else []), "-p", f"model_path:={model_file}",
         "-p", "qos.reliability:=reliable", "-p", f"device:={device}", "-r", f"color/image_raw:={topics[0]}",
         "-r", f"depth/image_raw:={topics[1]}", "-r", f"color/camera_info:={topics[2]}"])
    rclpy.init()
    listener = rclpy.create_node("robot_classify_demo")
    labelled: set[int] = set()  # stamps of the /object_labels documents received
    sent: set[int] = set()  # stamps of the colour images replayed
    last_label = [time.monotonic()]
    lock = threading.Lock()  # `labelled` grows on the executor thread
    spinning = threading.Event()

    def on_labels(msg: String) -> None:
        labels = FrameLabels.from_doc(json.loads(msg.data))
        with lock:
            labelled.add(labels.stamp_ns)
            n = len(labelled)
        last_label[0] = time.monotonic()
        if n <= show:
            objs = ", ".join(f"{o.label} {o.score:.2f}" for o in labels.objects)
            sec, nanosec = labels.stamp
            print(f"  /object_labels stamp {sec}.{nanosec:09d}: {objs}")

    def on_diagnostics(msg: DiagnosticArray) -> None:
        # The node publishes diagnostics from a timer of its executor, which spins only after
        # the model is loaded and warmed up: the first one means it is processing.
        if any(st.hardware_id == "robot_classify" for st in msg.status):
            spinning.set()

    listener.create_subscription(String, "/object_labels", on_labels,
                                 QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
    listener.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
    ex = SingleThreadedExecutor()
    ex.add_node(listener)
    threading.Thread(target=ex.spin, daemon=True).start()
    try:
        deadline = time.monotonic() + start_timeout
        while not (spinning.is_set() and listener.count_publishers("/object_labels")):
            if node_proc.poll() is not None:
                raise RuntimeError(f"classify_node exited early (status {node_proc.returncode})")
            if time.monotonic() > deadline:
                raise RuntimeError(f"classify_node did not start within {start_timeout:.0f} s")
            time.sleep(0.1)
        replay(bag, rate=0.2, keep_stamps=True, topics=list(topics), wait_for_subscribers=30.0,
               on_message=lambda topic, msg: sent.add(header_to_ns(msg.header)) if topic == topics[0] else None)
        # The last frames are still being processed: wait until all are in, or none came for 3 s.
        last_label[0] = max(last_label[0], time.monotonic())
        end = time.monotonic() + 30
        while time.monotonic() < end and time.monotonic() - last_label[0] < 3.0:
            with lock:
                if sent <= labelled:
                    break
            time.sleep(0.1)
        with lock:
            return len(labelled & sent), len(sent)
    finally:
        node_proc.terminate()
        try:
            node_proc.wait(10)
        except subprocess.TimeoutExpired:
            node_proc.kill()
            node_proc.wait(5)
        ex.shutdown()
        listener.destroy_node()
        rclpy.try_shutdown()
