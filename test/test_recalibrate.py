"""Recalibration on a team's own labelled frames (evaluation.recalibrate, `robot-classify
calibrate`): clutter a class wins counts as a wrong answer, and the scores follow what the node
is right about there."""
from dataclasses import replace

import numpy as np
import pytest

from robot_classify.cli import main
from robot_classify.data.bags import COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC, write_bag
from robot_classify.evaluation.recalibrate import collect_evidence, recalibrate
from robot_classify.learn.calibration import Evidence, fit_calibration
from robot_classify.learn.features import FeaturePipeline
from robot_classify.learn.knn import KNNClassifier
from robot_classify.learn.model import ClassifierModel
from robot_classify.learn.model_io import load_model, save_model
from robot_classify.runtime.camera import Intrinsics
from robot_classify.runtime.patches import extract_objects

from test_replay_eval import BLUE, K, RED, frame

TOPICS = (COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC)


def test_clutter_a_class_wins_counts_as_wrong_only_when_asked():
    # 3 classes, the last a negative ("unknown"); 60 answers right, 60 clutter rows a class won.
    n = 120
    labels = np.zeros(n, np.int64)
    y = np.where(np.arange(n) < 60, 0, 2)  # truth: class 0, or the negative label (clutter)
    proba = np.tile([1.0, 0.0, 0.0], (n, 1))
    d = np.ones(n)
    ev = Evidence(labels, proba, None, d, d)
    negative = np.array([2])
    as_trained = fit_calibration(ev, y, "knn_logistic", negative)
    on_real = fit_calibration(ev, y, "knn_logistic", negative, clutter_is_wrong=True)
    s_trained = as_trained.apply(ev)[0][0, 0]
    s_real = on_real.apply(ev)[0][0, 0]
    assert s_trained > 0.9  # clutter left out: every answer it sees is right
    assert s_real == pytest.approx(0.5, abs=0.05)  # half of what a class wins is clutter


@pytest.fixture(scope="module")
def clutter_bag(tmp_path_factory):
    """Frames where the red box is a class and the blue box is clutter (no ground truth) that
    a 1-NN model trained on both colours names `blue_box`: half its answers are wrong."""
    frames = [frame([(100 + 20 * i, 100, RED), (300, 100 + 20 * i, BLUE)], [("red_box", 100 + 20 * i, 100)])
              for i in range(12)]
    ex = extract_objects(frames[0].color, frames[0].depth, Intrinsics(**K))
    crops = ex.patches[np.argsort([o.bbox[0] for o in ex.objects])]
    model = ClassifierModel(FeaturePipeline("pixels", center=False), KNNClassifier(1, "l2", device="cpu"),
                            ["red_box", "blue_box"]).fit(np.concatenate([crops] * 12), np.tile([0, 1], 12))
    path = write_bag(tmp_path_factory.mktemp("bag") / "clutter", frames)
    return path, model


def test_evidence_truth_is_the_matched_class_or_none(clutter_bag):
    path, model = clutter_bag
    ev, y, counts = collect_evidence(path, model, TOPICS)
    assert counts == {"frames": 12, "detections": 24, "class_objects": 12, "no_class": 12, "ruled_out": 0}
    assert sorted(y.tolist()) == [-1] * 12 + [0] * 12
    assert ((ev.labels == 0) == (y == 0)).all()  # the red box is named red, the clutter blue


def test_answers_the_size_check_rules_out_are_left_out(clutter_bag):
    """The node says `unknown` where the winning class's product cannot be the segment, whatever
    it scores: those answers are not what a grasp planner sees, and fitting on them (0.5.0 on real
    frames: 49 names fitted where the node published 18) made the scores far too low."""
    path, model = clutter_bag
    marker = replace(model, class_names=["red_box", "large_marker"])  # the blue box is no 12 x 2 cm marker
    ev, y, counts = collect_evidence(path, marker, TOPICS)
    assert counts["ruled_out"] == 12 and counts["detections"] == 12
    assert (y == 0).all() and (ev.labels == 0).all()


def test_calibrate_command_writes_a_new_model_whose_scores_follow_the_frames(clutter_bag, tmp_path, capsys):
    path, model = clutter_bag
    model_file = save_model(model, tmp_path / "m.safetensors")
    out = tmp_path / "recalibrated.safetensors"
    assert main(["calibrate", "--bag", str(path), "--model", str(model_file), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "the model named 24, 12 right" in printed
    # the model's own scores on the same frames beside the fitted ones (an outside trial missed it)
    assert ("on these frames before the fit" in printed) == (model.calibration is not None)
    cal = load_model(out).calibration
    assert load_model(out).meta["training"]["recalibrated_on"]["detections"] == 24
    # its name says what it is: /object_labels and --compare show names
    assert load_model(out).meta["name"] == load_model(model_file).meta["name"] + "+calibrated"
    cal_only, _ = recalibrate(path, model, TOPICS)
    assert cal.min_score == pytest.approx(cal_only.min_score)
    # A second call never overwrites the file it wrote.
    assert main(["calibrate", "--bag", str(path), "--model", str(model_file), "--out", str(out), "--quiet"]) == 2
    assert "exists" in capsys.readouterr().err


def test_the_recipe_fits_the_scores_on_what_the_node_answers_in_rendered_scenes():
    """Recipe 6's last step (`sim.default_recipe.calibrate_on_answers`): the embedded default's
    scores are refitted on the node's answers in rendered scenes of their own seed, clutter named
    counting as wrong; the examples stay, so every label stays."""
    pytest.importorskip("pybullet")
    from robot_classify.runtime.default_model import get_default_model
    from robot_classify.sim.default_recipe import CALIBRATION_SEED_OFFSET, calibrate_on_answers
    from robot_classify.sim.scene_dataset import render_scenes

    model = get_default_model(device="cpu")
    before = model.calibration
    scene = next(render_scenes(1, 99, workers=1, quiet=True))
    crops = extract_objects(scene.color, scene.depth, Intrinsics(**{k: scene.meta["intrinsics"][k]
                                                                    for k in ("fx", "fy", "cx", "cy")})).patches
    first = model.classify(crops)
    counts = calibrate_on_answers(model, seed=0, scenes=8, workers=1)
    assert counts["frames"] == 8 and counts["detections"] >= 20
    assert counts["detections"] == counts["class_objects"] + counts["no_class"]
    assert model.calibration.n_validation == counts["detections"] and model.calibration != before
    after = model.classify(crops)
    assert (after.labels == first.labels).all() and (after.known == first.known).all()
    assert CALIBRATION_SEED_OFFSET not in (0, 4242)  # never the training scenes' or the negatives' seed


def test_calibrate_warns_when_every_name_is_right(clutter_bag, tmp_path, capsys):
    """Ground truth that agrees with every name is what an uncorrected draft (the node's own
    answers) gives: scores fitted to it say every name is sure."""
    _, model = clutter_bag
    frames = [frame([(100 + 20 * i, 100, RED), (300, 100 + 20 * i, RED)],
                    [("red_box", 100 + 20 * i, 100), ("red_box", 300, 100 + 20 * i)]) for i in range(12)]
    path = write_bag(tmp_path / "all_right", frames)
    model_file = save_model(model, tmp_path / "m.safetensors")
    assert main(["calibrate", "--bag", str(path), "--model", str(model_file), "--out", str(tmp_path / "c.safetensors"),
                 "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert "the model named 24, 24 right" in out
    assert "warning: all 24 names the model gives" in err and "draft" in err
