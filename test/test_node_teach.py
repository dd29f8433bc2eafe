"""Live teaching over real DDS: ~/teach, ~/teach/status, ~/forget and ~/save_model driven from
another node exactly as a robot team would (`ros2 topic pub`, `ros2 service call`)."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("std_srvs")

from ros_harness import RosHarness  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from robot_classify.learn.model_io import file_sha256  # noqa: E402

H, W = 480, 640
K = [615.0, 0.0, W / 2, 0.0, 615.0, H / 2, 0.0, 0.0, 1.0]
CONTROL = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def scene(boxes: list[tuple[int, int, tuple[int, int, int]]], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A flat table 1 m away and 80x100 px boxes standing 6 cm on it: (colour, depth)."""
    rng = np.random.default_rng(seed)
    depth = np.full((H, W), 1000, np.uint16)
    color = np.clip(rng.normal(110, 6, (H, W, 3)), 0, 255).astype(np.uint8)
    for x, y, rgb in boxes:
        depth[y:y + 100, x:x + 80] = 940
        color[y:y + 100, x:x + 80] = rgb
        color[y + 30:y + 50, x + 10:x + 70] = (250, 250, 250)  # a label stripe
    return color, depth


GREEN = (30, 190, 40)
PURPLE = (150, 40, 170)


class TeachClient:
    """The tester side of the teach interface, on the harness's node."""

    def __init__(self, h: RosHarness) -> None:
        self.h = h
        self.statuses: list[dict] = []
        self._cv = threading.Condition()
        node = h.node
        self.teach_pub = node.create_publisher(String, "/robot_classify/teach", CONTROL)
        self.forget_pub = node.create_publisher(String, "/robot_classify/forget", CONTROL)
        node.create_subscription(String, "/robot_classify/teach/status", self._on_status, QoSProfile(
            depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.save = node.create_client(Trigger, "/robot_classify/save_model")
        end = time.monotonic() + 10
        while not (self.save.service_is_ready() and node.count_subscribers("/robot_classify/teach")
                   and node.count_subscribers("/robot_classify/forget")):
            assert time.monotonic() < end, "teach interface did not appear"
            time.sleep(0.05)
        time.sleep(0.3)

    def _on_status(self, msg: String) -> None:
        with self._cv:
            self.statuses.append(json.loads(msg.data))
            self._cv.notify_all()

    def wait_status(self, label: str, states: tuple[str, ...] = ("done", "failed"), timeout: float = 15.0) -> dict:
        end = time.monotonic() + timeout
        with self._cv:
            while True:
                for i, s in enumerate(self.statuses):
                    if s["label"] == label and s["state"] in states:
                        del self.statuses[: i + 1]
                        return s
                left = end - time.monotonic()
                assert left > 0, f"no {states} status for {label!r}; got {self.statuses}\n" + "\n".join(self.h.log[-15:])
                self._cv.wait(left)

    def send(self, pub, text: str) -> None:
        pub.publish(String(data=text))

    def call_save(self) -> Trigger.Response:
        future = self.save.call_async(Trigger.Request())
        end = time.monotonic() + 30
        while not future.done():
            assert time.monotonic() < end, "save_model did not answer"
            time.sleep(0.02)
        return future.result()


STATUS_KEYS = {"label": str, "state": str, "views": int, "views_wanted": int, "n_samples": int, "classes": list,
               "reason": str, "action": str, "request_id": str}


def _frame(h: RosHarness, stamp: int, boxes, seed: int = 0) -> dict:
    color, depth = scene(boxes, seed)
    h.publish_frame(color, depth, K, stamp, info_lead=0.0)
    return h.wait_for(stamp)


def test_teach_forget_save_and_restart_over_dds(tmp_path: Path) -> None:
    saved = tmp_path / "taught.safetensors"
    h = RosHarness("", params={"teach.save_path": str(saved), "teach.timeout": 5.0})
    try:
        t = TeachClient(h)
        stamp = iter(range(1_000_000_000, 10**12, 50_000_000))
        before = _frame(h, next(stamp), [(280, 190, GREEN)])
        assert before["objects"][0]["label"] != "green_box"

        t.send(t.teach_pub, json.dumps({"label": "green_box", "views": 4, "select": "center"}))
        s = t.wait_status("green_box", ("collecting",))
        assert {k: type(v) for k, v in s.items()} == STATUS_KEYS
        assert (s["views"], s["views_wanted"], s["n_samples"]) == (0, 4, 0)
        # a second request while collecting is refused, with the reason; the first goes on
        t.send(t.teach_pub, "purple_box")
        busy = t.wait_status("purple_box")
        assert busy["state"] == "failed" and "busy" in busy["reason"]
        for i in range(4):  # the green box is the object nearest the centre; the purple one is not taken
            _frame(h, next(stamp), [(280, 190, GREEN), (20, 20, PURPLE)], seed=i)
        done = t.wait_status("green_box")
        assert done["state"] == "done", done
        # 4 views, each with 3 re-cut copies (teach.jitter_crops) and 3 of a part of it (teach.occluded_crops),
        # and their mirror images (teach.mirror)
        assert (done["views"], done["n_samples"]) == (4, 56) and done["classes"][-1] == "green_box"

        after = _frame(h, next(stamp), [(300, 200, GREEN)], seed=9)
        assert after["objects"][0]["label"] == "green_box"
        assert after["model"]["sha256"] != before["model"]["sha256"]

        # select by pixel: the purple box at the corner, one view from a frame holding both
        t.send(t.teach_pub, json.dumps({"label": "purple_box", "views": 2, "select": {"x": 60, "y": 70}}))
        t.wait_status("purple_box", ("collecting",))
        for i in range(2):
            _frame(h, next(stamp), [(280, 190, GREEN), (20, 20, PURPLE)], seed=20 + i)
        assert t.wait_status("purple_box")["state"] == "done"
        both = _frame(h, next(stamp), [(300, 200, GREEN), (40, 30, PURPLE)], seed=30)
        assert sorted(o["label"] for o in both["objects"]) == ["green_box", "purple_box"]

        response = t.call_save()
        assert response.success, response.message
        assert str(saved) in response.message and saved.is_file() and "replaced" not in response.message
        again = t.call_save()  # the path the operator set: written again, and said so
        assert again.success and "(replaced the file that was there)" in again.message
        reference = _frame(h, next(stamp), [(300, 200, GREEN), (40, 30, PURPLE)], seed=31)
        assert reference["model"]["sha256"] == file_sha256(saved)

        t.send(t.forget_pub, "purple_box")
        forgot = t.wait_status("purple_box")
        assert forgot["state"] == "done" and forgot["action"] == "forget" and "purple_box" not in forgot["classes"]
        assert h.wait_log("forgot 'purple_box'")
        gone = _frame(h, next(stamp), [(40, 30, PURPLE)], seed=32)
        assert gone["objects"][0]["label"] != "purple_box"
        assert gone["model"]["sha256"] != reference["model"]["sha256"]
        assert h.alive()
    finally:
        h.close()

    # A node started from the saved file labels the same frame the same way, with the same identity.
    h = RosHarness(str(saved), params={"teach.save_path": str(saved)})
    try:
        again = _frame(h, 5_000_000_000, [(300, 200, GREEN), (40, 30, PURPLE)], seed=31)
        assert [(o["label"], round(o["score"], 6)) for o in again["objects"]] == \
            [(o["label"], round(o["score"], 6)) for o in reference["objects"]]
        assert again["model"]["sha256"] == reference["model"]["sha256"]
        before = saved.read_bytes()
        refused = TeachClient(h).call_save()  # never over the file it started from
        assert not refused.success and "is the model this node started from" in refused.message
        assert saved.read_bytes() == before
    finally:
        h.close()


def test_bad_teach_requests_get_reasons_and_the_node_keeps_running(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "notes.txt"  # a file where the folder should be: unwritable even for root
    not_a_folder.write_text("keep me")
    h = RosHarness("", params={"teach.save_path": str(not_a_folder / "m.safetensors"), "teach.timeout": 2.0})
    try:
        t = TeachClient(h)
        bad = {
            "": "empty label",
            "my mug": "not a class name",
            "-x": "not a class name",
            json.dumps({"label": "a", "views": 0}): "views must be",
            json.dumps({"label": "a", "views": 500}): "views must be",
            json.dumps({"label": "a", "select": "left"}): "select must be",
            json.dumps({"label": "a", "colour": 1}): "unknown field",
            "{not json": "not valid JSON",
        }
        for text, reason in bad.items():
            t.send(t.teach_pub, text)
            label = json.loads(text)["label"] if text.startswith("{\"") else text.strip()[:64]
            s = t.wait_status("" if text.startswith("{not") else label)
            assert s["state"] == "failed" and reason in s["reason"], (text, s)
        # a pixel outside the image fails at the first frame; a request that never sees an object times out
        t.send(t.teach_pub, json.dumps({"label": "far", "select": {"x": 5000, "y": 10}}))
        t.wait_status("far", ("collecting",))
        _frame(h, 1_000_000_000, [(280, 190, GREEN)])
        s = t.wait_status("far")
        assert s["state"] == "failed" and "outside the 640x480 image" in s["reason"]
        t.send(t.teach_pub, json.dumps({"label": "late", "views": 3}))
        s = t.wait_status("late", timeout=10)
        assert s["state"] == "failed" and "no new view for 2 s" in s["reason"]

        t.send(t.forget_pub, "no_such_class")
        assert "not a class" in t.wait_status("no_such_class")["reason"]
        response = t.call_save()
        assert not response.success and "could not save" in response.message
        assert not_a_folder.read_text() == "keep me" and sorted(tmp_path.iterdir()) == [not_a_folder]
        ok = _frame(h, 2_000_000_000, [(280, 190, GREEN)])
        assert ok["objects"] and h.alive()
    finally:
        h.close()


def test_save_model_answers_every_bad_path_and_the_node_keeps_running(tmp_path: Path) -> None:
    """A name too long for the file system raised in the path's own checks, outside the save's
    try, and ended the node's executor (found from outside); a folder that does not exist is
    not created (a typo in teach.save_path made /nonexistent_dir as root)."""
    cases = {str(tmp_path / ("n" * 300 + ".safetensors")): "File name too long",
             str(tmp_path / "no_such_folder" / "m.safetensors"): "does not exist; create it",
             str(tmp_path): "is a folder"}
    for path, reason in cases.items():
        h = RosHarness("", params={"teach.save_path": path})
        try:
            response = TeachClient(h).call_save()
            assert not response.success and reason in response.message, response.message
            assert _frame(h, 1_000_000_000, [(280, 190, GREEN)])["objects"] and h.alive()
        finally:
            h.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written, no folder made


def test_save_model_never_replaces_the_embedded_default_or_a_file_that_is_not_a_model(tmp_path: Path) -> None:
    """Found from outside: with model_path empty (the embedded default) nothing kept
    ~/save_model off the shipped default file, and teach.save_path set to a text file by mistake
    replaced it with a 14 MB model. The default is reached here through a link, which a save
    would replace, never the file it points to."""
    from robot_classify.runtime.default_model import default_model_path

    link = tmp_path / "default_link.safetensors"
    link.symlink_to(default_model_path())
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    for path, reason in ((link, "is the embedded default model, which this node started from"),
                         (notes, "exists and is not a robot_classify model")):
        h = RosHarness("", params={"teach.save_path": str(path)})
        try:
            response = TeachClient(h).call_save()
            assert not response.success and reason in response.message, response.message
            assert h.alive()
        finally:
            h.close()
    assert link.is_symlink() and notes.read_text() == "keep me"


def test_a_request_collecting_views_ends_when_the_node_is_deactivated() -> None:
    """Found from outside: a request collecting views at deactivate and cleanup never got a last
    status, and one across a pause longer than teach.timeout took views from before and after
    it under one label (the timeout's timer is gone while inactive). Deactivating ends it."""
    h = RosHarness("", params={"teach.timeout": 30.0}, managed=True)
    try:
        assert h.change_state("configure") is True and h.change_state("activate") is True
        t = TeachClient(h)
        t.send(t.teach_pub, json.dumps({"label": "slow_box", "views": 50, "id": "r1"}))
        assert t.wait_status("slow_box", ("collecting",))["views"] == 0
        assert h.change_state("deactivate") is True
        s = t.wait_status("slow_box")
        assert s["state"] == "failed" and s["request_id"] == "r1", s
        assert s["reason"].startswith("the node was deactivated, with 0/50 views"), s
        assert h.change_state("activate") is True
        t = TeachClient(h)
        _frame(h, 1_000_000_000, [(280, 190, GREEN)])
        assert not any(x["label"] == "slow_box" for x in t.statuses) and h.alive()
    finally:
        h.close()
