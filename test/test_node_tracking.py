"""Tracks over real DDS: a camera moving around a static scene, frames published by another node;
/object_labels carries track ids that persist and a fused label, and the tracker's parameters
change at run time."""
import json
from pathlib import Path

import pytest

pytest.importorskip("rclpy")
jsonschema = pytest.importorskip("jsonschema")

from robot_classify.evaluation.matching import bbox_tuple, match_boxes  # noqa: E402

from scene_fixtures import camera_k  # noqa: E402

pytestmark = pytest.mark.ros
SCHEMA = json.loads((Path(__file__).parents[1] / "config" / "object_labels.schema.json").read_text())
SEQUENCE_SEED = 900_000_123  # never used to train the default model


def test_the_same_object_keeps_its_track_id_across_frames_and_carries_a_fused_label(harness):
    from robot_classify.sim.scene_render import SceneRenderer

    with SceneRenderer() as r:
        frames = list(r.render_sequence(SEQUENCE_SEED, 6, arc_deg=6.0, n_objects=(3, 5)))
    track_of: dict[int, set[int]] = {}
    for n, s in enumerate(frames):
        stamp = 1_700_000_200_000_000_000 + n * 33_333_333
        harness.publish_frame(s.color, s.depth, camera_k(s), stamp)
        doc = harness.wait_for(stamp)
        jsonschema.validate(doc, SCHEMA)
        assert doc["schema"] == "robot_classify/ObjectLabels/2"
        for o in doc["objects"]:
            assert {"instance", "label", "score", "top_k", "bbox", "centroid"} <= set(o)  # version 1's keys
            assert o["track_hits"] <= o["track_age"] <= n + 1 and o["fused_label"] and 0 <= o["fused_score"] <= 1
        gts = [g for g in s.meta["objects"] if g["visible_fraction"] >= 0.5]
        pairs = match_boxes([bbox_tuple(o["bbox"]) for o in doc["objects"]], [bbox_tuple(g["bbox"]) for g in gts])
        for i, j, _ in pairs:
            track_of.setdefault(gts[j]["instance"], set()).add(doc["objects"][i]["track_id"])
    assert len(track_of) >= 3
    assert all(len(ids) == 1 for ids in track_of.values()), track_of  # one id per object, no switch
    last = doc["objects"]
    assert any(o["track_confirmed"] and o["track_hits"] >= 3 for o in last)
    results = harness.set_parameters(**{"tracking.gate": 0.2, "tracking.confirm_hits": 5})
    assert [r.successful for r in results] == [True, True]
    refused = harness.set_parameters(**{"tracking.enabled": False})
    assert not refused[0].successful  # read-only: decided at start
