"""The generator's moving-camera sequences: ids persist, the camera moves on an arc, a moved object keeps its id."""
import numpy as np
import pytest

from robot_classify.sim.scene_dataset import SEQUENCE_IDS, render_sequences
from robot_classify.sim.scene_render import SceneRenderer


def world_centres(scene):
    """Ground-truth volume centres back in the world frame: static objects stay put while the camera moves."""
    inv = np.linalg.inv(np.array(scene.meta["camera_pose"]["world_to_camera"]))
    return {o["instance"]: (inv @ [*(o["volume_centre"][k] for k in "xyz"), 1.0])[:3]
            for o in scene.meta["objects"] if "volume_centre" in o}


def test_a_sequence_keeps_ids_moves_the_camera_along_an_arc_and_moves_one_object_between_stretches():
    with SceneRenderer(160, 120, fx=154.0) as r:
        frames = list(r.render_sequence(4321, 4, arc_deg=30.0, stretches=2, n_objects=(4, 5), max_distractors=0))
    classes = [{o["instance"]: o["class_name"] for o in f.meta["objects"]} for f in frames]
    for a, b in zip(classes, classes[1:]):
        assert all(a[i] == b[i] for i in a.keys() & b.keys())  # an id names one object throughout
    eyes = [np.array(f.meta["camera_pose"]["eye"]) for f in frames]
    target = np.array(frames[0].meta["camera_pose"]["target"])
    dists = [np.linalg.norm(e - target) for e in eyes]
    assert np.allclose(dists, dists[0]) and all(np.linalg.norm(a - b) > 0.01 for a, b in zip(eyes, eyes[1:]))
    assert [f.meta["sequence_frame"] for f in frames] == [0, 1, 2, 3]
    w = [world_centres(f) for f in frames]
    common = w[0].keys() & w[1].keys()
    assert all(np.allclose(w[0][i], w[1][i], atol=1e-6) for i in common)  # static within a stretch
    moved = [i for i in w[1].keys() & w[2].keys() if not np.allclose(w[1][i], w[2][i], atol=1e-6)]
    assert len(moved) == 1  # between stretches: one object picked up and put down elsewhere


def test_render_sequences_gives_ids_unique_in_the_run():
    scenes = list(render_sequences(2, 1, 77, quiet=True))
    ids = [{o["instance"] for o in s.meta["objects"]} for s in scenes]
    assert all(i < SEQUENCE_IDS for i in ids[0]) and all(SEQUENCE_IDS < i < 2 * SEQUENCE_IDS for i in ids[1])
    assert set(np.unique(scenes[1].mask)) - {0} <= ids[1] | {i for i in range(SEQUENCE_IDS, 2 * SEQUENCE_IDS)}
    with pytest.raises(ValueError, match="frames"):
        next(render_sequences(1, 0, 77))


def test_a_bag_of_sequences_starts_each_one_after_a_gap_that_ends_every_track(tmp_path):
    """`make-bag --sequence`: the next sequence starts SEQUENCE_GAP_S after the last frame of the
    one before, so the node's tracker (and replay-eval's) carries no track from one scene to the
    next; within a sequence, 30 Hz."""
    from robot_classify.data.bags import SEQUENCE_GAP_S, read_frames, write_bag

    scenes = list(render_sequences(2, 2, 77, quiet=True))
    steps = np.diff([f.stamp_ns for f in read_frames(write_bag(tmp_path / "bag", scenes))]) / 1e9
    assert steps == pytest.approx([1 / 30, 1 / 30 + SEQUENCE_GAP_S, 1 / 30])
