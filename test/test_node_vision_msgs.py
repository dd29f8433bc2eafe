"""~/detections, ~/detections_3d and ~/label_info over real DDS, checked against /object_labels.

vision_msgs is not on PyPI: these tests run where a ROS install (or a vision_msgs build on
PYTHONPATH / LD_LIBRARY_PATH) provides it, and skip otherwise. What does not need it (the
`output.vision_msgs` switch) is tested everywhere.
"""
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("rclpy")

from scene_fixtures import camera_k, rendered  # noqa: E402

pytestmark = pytest.mark.ros
HAS_VISION_MSGS = subprocess.run([sys.executable, "-c", "import vision_msgs.msg"], capture_output=True).returncode == 0
needs_vision_msgs = pytest.mark.skipif(not HAS_VISION_MSGS, reason="vision_msgs does not import (not on PyPI; "
                                       "install ros-jazzy-vision-msgs or put a build on PYTHONPATH)")


class _Logger:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, text: str) -> None:
        self.lines.append(text)


class _Node:  # what VisionOutput.create touches before it makes publishers
    def __init__(self) -> None:
        self.logger = _Logger()

    def get_logger(self) -> _Logger:
        return self.logger

    def resolve_topic_name(self, topic: str) -> str:  # rclpy's, in the root namespace
        return "/" + topic


def test_output_switch_without_vision_msgs_auto_says_so_on_refuses_off_is_silent(monkeypatch):
    from robot_classify.ros import vision_output

    monkeypatch.setattr(vision_output, "import_vision_msgs", lambda: (None, "ModuleNotFoundError: no vision_msgs"))
    node = _Node()
    assert vision_output.VisionOutput.create(node, "auto") is None
    assert len(node.logger.lines) == 1 and "JSON only" in node.logger.lines[0]
    with pytest.raises(RuntimeError, match="output.vision_msgs is 'on' but vision_msgs does not import"):
        vision_output.VisionOutput.create(node, "on")
    assert vision_output.VisionOutput.create(node, "off") is None and len(node.logger.lines) == 1
    assert vision_output.VisionOutput.create(node, "auto") is None and len(node.logger.lines) == 1  # once per node
    with pytest.raises(RuntimeError, match="sudo apt install ros-jazzy-vision-msgs"):
        vision_output.VisionOutput.require("on")  # the node's first check, before its model loads
    vision_output.VisionOutput.require("auto")


@pytest.mark.skipif(HAS_VISION_MSGS, reason="vision_msgs imports here: 'on' starts")
def test_node_with_vision_msgs_on_but_absent_exits_with_one_clear_line():
    proc = subprocess.run([sys.executable, "-m", "robot_classify.ros.node", "--ros-args",
                           "-p", "output.vision_msgs:=on", "-p", "device:=cpu"],
                          capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "output.vision_msgs is 'on'" in out and "Traceback" not in out


class _Typed:
    """The tester's subscriptions to the typed outputs, next to the harness's /object_labels."""

    def __init__(self, node) -> None:
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from vision_msgs.msg import Detection2DArray, Detection3DArray, LabelInfo

        self.d2, self.d3, self.info = [], [], []
        self.cv = threading.Condition()
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        node.create_subscription(Detection2DArray, "/robot_classify/detections", self._add(self.d2), reliable)
        node.create_subscription(Detection3DArray, "/robot_classify/detections_3d", self._add(self.d3), reliable)
        node.create_subscription(LabelInfo, "/robot_classify/label_info", self._add(self.info), latched)

    def _add(self, store: list):
        def cb(msg) -> None:
            with self.cv:
                store.append(msg)
                self.cv.notify_all()
        return cb

    def wait(self, pred, timeout: float = 20.0):
        with self.cv:
            assert self.cv.wait_for(pred, timeout), "timed out waiting for vision_msgs output"

    @staticmethod
    def stamp_of(msg) -> dict:
        return {"sec": msg.header.stamp.sec, "nanosec": msg.header.stamp.nanosec}


@pytest.fixture(scope="module")
def typed(harness):
    if not HAS_VISION_MSGS:
        pytest.skip("vision_msgs does not import (not on PyPI; install ros-jazzy-vision-msgs or put a build on "
                    "PYTHONPATH)")
    typed = _Typed(harness.node)
    end = time.monotonic() + 10
    while time.monotonic() < end and not harness.node.count_publishers("/robot_classify/detections_3d"):
        time.sleep(0.1)
    typed.wait(lambda: len(typed.info) >= 1)  # the latched one: the node's side has matched us
    time.sleep(0.5)
    return typed


@needs_vision_msgs
def test_detections_3d_match_object_labels_frame_by_frame(harness, typed):
    docs = []
    for n, seed in enumerate([900_000_100 + i for i in range(4)]):
        s = rendered(seed)
        stamp = 1_700_000_100_000_000_000 + n * 33_333_333
        harness.publish_frame(s.color, s.depth, camera_k(s), stamp)
        docs.append(harness.wait_for(stamp))
    typed.wait(lambda: len(typed.d3) >= len(docs) and len(typed.d2) >= len(docs))
    by_stamp3 = {str(typed.stamp_of(m)): m for m in typed.d3}
    by_stamp2 = {str(typed.stamp_of(m)): m for m in typed.d2}
    checked = 0
    for doc in docs:
        a3, a2 = by_stamp3[str(doc["header"]["stamp"])], by_stamp2[str(doc["header"]["stamp"])]
        assert a3.header.frame_id == a2.header.frame_id == doc["header"]["frame_id"]
        # 2D: every object, same order; 3D: those with a centroid, same order
        # id: the track id (tracking is on by default), the same number for the same object in every frame
        assert [d.id for d in a2.detections] == [str(o["track_id"]) for o in doc["objects"]]
        with_depth = [o for o in doc["objects"] if o["centroid"] is not None]
        assert [d.id for d in a3.detections] == [str(o["track_id"]) for o in with_depth]
        for det, o in zip(a2.detections, doc["objects"]):
            b = o["bbox"]
            assert (det.bbox.center.position.x, det.bbox.center.position.y) == (
                b["x_offset"] + b["width"] / 2, b["y_offset"] + b["height"] / 2)
            assert (det.bbox.size_x, det.bbox.size_y) == (b["width"], b["height"])
        for det, o in zip(a3.detections, with_depth):
            # an object no class scores above 0 for has an empty top_k, and one hypothesis: unknown at 0
            assert [(r.hypothesis.class_id, r.hypothesis.score) for r in det.results] == (
                [(t["label"], t["score"]) for t in o["top_k"]] or [("unknown", 0.0)])
            assert det.results[0].hypothesis.class_id == o["label"] or o["label"] == "unknown"
            c = det.bbox.center.position
            assert max(abs(c.x - o["centroid"]["x"]), abs(c.y - o["centroid"]["y"]),
                       abs(c.z - o["centroid"]["z"])) < 1e-3
            assert det.bbox.center.orientation.w == 1.0
            assert (det.bbox.size.x, det.bbox.size.y, det.bbox.size.z) == tuple(o["extent"][k] for k in "xyz")
            assert det.results[0].pose.pose.position == c
            checked += 1
    assert checked >= 8


@needs_vision_msgs
def test_label_info_is_latched_with_the_model_classes_and_follows_min_score(harness, typed, default_model_file):
    from robot_classify.learn.model_io import load_model
    from robot_classify.runtime.parameters import PARAMETERS

    typed.wait(lambda: len(typed.info) >= 1)
    model = load_model(default_model_file, device="cpu")
    first = typed.info[-1]
    assert [(c.class_id, c.class_name) for c in first.class_map] == list(enumerate(model.class_names))
    # min_score's default may be "the model's own" (negative): LabelInfo says the value in force
    start = PARAMETERS["min_score"].default
    in_force = start if start >= 0 else getattr(model, "default_min_score", 0.5)
    assert first.threshold == pytest.approx(in_force)
    assert all(r.successful for r in harness.set_parameters(min_score=0.7))
    try:
        typed.wait(lambda: typed.info[-1].threshold == pytest.approx(0.7))
    finally:
        harness.set_parameters(min_score=start)
    time.sleep(0.2)


@needs_vision_msgs
def test_label_info_follows_a_forget(harness, typed):
    """Last in the module: it changes the running model's classes."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    before = [c.class_name for c in typed.info[-1].class_map]
    assert "mug" in before
    pub = harness.node.create_publisher(String, "/robot_classify/forget", QoSProfile(
        depth=10, reliability=ReliabilityPolicy.RELIABLE))
    end = time.monotonic() + 10
    while time.monotonic() < end and not pub.get_subscription_count():
        time.sleep(0.05)
    pub.publish(String(data="mug"))
    typed.wait(lambda: "mug" not in [c.class_name for c in typed.info[-1].class_map])
    after = typed.info[-1]
    assert [c.class_name for c in after.class_map] == [n for n in before if n != "mug"]
    assert [c.class_id for c in after.class_map] == list(range(len(before) - 1))
