"""replay-eval's tracking counts on a tiny sequence whose answers were worked out by hand, and
`tracking_summary` on hand-made records."""
import json

import numpy as np
import pytest

from robot_classify.evaluation.replay_eval import replay_eval
from robot_classify.evaluation.tracking_metrics import tracking_summary
from robot_classify.learn.features import FeaturePipeline
from robot_classify.learn.knn import KNNClassifier
from robot_classify.learn.model import ClassifierModel
from robot_classify.data.bags import write_bag
from robot_classify.runtime.camera import Intrinsics
from robot_classify.runtime.patches import extract_objects
from test_replay_eval import BLUE, K, RED, TOPICS, frame


def sequence_frame(red_x, blue_x, blue_drawn=True):
    """Red (ground-truth id 1) and blue (id 2) boxes at y = 100; ids persist across frames."""
    scene = frame([(red_x, 100, RED)] + ([(blue_x, 100, BLUE)] if blue_drawn else []),
                  [("red_box", red_x, 100), ("blue_box", blue_x, 100)])
    return scene


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    # 0-3: both drift 4 px per frame (a turning camera); 4: blue not seen (missed); 5: blue back;
    # 6: red 400 px away (picked up and put down: a new track); 7: red drifts on.
    frames = [sequence_frame(100 + 4 * f, 300 + 4 * f) for f in range(4)]
    frames += [sequence_frame(116, 316, blue_drawn=False), sequence_frame(120, 320),
               sequence_frame(500, 324), sequence_frame(504, 328)]
    ex = extract_objects(frames[0].color, frames[0].depth, Intrinsics(**K))
    crops = ex.patches[np.argsort([o.bbox[0] for o in ex.objects])]
    model = ClassifierModel(FeaturePipeline("pixels", center=False), KNNClassifier(1, "l2", device="cpu"),
                            ["red_box", "blue_box"]).fit(crops, np.array([0, 1]))
    return write_bag(tmp_path_factory.mktemp("bag") / "sequence", frames), model


def test_replay_eval_counts_id_switches_and_fragmentation_by_hand(sequence, tmp_path):
    path, model = sequence
    m = replay_eval(path, model, tmp_path / "report", TOPICS, quiet=True, report=False)
    t = m["tracking"]
    assert t["object_frames"] == 16 and t["matched_object_frames"] == 15  # blue missed once
    assert t["id_switches"] == 1  # red's jump: a new track
    assert t["fragmentations"] == 1  # blue: tracked, missed, tracked again with its own id
    assert t["tracks"] == 3 and t["ground_truth_objects"] == 2
    assert t["accuracy"] == {"n": 15, "single_frame": 1.0, "fused": 1.0}
    assert t["label_changes"]["fused"] == 0 and t["label_changes"]["track_frames"] == 15
    assert t["mota"] == pytest.approx(1 - (1 + 0 + 1) / 16)
    assert t["persistent_ids"] is True and t["id_reuse"] is None
    docs = [json.loads(line) for line in (tmp_path / "report" / "object_labels.jsonl").read_text().splitlines()]
    blue = [o["track_id"] for d in docs for o in d["objects"] if o["label"] == "blue_box"]
    red = [o["track_id"] for d in docs for o in d["objects"] if o["label"] == "red_box"]
    assert len(set(blue)) == 1 and len(set(red[:6])) == 1 and len(set(red[6:])) == 1 and red[5] != red[6]


def test_tracking_is_left_out_when_disabled(sequence, tmp_path):
    path, model = sequence
    m = replay_eval(path, model, tmp_path / "r", TOPICS, {"tracking.enabled": False}, quiet=True, report=False)
    assert "tracking" not in m


def rec(frame, gt, track, label="a", fused="a", truth="a", iou=0.9):
    return {"frame": frame, "truth": truth, "known": True, "gt_instance": gt, "iou": iou,
            "track_id": track if iou is not None else None, "label": label if iou is not None else None,
            "fused_label": fused if iou is not None else None, "outcome": "correct" if iou else "missed"}


def test_summary_counts_switches_fragments_accuracy_and_label_changes():
    records = [rec(0, 1, 7), rec(1, 1, 7, label="b"), rec(2, 1, None, iou=None), rec(3, 1, 7),  # 1 fragment
               rec(4, 1, 9, fused="b"), rec(5, 1, 7),  # two switches: to 9 and back to 7
               rec(0, 2, 8), rec(1, 2, 8)]
    s = tracking_summary(records)
    assert (s["id_switches"], s["fragmentations"], s["object_frames"], s["tracks"]) == (2, 1, 8, 3)
    assert s["accuracy"] == {"n": 7, "single_frame": 6 / 7, "fused": 6 / 7}
    # track 7 fused a,a,a,a: 0 changes; its per-frame labels a,b,a,a: 2 changes
    assert (s["label_changes"]["fused"], s["label_changes"]["single_frame"]) == (0, 2)


def test_an_id_is_an_identity_within_its_recording_only():
    """An imported BOP split numbers each scene's objects by obj_id: the same id comes back on
    another object after the tracker ended every track. No switch is counted across, and an id
    naming two classes in two recordings is no sign of ids that do not persist."""
    def at(recording, *args, **kw):
        return {**rec(*args, **kw), "recording": recording}

    records = [at(0, 0, 1, 7), at(0, 1, 1, 7), at(1, 2, 1, 8, truth="b", label="b", fused="b"), at(1, 3, 1, 8,
               truth="b", label="b", fused="b"), at(1, 4, 1, 9, truth="b", label="b", fused="b")]
    s = tracking_summary(records)
    assert s["persistent_ids"] is True and s["sequences"] == 2
    assert (s["id_switches"], s["ground_truth_objects"]) == (1, 2)  # 8 -> 9 within recording 1 only
    assert tracking_summary([rec(0, 1, 7), rec(1, 1, 7)])["sequences"] == 1  # no `recording`: one


def test_ids_that_never_repeat_are_no_identities_either():
    """Found from outside: a `draft-labels` bag numbers every object of every frame anew, and its
    track counts read as measured."""
    from robot_classify.evaluation.tracking_metrics import id_reuse

    once = [rec(0, 1, 1), rec(0, 2, 2, truth="b"), rec(1, 3, 1), rec(1, 4, 2, truth="b")]
    assert id_reuse(once) == "no instance id is in more than one frame"
    assert tracking_summary(once)["persistent_ids"] is False
    assert id_reuse([rec(0, 1, 1), rec(1, 1, 1), rec(1, 2, 2)]) is None  # one id kept: an identity
    assert id_reuse([rec(0, 1, 1), rec(0, 2, 2)]) is None  # one frame: nothing to say yet


def test_a_bag_of_unrelated_scenes_gets_no_track_counts(sequence, tmp_path, capsys):
    """Each scene numbers its objects afresh (make-bag without --sequence): instance 1 is the red
    box in one frame and the blue one in the next. Tried from outside on the demo bag, 0.6.1
    printed 104 id switches for 30 scenes; now it says why there is nothing to count."""
    from robot_classify import cli
    from robot_classify.evaluation.report_html import _tracking_rows

    _, model = sequence
    swapped = [frame([(100, 100, RED), (300, 100, BLUE)], [("red_box", 100, 100), ("blue_box", 300, 100)]),
               frame([(100, 100, RED), (300, 100, BLUE)], [("blue_box", 300, 100), ("red_box", 100, 100)])]
    path = write_bag(tmp_path / "scenes", swapped)
    t = replay_eval(path, model, tmp_path / "r", TOPICS, quiet=True, report=False)["tracking"]
    assert t["persistent_ids"] is False
    assert t["id_reuse"] == "instance 1 is a red_box in frame 0 and a blue_box in frame 1"
    assert _tracking_rows(t) == [("tracks", "not measured", "the ground truth's instance ids do not persist across "
                                  "frames (instance 1 is a red_box in frame 0 and a blue_box in frame 1): tracks need "
                                  "labels that keep one id per object from frame to frame (make-bag --sequence "
                                  "renders such a bag)")]
    model_file = tmp_path / "m.safetensors"
    from robot_classify.learn.model_io import save_model

    save_model(model, model_file)
    assert cli.main(["replay-eval", "--bag", str(path), "--model", str(model_file), "--topics", ",".join(TOPICS),
                     "--no-report", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "tracks: not measured" in out and "id switches" not in out
