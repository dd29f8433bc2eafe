"""classify_node over real Fast DDS (PyPI ROS 2 Jazzy wheels): no mocks, no fake rclpy."""
import json
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy")
jsonschema = pytest.importorskip("jsonschema")

from robot_classify.matching import bbox_tuple, match_boxes  # noqa: E402

from ros_harness import RosHarness  # noqa: E402
from scene_fixtures import rendered  # noqa: E402

pytestmark = pytest.mark.ros
SCHEMA = json.loads((Path(__file__).parents[1] / "config" / "object_labels.schema.json").read_text())
HELD_OUT_SEEDS = [900_000_000 + i for i in range(8)]  # never used to train the default model


@pytest.fixture(scope="module")
def harness(default_model_file):
    h = RosHarness(default_model_file)
    yield h
    h.close()


def K_of(scene):
    i = scene.meta["intrinsics"]
    return [i["fx"], 0, i["cx"], 0, i["fy"], i["cy"], 0, 0, 1]


def test_labels_validate_carry_input_stamp_and_name_the_right_classes(harness):
    correct = total = 0
    for n, seed in enumerate(HELD_OUT_SEEDS):
        s = rendered(seed)
        stamp = 1_700_000_000_000_000_000 + n * 33_333_333
        harness.publish_frame(s.color, s.depth, K_of(s), stamp)
        doc = harness.wait_for(stamp)
        jsonschema.validate(doc, SCHEMA)
        assert doc["header"]["frame_id"] == "camera_color_optical_frame"
        assert len(doc["model"]["sha256"]) == 64
        gts = [g for g in s.meta["objects"] if g["class_name"] != "distractor" and g["visible_fraction"] >= 0.5]
        pairs = match_boxes([bbox_tuple(o["bbox"]) for o in doc["objects"]], [bbox_tuple(g["bbox"]) for g in gts])
        for i, j, _ in pairs:
            total += 1
            correct += doc["objects"][i]["top_k"][0]["label"] == gts[j]["class_name"]
    assert total >= 15
    assert correct / total >= 0.9, (correct, total)


def test_bad_input_is_skipped_with_a_warning_and_the_node_keeps_working(harness):
    s = rendered(HELD_OUT_SEEDS[0])
    K = K_of(s)
    base = 1_710_000_000_000_000_000
    good_depth = s.depth
    bad_frames = [
        dict(color=s.color, depth=good_depth, K=K, color_encoding="rgb8", depth_encoding="16UC1", tweak="yuv"),
        dict(color=s.color, depth=good_depth[::2, ::2], K=K),  # size mismatch
        dict(color=s.color, depth=good_depth, K=[0, 0, 320, 0, 0, 240, 0, 0, 1]),  # zero focal length
        dict(color=s.color, depth=np.full(good_depth.shape, np.nan, np.float32), K=K, depth_encoding="32FC1"),
    ]
    from ros_harness import make_image, make_info

    for n, f in enumerate(bad_frames):
        stamp = base + n * 100_000_000
        if f.get("tweak") == "yuv":
            img = make_image(f["color"], "rgb8", stamp)
            img.encoding = "yuv422"
            harness.info_pub.publish(make_info(f["K"], 640, 480, stamp))
            harness.depth_pub.publish(make_image(f["depth"], "16UC1", stamp))
            harness.colour_pub.publish(img)
        else:
            harness.publish_frame(f["color"], f["depth"], f["K"], stamp, depth_encoding=f.get("depth_encoding", "16UC1"))
        time.sleep(0.5)  # one at a time: the node only ever processes the newest pair
    # Wrong step and empty data.
    for n, mutate in enumerate(("step", "empty")):
        stamp = base + (10 + n) * 100_000_000
        img = make_image(s.color, "rgb8", stamp)
        if mutate == "step":
            img.step = 100
        else:
            img.data = b""
        harness.info_pub.publish(make_info(K, 640, 480, stamp))
        harness.depth_pub.publish(make_image(good_depth, "16UC1", stamp))
        harness.colour_pub.publish(img)
        time.sleep(0.5)
    good = base + 100 * 100_000_000
    harness.publish_frame(s.color, good_depth, K, good)
    doc = harness.wait_for(good)
    assert harness.alive()
    assert doc["objects"], "the good frame after the bad ones is labelled"
    for expected in ("yuv422", "differ in size", "focal", "step 100", "needs"):
        assert harness.wait_log(expected), (expected, "\n".join(harness.log))
    # The NaN-depth frame is not an error: it yields an empty, valid result with a warning.
    nan_doc = harness.wait_for(base + 3 * 100_000_000)
    assert nan_doc["objects"] == [] and "no support plane" in nan_doc["warning"]


def test_dynamic_parameters_take_effect_and_bad_values_are_rejected(harness):
    s = rendered(HELD_OUT_SEEDS[1])
    results = harness.set_parameters(top_k=1, min_score=0.99)
    assert all(r.successful for r in results)
    stamp = 1_720_000_000_000_000_000
    harness.publish_frame(s.color, s.depth, K_of(s), stamp)
    doc = harness.wait_for(stamp)
    assert doc["objects"] and all(len(o["top_k"]) == 1 for o in doc["objects"])
    assert all(o["label"] == "unknown" or o["score"] >= 0.99 for o in doc["objects"])
    for bad in ({"min_score": 2.0}, {"top_k": 0}, {"k": 999_999}, {"model_path": "/tmp/other.safetensors"}):
        (r,) = harness.set_parameters(**bad)
        assert not r.successful and r.reason, bad
    assert all(r.successful for r in harness.set_parameters(top_k=3, min_score=0.5))


def test_model_that_fails_to_load_exits_nonzero_with_one_clear_line(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\x00" * 100)
    proc = subprocess.run([sys.executable, "-m", "robot_classify.node", "--ros-args", "-p", f"model_path:={bad}"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    out = proc.stdout + proc.stderr
    assert "cannot start" in out and "Traceback" not in out
