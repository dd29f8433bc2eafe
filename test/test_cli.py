"""`robot-classify`: every error a user can cause is one `error:` line and exit status 2.

In-process through `cli.main` (fast); two subprocess checks for what only a fresh
interpreter shows (what importing the CLI pulls in, the real exit status).
"""
import json
import logging
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from robot_classify import cli
from robot_classify.runtime.default_model import default_model_path

SUBCOMMANDS = ["train", "evaluate", "predict", "demo", "build-default-model", "generate", "patches", "eval-patches",
               "make-bag", "import-dataset", "replay-eval", "bag-to-dataset", "replay"]


@pytest.fixture(autouse=True)
def _restore_logging():
    """`main` calls logging.basicConfig; a handler on a finished test's captured stderr must not stay."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def run(argv, capsys):
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as e:  # argparse: --help (0) and usage errors (2)
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if "error:" in line]


def write_png(path: Path, rgb=(200, 30, 30), size=(40, 40)) -> Path:
    img = np.zeros((*size, 3), np.uint8)
    img[:] = rgb[::-1]
    assert cv2.imwrite(str(path), img)
    return path


@pytest.fixture
def folder_dataset(tmp_path):
    """train/{red,blue}/ with 3 patches each: 6 training patches."""
    root = tmp_path / "ds"
    for name, rgb in (("red", (220, 20, 20)), ("blue", (20, 20, 220))):
        (root / "train" / name).mkdir(parents=True)
        for i in range(3):
            write_png(root / "train" / name / f"{i}.png", rgb)
    return root


@pytest.fixture(scope="module")
def tiny_model_file(tmp_path_factory):
    """A 1-NN model of two colours, saved: red and blue."""
    from robot_classify.learn.features import FeaturePipeline
    from robot_classify.learn.knn import KNNClassifier
    from robot_classify.learn.model import ClassifierModel
    from robot_classify.learn.model_io import save_model

    patches = np.stack([np.full((32, 32, 3), c, np.uint8) for c in ((220, 20, 20), (20, 20, 220))])
    model = ClassifierModel(FeaturePipeline("pixels", center=False), KNNClassifier(1, "l2", device="cpu"),
                            ["red", "blue"]).fit(patches, np.array([0, 1]))
    model.meta = {"name": "tiny"}
    return save_model(model, tmp_path_factory.mktemp("model") / "tiny.safetensors")


# ---------------------------------------------------------------- imports and the default model
def test_importing_the_cli_loads_neither_pybullet_nor_matplotlib():
    code = ("import sys, robot_classify.cli as c; c.build_parser(); "
            "print(sorted(m for m in ('pybullet', 'matplotlib') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_load_model_calls_get_default_model_with_its_signature(monkeypatch):
    import argparse

    import robot_classify.runtime.default_model as dm

    calls = []
    monkeypatch.setattr(dm, "get_default_model", lambda device="auto": calls.append(device) or "model")
    args = argparse.Namespace(model=None, device="cpu", quiet=True)
    assert cli._load_model(args) == "model"
    assert calls == ["cpu"]


@pytest.mark.skipif(not default_model_path().is_file(), reason="the shipped default model is not built yet")
def test_predict_with_the_shipped_default_model(tmp_path, capsys):
    img = write_png(tmp_path / "red.png")
    code, out, err = run(["predict", "--device", "cpu", img, "--quiet"], capsys)
    assert code == 0, err
    name, label, score = out.strip().split("\t")[:3]  # unknown: a fourth column names the top class
    assert name == str(img) and label and 0.0 <= float(score) <= 1.0


# ---------------------------------------------------------------- build-default-model
def test_build_default_model_passes_its_options_to_the_recipe(tmp_path, capsys, monkeypatch):
    calls = []
    fake = types.ModuleType("robot_classify.sim.default_recipe")
    fake.build_default_model = lambda out, **kw: calls.append((out, kw)) or Path(out)
    monkeypatch.setitem(sys.modules, "robot_classify.sim.default_recipe", fake)
    out = tmp_path / "m.safetensors"
    code, stdout, err = run(["build-default-model", "--out", out], capsys)
    assert code == 0, err
    assert calls == [(str(out), {"seed": 0, "scenes": 600, "device": "auto", "quiet": False, "workers": 2,
                                 "data_dir": None, "camera_effects": ()})]
    assert str(out) in stdout
    calls.clear()
    code, _, err = run(["build-default-model", "--out", out, "--seed", "3", "--scenes", "12", "--workers", "1",
                        "--data-dir", tmp_path / "data", "--quiet", "--camera-effects", "glare,blur"], capsys)
    assert code == 0, err
    assert calls[0][1] == {"seed": 3, "scenes": 12, "device": "auto", "quiet": True, "workers": 1,
                           "data_dir": str(tmp_path / "data"), "camera_effects": ("glare", "blur")}
    code, _, err = run(["build-default-model", "--out", out, "--camera-effects", "sepia"], capsys)
    assert code == 2 and "unknown camera effect(s) sepia" in err


def test_build_default_model_never_overwrites_a_file(tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    out.write_bytes(b"keep me")
    code, _, err = run(["build-default-model", "--out", out, "--scenes", "1"], capsys)
    assert code == 2
    assert error_lines(err) == [f"error: {out} exists; choose a new path (model files are never overwritten)"]
    assert out.read_bytes() == b"keep me"


# ---------------------------------------------------------------- demo output folder
def test_demo_out_new_folder_gets_the_marker(tmp_path):
    out = tmp_path / "a" / "demo"
    cli.prepare_demo_out(out)
    assert sorted(p.name for p in out.iterdir()) == [cli.DEMO_MARKER]


def test_demo_out_empty_existing_folder_is_used(tmp_path):
    cli.prepare_demo_out(tmp_path)
    assert (tmp_path / cli.DEMO_MARKER).is_file()


def test_demo_refuses_a_non_empty_folder_that_is_no_demo_output(tmp_path, capsys):
    (tmp_path / "thesis.tex").write_text("years of work")
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        cli.prepare_demo_out(tmp_path)
    code, _, err = run(["demo", "--out", tmp_path, "--frames", "2"], capsys)  # refused before anything loads
    assert code == 2 and len(error_lines(err)) == 1 and "never deletes" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report", "thesis.tex"]
    assert (tmp_path / "report" / "notes.txt").read_text() == "mine"


def test_demo_rerun_removes_only_the_demos_own_files(tmp_path):
    cli.prepare_demo_out(tmp_path)
    for d in ("demo_bag", "report"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "x").write_text("from the last demo")
    (tmp_path / "mine.txt").write_text("the user's")
    (tmp_path / "mine").mkdir()
    cli.prepare_demo_out(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [cli.DEMO_MARKER, "mine", "mine.txt"]
    assert (tmp_path / "mine.txt").read_text() == "the user's"


def test_demo_refuses_a_file_as_out(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        cli.prepare_demo_out(f)
    assert f.read_text() == "x"


# ---------------------------------------------------------------- option validation in the parser
BAD_NUMBERS = [
    (["train", "--dataset", "nowhere", "--out", "m"], "--k", "0"),
    (["train", "--dataset", "nowhere", "--out", "m"], "--k", "three"),
    (["train", "--dataset", "nowhere", "--out", "m"], "--folds", "1"),
    (["train", "--dataset", "nowhere", "--out", "m"], "--val-fraction", "1"),
    (["train", "--dataset", "nowhere", "--out", "m"], "--val-fraction", "0"),
    (["train", "--dataset", "nowhere", "--out", "m"], "--max-steps", "0"),
    (["train", "--dataset", "nowhere", "--out", "m"], "--pca", "-1"),
    (["train", "--dataset", "nowhere", "--out", "m"], "--seed", "-1"),
    (["train", "--dataset", "nowhere", "--out", "m"], "--reg", "-0.1"),
    (["train", "--dataset", "nowhere", "--out", "m"], "--lr", "0"),
    (["train", "--dataset", "nowhere", "--out", "m"], "--metric", "l3"),
    (["train", "--dataset", "nowhere", "--out", "m"], "--features", ","),
    (["demo", "--out", "nowhere"], "--frames", "0"),
    (["generate", "--out", "nowhere"], "--scenes", "0"),
    (["generate", "--out", "nowhere"], "--workers", "0"),
    (["generate", "--out", "nowhere"], "--test-fraction", "1"),
    (["generate", "--out", "nowhere"], "--jitters", "0"),
    (["make-bag", "--out", "nowhere"], "--scenes", "x"),
    (["build-default-model", "--out", "nowhere"], "--scenes", "0"),
    (["import-dataset", "nowhere", "--out", "o"], "--every", "0"),
    (["import-dataset", "nowhere", "--out", "o"], "--max-frames", "0"),
    (["import-dataset", "nowhere", "--out", "o"], "--rate", "0"),
    (["patches", "--color", "nowhere", "--out", "o"], "--padding", "3"),
    (["patches", "--color", "nowhere", "--out", "o"], "--scale", "3"),
    (["eval-patches", "--scenes", "nowhere"], "--limit", "-1"),
    (["replay-eval", "--bag", "nowhere", "--report", "r"], "--min-score", "1.5"),
    (["replay-eval", "--bag", "nowhere", "--report", "r"], "--topics", "/a,/b"),
    (["bag-to-dataset", "--bag", "nowhere", "--out", "o"], "--split-by-time", "0"),
    (["bag-to-dataset", "--bag", "nowhere", "--out", "o"], "--split-by-time", "nan"),
    (["replay", "--bag", "nowhere"], "--rate", "0"),
    (["replay", "--bag", "nowhere"], "--rate", "fast"),
    (["replay", "--bag", "nowhere"], "--wait", "-1"),
    (["teach", "--bag", "nowhere", "--label", "x", "--out", "o"], "--frames", "3:2"),
]


@pytest.mark.parametrize("argv,option,value", BAD_NUMBERS, ids=[f"{a[0]}{o}={v}" for a, o, v in BAD_NUMBERS])
def test_bad_numbers_fail_in_the_parser_with_one_clear_line(argv, option, value, capsys):
    t0 = time.perf_counter()
    code, out, err = run([*argv, option, value], capsys)
    assert code == 2
    lines = error_lines(err)
    assert len(lines) == 1 and f"argument {option}:" in lines[0], err
    assert "<lambda>" not in err and "no such" not in err  # the parser, not a loader, said no
    assert time.perf_counter() - t0 < 1.0


@pytest.mark.parametrize("argv", [["train", "--out", "m"], ["replay-eval", "--bag", "b"], ["predict"],
                                  ["build-default-model"], ["make-bag"], []])
def test_missing_required_arguments_exit_2_with_one_error_line(argv, capsys):
    code, _, err = run(argv, capsys)
    assert code == 2
    assert len(error_lines(err)) == 1 and "required" in err


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_help(command, capsys):
    code, out, _ = run([command, "--help"], capsys)
    assert code == 0
    assert out.startswith(f"usage: robot-classify {command}") and "--quiet" in out


@pytest.mark.parametrize("argv,quiet", [(["--quiet", "replay", "--bag", "b"], True),
                                        (["replay", "--bag", "b", "--quiet"], True),
                                        (["replay", "--bag", "b"], False)])
def test_quiet_before_or_after_the_subcommand(argv, quiet):
    assert cli.build_parser().parse_args(argv).quiet is quiet


def test_k_larger_than_the_training_set_is_an_error_naming_both(folder_dataset, tmp_path, capsys):
    code, _, err = run(["train", "--dataset", folder_dataset, "--k", "7", "--features", "pixels",
                        "--out", tmp_path / "m.safetensors", "--quiet"], capsys)
    assert code == 2
    assert error_lines(err) == ["error: k=7 is larger than the training set (6 patches)"]
    assert not (tmp_path / "m.safetensors").exists()


def test_k_equal_to_the_training_set_trains(folder_dataset, tmp_path, capsys):
    from robot_classify.learn.model_io import load_model

    code, out, err = run(["train", "--dataset", folder_dataset, "--k", "6", "--features", "pixels",
                          "--out", tmp_path / "m.safetensors", "--quiet"], capsys)
    assert code == 0, err
    assert load_model(tmp_path / "m.safetensors", device="cpu").classifier.k == 6


def test_a_class_only_in_test_is_warned_of(folder_dataset, tmp_path, capsys):
    (folder_dataset / "test" / "green").mkdir(parents=True)
    write_png(folder_dataset / "test" / "green" / "0.png", (20, 220, 20))
    code, _, err = run(["train", "--dataset", folder_dataset, "--k", "1", "--features", "pixels",
                        "--out", tmp_path / "m.safetensors", "--quiet"], capsys)
    assert code == 0 and "warning: green has no example in train/" in err and "can never name it" in err


def test_train_negatives_recipe_learns_the_recipes_clutter_as_unknown(folder_dataset, tmp_path, capsys, monkeypatch):
    """`--negatives recipe` adds the recipe's rendered objects of no class (here a stand-in: the
    real ones take minutes to render once) under the negative label `unknown`, learned and never
    named; at most twice the largest class (3 crops here), so they do not swamp a small set."""
    from robot_classify.learn.model_io import load_model
    from robot_classify.sim import default_recipe

    grey = np.full((8, 32, 32, 3), 128, np.uint8)
    monkeypatch.setattr(default_recipe, "recipe_negatives", lambda quiet=True: (grey, np.arange(8)))
    code, out, err = run(["train", "--dataset", folder_dataset, "--features", "pixels", "--k", "1",
                          "--negatives", "recipe", "--out", tmp_path / "m.safetensors"], capsys)
    assert code == 0, err
    assert "6 rendered crops of objects of no class added as 'unknown'" in out
    model = load_model(tmp_path / "m.safetensors", device="cpu")
    assert model.class_names == ["blue", "red", "unknown"] and model.known_class_names == ["blue", "red"]
    assert model.meta["training"]["negatives"] == {"source": "recipe", "crops": 6}
    pred = model.classify(grey[:1])
    assert not pred.known[0]  # a crop like the negatives: unknown, never a name


# ---------------------------------------------------------------- paths and files
def test_missing_image_says_no_such_file_without_an_opencv_warning(tmp_path, capfd):
    missing = tmp_path / "missing.png"
    code = cli.main(["predict", str(missing)])
    err = capfd.readouterr().err
    assert code == 2
    assert error_lines(err) == [f"error: no such file: {missing}"]
    assert "WARN" not in err and "imread" not in err


def test_predict_skips_unreadable_images_but_labels_the_rest(tmp_path, capsys, tiny_model_file):
    (tmp_path / "bad.png").write_bytes(b"not an image")
    red = write_png(tmp_path / "red.png", (220, 20, 20))
    code, out, err = run(["predict", "--model", tiny_model_file, tmp_path / "missing.png", tmp_path / "bad.png", red],
                         capsys)
    assert code == 1  # the others labelled; a script learns that some were not (found from outside: 0)
    assert out.strip().split("\t")[:2] == [str(red), "red"]
    assert f"warning: no such file: {tmp_path / 'missing.png'}" in err
    assert f"warning: {tmp_path / 'bad.png'}: not a readable image" in err


def _model_file(folder, colours, labels, k=1):
    from robot_classify.learn.features import FeaturePipeline
    from robot_classify.learn.knn import KNNClassifier
    from robot_classify.learn.model import ClassifierModel
    from robot_classify.learn.model_io import save_model

    names = list(dict.fromkeys(labels))
    patches = np.stack([np.full((32, 32, 3), c, np.uint8) for c in colours])
    model = ClassifierModel(FeaturePipeline("pixels", center=False), KNNClassifier(k, "l2", device="cpu"),
                            names).fit(patches, np.array([names.index(x) for x in labels]))
    return save_model(model, folder / "m.safetensors")


def test_predict_says_unknown_with_the_deciding_score_and_the_top_class(tmp_path, capsys):
    """A crop the negative examples win: `unknown`, not the best real class with score 0.000
    (the node's rule), with the reason. No class has any evidence there, so none is the top class
    (it had printed the model's first class, `red 0.000`); a crop below min_score names its top class."""
    model = _model_file(tmp_path, [(220, 20, 20), (20, 20, 220), (20, 220, 20)], ["red", "blue", "unknown"])
    green, red = write_png(tmp_path / "green.png", (20, 220, 20)), write_png(tmp_path / "red.png", (220, 20, 20))
    code, out, err = run(["predict", "--model", model, green, red], capsys)
    assert code == 0, err
    unknown, known = [line.split("\t") for line in out.strip().splitlines()]
    assert unknown[:3] == [str(green), "unknown", "0.000"]
    assert unknown[3].startswith("top class: none (no class scores above 0) (unlike the classes")
    assert known == [str(red), "red", "1.000"]


def test_predict_below_min_score_is_unknown_and_json_says_why(tmp_path, capsys):
    model = _model_file(tmp_path, [(220, 20, 20), (220, 20, 20), (20, 20, 220)], ["red", "red", "blue"], k=3)
    red = write_png(tmp_path / "red.png", (220, 20, 20))
    code, out, _ = run(["predict", "--model", model, "--format", "json", red], capsys)
    doc = json.loads(out)
    (row,) = doc["predictions"]
    assert code == 0 and doc["min_score"] == 0.5 and row["label"] == "red" and row["unknown_reason"] is None
    assert 0.5 <= row["score"] < 1.0 and row["top_k"][0] == ["red", row["score"]]
    code, out, _ = run(["predict", "--model", model, "--format", "json", "--min-score", "0.9", red], capsys)
    (row,) = json.loads(out)["predictions"]
    assert (row["label"], row["top_class"], row["unknown_reason"]) == ("unknown", "red", "score below min_score 0.900")
    code, out, _ = run(["predict", "--model", model, "--min-score", "0.9", red], capsys)
    assert out.strip().split("\t") == [str(red), "unknown", f"{row['score']:.3f}",
                                        f"top class: red {row['score']:.3f} (score below min_score 0.900)"]


def test_corrupt_model_file_is_one_error_line(tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 64)
    code, _, err = run(["predict", "--model", bad, write_png(tmp_path / "a.png")], capsys)
    assert code == 2
    assert len(error_lines(err)) == 1 and str(bad) in err and "Traceback" not in err


def test_empty_and_missing_dataset_folders(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run(["train", "--dataset", tmp_path / "empty", "--out", tmp_path / "m"], capsys)
    assert code == 2 and error_lines(err) == [f"error: {tmp_path / 'empty'}: the dataset folder is empty"]
    code, _, err = run(["train", "--dataset", tmp_path / "nowhere", "--out", tmp_path / "m"], capsys)
    assert code == 2 and error_lines(err) == [
        f"error: no such folder: {tmp_path / 'nowhere'} (a dataset is a folder or an .npz file)"]


def test_missing_scene_folder_for_eval_patches(tmp_path, capsys):
    code, _, err = run(["eval-patches", "--scenes", tmp_path / "nowhere", "--no-model"], capsys)
    assert code == 2 and error_lines(err) == [f"error: no such folder: {tmp_path / 'nowhere'}"]
    code, _, err = run(["eval-patches", "--scenes", tmp_path, "--no-model"], capsys)
    assert code == 2 and "no scene folders" in err


def test_failed_replay_eval_leaves_no_report_folder(tmp_path, capsys, tiny_model_file):
    report = tmp_path / "r" / "report"
    code, _, err = run(["replay-eval", "--bag", tmp_path / "nowhere", "--report", report,
                        "--model", tiny_model_file], capsys)
    assert code == 2 and len(error_lines(err)) == 1
    assert not (tmp_path / "r").exists()


def test_replay_eval_no_report_alone_prints_the_figures_and_keeps_no_file(tmp_path, capsys, tiny_model_file,
                                                                          monkeypatch):
    """As it was tried from outside: `replay-eval --no-report` for the figures, no folder named."""
    from robot_classify.data.bags import write_bag
    from scene_fixtures import rendered

    bag = write_bag(tmp_path / "bag", [rendered(910_000_000 + i) for i in range(2)])
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    code, out, err = run(["replay-eval", "--bag", bag, "--model", tiny_model_file, "--no-report", "--quiet"], capsys)
    assert code == 0, err
    assert "object accuracy" in out and "report:" not in out
    assert list(work.iterdir()) == []
    code, _, err = run(["replay-eval", "--bag", bag, "--compare", tiny_model_file, tiny_model_file, "--no-report"],
                       capsys)
    assert code == 2 and error_lines(err) == [
        "error: --report FOLDER is required for what replay-eval writes (or --no-report without it, to print the "
        "figures and keep no file)"]


def test_train_and_bag_to_dataset_never_write_over_what_is_there(tmp_path, capsys, tiny_model_file):
    """Tried from outside on 0.6.1: `train` replaced an existing model, and `bag-to-dataset` into a
    folder holding another bag's set mixed the two and overwrote crops of the same stamp."""
    model = tmp_path / "m.safetensors"
    model.write_bytes(b"mine")
    code, _, err = run(["train", "--dataset", tmp_path, "--out", model], capsys)
    assert code == 2 and error_lines(err) == [
        f"error: {model} exists; choose a new path (train never overwrites a model)"]
    assert model.read_bytes() == b"mine"
    kept = tmp_path / "data" / "train" / "mug" / "1700000000000000000_00000.png"
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"a crop")
    code, _, err = run(["bag-to-dataset", "--bag", tmp_path / "nowhere", "--out", tmp_path / "data",
                        "--model", tiny_model_file], capsys)
    assert code == 2 and error_lines(err) == [
        f"error: {tmp_path / 'data'} exists and is not an empty folder; choose a new one (bag-to-dataset never "
        "writes over or among files)"]
    assert kept.read_bytes() == b"a crop"


def test_cli_end_to_end_exit_status_in_a_fresh_process(tmp_path):
    res = subprocess.run([sys.executable, "-m", "robot_classify.cli", "train", "--dataset", str(tmp_path),
                          "--out", str(tmp_path / "m"), "--max-steps", "0"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    # one line, as every error (found from outside: argparse printed the usage before it)
    assert res.stderr.strip().splitlines() == [
        "robot-classify train: error: argument --max-steps: must be an integer >= 1, got 0 "
        "(`robot-classify train --help` for the options)"]
    res = subprocess.run([sys.executable, "-m", "robot_classify.cli", "train", "--dataset", str(tmp_path),
                          "--out", str(tmp_path / "m"), "--quiet"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert res.stderr.strip() == f"error: {tmp_path}: the dataset folder is empty"


# ---------------------------------------------------------------- replay waits for subscribers
@pytest.mark.ros
def test_replay_waits_for_subscribers_and_times_out_clearly(tmp_path, monkeypatch):
    pytest.importorskip("rclpy")
    from robot_classify.data.bags import COLOR_TOPIC, DEPTH_TOPIC, GT_TOPIC, INFO_TOPIC, write_bag
    from robot_classify.sim.scene_render import RenderedScene

    # A domain of its own: nobody else's subscriber may match.
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.setenv("ROS_DOMAIN_ID", str(150 + os.getpid() % 50))
    scene = RenderedScene(np.zeros((48, 64, 3), np.uint8), np.full((48, 64), 1000, np.uint16),
                          np.zeros((48, 64), np.uint16),
                          {"intrinsics": {"fx": 50.0, "fy": 50.0, "cx": 32.0, "cy": 24.0}, "objects": []})
    bag = write_bag(tmp_path / "bag", [scene, scene])
    import rclpy
    from sensor_msgs.msg import CameraInfo, Image

    from robot_classify.ros.replay import replay

    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match=f"no subscriber matched {COLOR_TOPIC} within 0.5 s"):
        replay(bag, topics=[COLOR_TOPIC], wait_for_subscribers=0.5)
    assert time.monotonic() - t0 < 5.0
    rclpy.init()
    try:
        listener = rclpy.create_node("test_replay_listener")
        listener.create_subscription(Image, COLOR_TOPIC, lambda msg: None, 10)
        assert replay(bag, topics=[COLOR_TOPIC], rate=10.0, wait_for_subscribers=10.0) == 2
        # The whole bag: it waits for the camera's topics, not for a listener to its ground truth
        with pytest.raises(TimeoutError) as e:
            replay(bag, wait_for_subscribers=0.5)
        assert f"{DEPTH_TOPIC}, {INFO_TOPIC}" in str(e.value) and COLOR_TOPIC not in str(e.value)
        assert GT_TOPIC not in str(e.value)
        listener.create_subscription(Image, DEPTH_TOPIC, lambda msg: None, 10)
        listener.create_subscription(CameraInfo, INFO_TOPIC, lambda msg: None, 10)
        assert replay(bag, rate=10.0, wait_for_subscribers=10.0) == 8  # 2 frames x colour, depth, info, truth
        listener.destroy_node()
    finally:
        rclpy.try_shutdown()


@pytest.mark.ros
def test_replay_command_with_no_listener_stops_with_one_line_instead_of_publishing_into_the_void(
        tmp_path, monkeypatch, capsys):
    pytest.importorskip("rclpy")
    from robot_classify.data.bags import write_bag
    from robot_classify.sim.scene_render import RenderedScene

    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.setenv("ROS_DOMAIN_ID", str(150 + (os.getpid() + 7) % 50))
    scene = RenderedScene(np.zeros((48, 64, 3), np.uint8), np.full((48, 64), 1000, np.uint16),
                          np.zeros((48, 64), np.uint16),
                          {"intrinsics": {"fx": 50.0, "fy": 50.0, "cx": 32.0, "cy": 24.0}, "objects": []})
    bag = write_bag(tmp_path / "bag", [scene])
    code, out, err = run(["replay", "--bag", str(bag), "--wait", "0.5"], capsys)
    assert code == 2 and "published" not in out
    lines = error_lines(err)
    assert len(lines) == 1 and lines[0].startswith("error: no subscriber matched /camera/") \
        and "within 0.5 s (is the receiving node running" in lines[0], err


def test_every_option_of_every_command_says_what_it_does():
    """`--help` and the generated command page are the CLI's reference: no bare option names."""
    import argparse

    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    bare = {name: [a.option_strings[0] if a.option_strings else a.dest for a in p._actions
                   if not a.help and a.dest != "help"] for name, p in sub.choices.items()}
    assert not {name: opts for name, opts in bare.items() if opts}


def test_model_default_names_the_embedded_model_as_compare_does(tmp_path, capsys):
    import cv2

    crop = tmp_path / "crop.png"
    cv2.imwrite(str(crop), np.full((32, 32, 3), 128, np.uint8))
    code, out, err = run(["predict", "--model", "default", "--format", "json", crop], capsys)
    assert code == 0 and "no such model" not in err
    assert json.loads(out)["model"].startswith("default-")


def test_teach_views_are_bounded_at_parse_time_as_the_teacher_bounds_them(capsys):
    """Tried from outside: `teach --views 201` failed only after the bag and model had loaded."""
    from robot_classify.runtime.teaching import MAX_VIEWS

    assert cli.TEACH_MAX_VIEWS == MAX_VIEWS
    t0 = time.perf_counter()
    code, _, err = run(["teach", "--bag", "b", "--label", "x", "--out", "o", "--views", str(MAX_VIEWS + 1)], capsys)
    assert code == 2 and f"argument --views: must be an integer in [1, {MAX_VIEWS}]" in err
    assert time.perf_counter() - t0 < 1.0


def test_offline_errors_name_what_the_user_gave(tmp_path, capsys, tiny_model_file):
    """Tried from outside: a missing --ground-truth file read "[Errno 2] ..." and an unwritable
    --out named a temporary file."""
    from robot_classify.learn.model_io import load_model, save_model

    from robot_classify.data.bags import write_bag
    from scene_fixtures import rendered

    bag = write_bag(tmp_path / "bag", [rendered(910_000_100)])
    code, _, err = run(["replay-eval", "--bag", bag, "--report", tmp_path / "r", "--model", tiny_model_file,
                        "--ground-truth", tmp_path / "nosuch.jsonl"], capsys)
    assert code == 2 and "no such ground-truth file" in err and "--ground-truth" in err
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError, match=r"cannot write .*file/m.safetensors: .*file is a file, not a folder"):
        save_model(load_model(tiny_model_file), tmp_path / "file" / "m.safetensors")


def test_options_are_checked_before_the_work_they_would_waste(tmp_path, capsys, folder_dataset, tiny_model_file):
    """Found from outside: --compare's second model was loaded after a whole run of the first
    (leaving its report), --plots naming a file failed after the evaluation, and --folds above
    the training size ended in scikit-learn's "Found array with 0 sample(s)"."""
    code, _, err = run(["replay-eval", "--bag", tmp_path / "no_bag", "--report", tmp_path / "cmp",
                        "--compare", tiny_model_file, tmp_path / "missing.safetensors"], capsys)
    assert code == 2 and "missing.safetensors" in err and not (tmp_path / "cmp").exists()
    plots = tmp_path / "plots.txt"
    plots.write_text("keep")
    code, _, err = run(["evaluate", "--dataset", folder_dataset, "--split", "train", "--model", tiny_model_file,
                        "--plots", plots], capsys)
    assert code == 2 and "--plots" in err and "is a file" in err and plots.read_text() == "keep"
    code, _, err = run(["train", "--dataset", folder_dataset, "--features", "pixels", "--folds", "7",
                        "--out", tmp_path / "m.safetensors"], capsys)
    assert code == 2 and "--folds 7 is more than the 6 training patches" in err, err


def test_generate_refuses_a_folder_with_files_and_leaves_nothing_when_interrupted(tmp_path, capsys, monkeypatch):
    """Found from outside: into an existing folder it overwrote some scenes and kept the others'
    patches (train then loaded 619 patches of two runs); Ctrl-C left 16 of 40 scenes."""
    import robot_classify.sim.scene_dataset as sd

    used = tmp_path / "used"
    used.mkdir()
    (used / "scenes").mkdir()
    code, _, err = run(["generate", "--out", used, "--scenes", "2", "--quiet"], capsys)
    assert code == 2 and "exists and is not an empty folder" in err and sorted(used.iterdir()) == [used / "scenes"]
    code, _, err = run(["generate", "--out", tmp_path / "x", "--scenes", "2", "--no-scenes"], capsys)
    assert code == 2 and "would write nothing" in err

    def interrupted(out, *a, **k):
        (Path(out) / "scenes" / "000000").mkdir(parents=True)
        raise KeyboardInterrupt

    monkeypatch.setattr(sd, "generate", interrupted)
    assert cli.main(["generate", "--out", str(tmp_path / "new"), "--scenes", "2", "--quiet"]) == 130
    assert sorted(p.name for p in tmp_path.iterdir()) == ["used"]
    monkeypatch.setattr(sd, "generate", lambda out, *a, **k: (Path(out) / "scenes").mkdir() or {})
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["generate", "--out", str(empty), "--scenes", "2", "--quiet"]) == 0
    assert (empty / "scenes").is_dir() and sorted(p.name for p in tmp_path.iterdir()) == ["empty", "used"]


def test_options_that_would_be_ignored_are_refused(tmp_path, capsys, folder_dataset):
    code, _, err = run(["make-bag", "--out", tmp_path / "b", "--scenes", "1", "--arc", "30"], capsys)
    assert code == 2 and "--arc and --stretches shape a --sequence" in err
    code, _, err = run(["make-bag", "--out", tmp_path / "b", "--scenes", "1", "--sequence", "3", "--layout",
                        "crowded"], capsys)
    assert code == 2 and "does not combine with --sequence" in err
    code, _, err = run(["train", "--dataset", folder_dataset, "--classifier", "knn", "--lr", "0.1",
                        "--out", tmp_path / "m.safetensors"], capsys)
    assert code == 2 and "--reg and --lr are the linear classifier's" in err
    code, _, err = run(["train", "--dataset", folder_dataset, "--classifier", "linear", "--k", "3",
                        "--out", tmp_path / "m.safetensors"], capsys)
    assert code == 2 and "--k and --metric are the kNN's" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


@pytest.mark.parametrize("argv", [
    ["teach", "--bag", "{bag}", "--label", "mug", "--out", "{bag}/t.safetensors"],
    ["teach", "--images", "{bag}", "--label", "mug", "--out", "{bag}/t.safetensors"],
    ["calibrate", "--bag", "{bag}", "--out", "{bag}/c.safetensors"],
    ["bag-to-dataset", "--bag", "{bag}", "--out", "{bag}/ds"],
    ["replay-eval", "--bag", "{bag}", "--report", "{bag}/report"],
    ["draft-labels", "--bag", "{bag}", "--out", "{bag}/draft"],
    ["import-dataset", "{bag}", "--out", "{bag}/sub_bag"],
])
def test_no_command_writes_into_what_it_reads(argv, tmp_path, capsys):
    """Found from outside: only draft-labels refused an output inside its bag; the others wrote
    into it (and import-dataset into the dataset it read)."""
    bag = tmp_path / "bag"
    bag.mkdir()
    (bag / "metadata.yaml").write_text("x")
    code, _, err = run([a.replace("{bag}", str(bag)) for a in argv], capsys)
    assert code == 2 and "is inside" in err and "which this command reads" in err
    assert sorted(p.name for p in bag.iterdir()) == ["metadata.yaml"]


def test_a_dataset_given_as_a_bag_is_pointed_to_import_dataset(tmp_path):
    from robot_classify.data.bags import BagError, open_reader

    (tmp_path / "ds" / "000001").mkdir(parents=True)
    (tmp_path / "ds" / "000001" / "scene_camera.json").write_text("{}")
    with pytest.raises(BagError, match="a BOP dataset: make a bag of it first with robot-classify import-dataset"):
        open_reader(tmp_path / "ds")


def test_an_output_beside_an_input_or_a_file_input_is_not_refused(tmp_path):
    from robot_classify.data.bags import refuse_output_inside

    (tmp_path / "bag").mkdir()
    (tmp_path / "model.safetensors").write_bytes(b"x")
    for out in ("bag2/o", "bag.safetensors", "bag/../beside"):
        refuse_output_inside(tmp_path / out, [tmp_path / "bag", tmp_path / "model.safetensors"])
    with pytest.raises(ValueError, match="is inside"):
        refuse_output_inside(tmp_path / "bag", [tmp_path / "bag"])  # the input itself


def test_a_bag_that_ends_early_says_so_and_another_file_does_not(tmp_path):
    from robot_classify.data.bags import BagError, open_reader, write_bag
    from test_replay_eval import frame, RED

    bag = write_bag(tmp_path / "whole", [frame([(100, 100, RED)], [("red_box", 100, 100)])])
    mcap = next(bag.glob("*.mcap"))
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "metadata.yaml").write_text((bag / "metadata.yaml").read_text())
    (tmp_path / "cut" / mcap.name).write_bytes(mcap.read_bytes()[:-40])
    with pytest.raises(BagError, match="ends early"):
        open_reader(tmp_path / "cut")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "metadata.yaml").write_text((bag / "metadata.yaml").read_text())
    (tmp_path / "other" / mcap.name).write_bytes(b"not an mcap file at all, long enough to be read" * 4)
    with pytest.raises(BagError) as e:
        open_reader(tmp_path / "other")
    assert "ends early" not in str(e.value)


# ---------------------------------------------------------------- files a command writes
def _instances(path: Path, boxes) -> Path:
    """A 16-bit instance-id image (`--mode mask`) with one filled box per instance, ids 1..n."""
    ids = np.zeros((60, 80), np.uint16)
    for i, (x, y) in enumerate(boxes, 1):
        ids[y:y + 20, x:x + 20] = i
    assert cv2.imwrite(str(path), ids)
    return path


def test_patches_replaces_its_own_crops_and_never_a_users_files(tmp_path, capsys):
    """Found from outside: `patches --out` overwrote a user's overlay.png and objects.json, and a
    second frame with fewer objects left the first frame's crops beside its objects.json."""
    color = write_png(tmp_path / "c.png", (90, 160, 40), (60, 80))
    out = tmp_path / "crops"
    code, _, err = run(["patches", "--color", color, "--mode", "mask",
                        "--mask", _instances(tmp_path / "m3.png", [(0, 0), (30, 0), (55, 35)]), "--out", out], capsys)
    assert code == 0, err
    assert len(list(out.glob("patch_*.png"))) == 3
    (out / "notes.txt").write_text("mine")  # beside the outputs: kept
    code, _, err = run(["patches", "--color", color, "--mode", "mask",
                        "--mask", _instances(tmp_path / "m1.png", [(10, 10)]), "--out", out], capsys)
    assert code == 0, err
    assert len(list(out.glob("patch_*.png"))) == 1
    assert len(json.loads((out / "objects.json").read_text())["objects"]) == 1
    assert (out / "notes.txt").read_text() == "mine"
    users = tmp_path / "users"
    users.mkdir()
    (users / "overlay.png").write_text("mine")
    code, _, err = run(["patches", "--color", color, "--mode", "mask", "--mask", tmp_path / "m1.png",
                        "--out", users], capsys)
    assert code == 2 and "never deletes files it did not write" in err
    assert sorted(p.name for p in users.iterdir()) == ["overlay.png"] and (users / "overlay.png").read_text() == "mine"


def test_skipped_frames_are_said_by_kind_with_a_reason():
    """replay-eval's headline and teach's outcome (found from outside: "frames 5/9" and "0/1 views"
    without a word on the four frames the node could not process)."""
    from robot_classify.cli import _skipped_note

    assert _skipped_note({}) == ""
    assert _skipped_note({"bad frame": 1, "bad image": 2}) == " (3 frames skipped: bad frame 1, bad image 2)"
    assert _skipped_note({"bad frame": 1}, {"bad frame": "frame 1: sizes differ"}) == \
        " (1 frame skipped: bad frame 1 [frame 1: sizes differ])"


def test_patches_refuses_inputs_that_do_not_fit_before_it_makes_its_folder(tmp_path, capsys):
    """Found from outside: no --intrinsics, or an RGB image given as depth, failed after the output
    folder was made, leaving it behind with only its marker; the depth's shape was the grid's."""
    import cv2

    color = write_png(tmp_path / "c.png", (90, 160, 40), (60, 80))
    depth = tmp_path / "d.png"
    cv2.imwrite(str(depth), np.full((60, 80), 800, np.uint16))
    out = tmp_path / "crops"
    code, _, err = run(["patches", "--color", color, "--depth", depth, "--out", out], capsys)
    assert code == 2 and "needs a depth image and camera intrinsics" in err and not out.exists()
    code, _, err = run(["patches", "--color", color, "--depth", color, "--intrinsics", "80,80,40,30",
                        "--scale", "2", "--out", out], capsys)
    assert code == 2 and "got shape (60, 80, 3)" in err and not out.exists()


def test_evaluate_never_overwrites_a_users_files(tmp_path, capsys, folder_dataset, tiny_model_file):
    """Found from outside: `evaluate --plots` replaced a user's confusion.png in a folder of other
    files, and `--metrics-out` replaced an existing file. Both are refused before the evaluation;
    a run into its own plots folder replaces its figures."""
    base = ["evaluate", "--dataset", folder_dataset, "--split", "train", "--model", tiny_model_file, "--quiet"]
    mine = tmp_path / "m.json"
    mine.write_text("mine")
    code, out, err = run([*base, "--metrics-out", mine], capsys)
    assert code == 2 and "exists; choose a new path" in err and mine.read_text() == "mine" and "accuracy" not in out
    users = tmp_path / "figures"
    users.mkdir()
    (users / "confusion.png").write_text("mine")
    code, _, err = run([*base, "--plots", users], capsys)
    assert code == 2 and "never deletes files it did not write" in err and (users / "confusion.png").read_text() == "mine"
    plots = tmp_path / "plots"
    for _ in range(2):
        code, _, err = run([*base, "--plots", plots], capsys)
        assert code == 0, err
    assert (plots / "confusion.png").stat().st_size > 100
    (tmp_path / "scenes" / "s0").mkdir(parents=True)
    (tmp_path / "scenes" / "s0" / "scene.json").write_text("{}")
    code, _, err = run(["eval-patches", "--scenes", tmp_path / "scenes", "--no-model", "--metrics-out", mine], capsys)
    assert code == 2 and "exists; choose a new path" in err and mine.read_text() == "mine"


def test_version(capsys):
    from robot_classify import __version__

    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out.strip() == f"robot-classify {__version__}"


@pytest.mark.parametrize("argv", [["train", "--dataset", "d", "--out", ""],
                                  ["replay-eval", "--bag", "b", "--report", ""],
                                  ["evaluate", "--dataset", "d", "--metrics-out", ""]])
def test_an_empty_output_path_is_named(argv, capsys):
    """Found from outside: `--out ""` said "error:  exists; choose a new path"."""
    code, _, err = run(argv, capsys)
    assert code == 2 and "is empty: give the path to write" in err


def test_evaluate_confusion_shows_what_crops_of_a_negative_label_were_taken_for(tmp_path, capsys):
    """Found from outside: a model's `distractor` row and column were all zero, though the split
    held distractor crops. The row now holds them; accuracy stays over the classes' crops."""
    model = _model_file(tmp_path, [(220, 20, 20), (20, 20, 220), (20, 220, 20)], ["red", "blue", "distractor"])
    root = tmp_path / "ds"
    for name, rgb, n in (("red", (220, 20, 20), 2), ("blue", (20, 20, 220), 2), ("distractor", (20, 220, 20), 3),
                         ("distractor_2", (20, 210, 30), 0)):
        (root / "train" / name).mkdir(parents=True)
        for i in range(n):
            write_png(root / "train" / name / f"{i}.png", rgb)
    (root / "train" / "distractor_2").rmdir()
    code, _, err = run(["evaluate", "--dataset", root, "--split", "train", "--model", model, "--quiet",
                        "--metrics-out", tmp_path / "m.json"], capsys)
    assert code == 0, err
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["confusion"]["labels"] == ["red", "blue", "distractor"]
    assert m["confusion"]["matrix"] == [[2, 0, 0], [0, 2, 0], [0, 0, 3]] and m["accuracy"] == 1.0 and m["n"] == 4


def test_a_reader_that_stops_early_ends_the_command_quietly(tmp_path):
    """From outside: `replay-eval ... | head -1` ended with "error: [Errno 32] Broken pipe". A
    command whose reader went away exits 141 (as a Unix tool killed by SIGPIPE) and says nothing;
    a broken pipe that is not its output stays an error."""
    def run_piped(body, read_one_line):
        code = ("import sys\nfrom robot_classify import cli\n" + body +
                f"sys.exit(cli.main(['predict', '--model', 'm', {str(tmp_path / 'x.png')!r}]))\n")
        p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if read_one_line:
            p.stdout.readline()
            p.stdout.close()
            err = p.stderr.read().decode()
        else:
            out, err = p.communicate(timeout=120)
            err = err.decode()
        return p.wait(timeout=120), err

    lines = "def many(args):\n    for i in range(10 ** 6):\n        print('line', i)\ncli._refuse_empty_outputs = many\n"
    code, err = run_piped(lines, read_one_line=True)
    assert code == 141 and "Broken pipe" not in err and "error" not in err, err
    other = "def gone(args):\n    raise BrokenPipeError(32, 'Broken pipe')\ncli._refuse_empty_outputs = gone\n"
    code, err = run_piped(other, read_one_line=False)
    assert code == 2 and "error: [Errno 32] Broken pipe" in err


def test_evaluate_says_when_a_one_split_file_stands_in_for_test_and_refuses_a_mistyped_split(tmp_path, capsys):
    """Found from outside: `evaluate --split tset` on an .npz of one split had scored the training
    data and called it 1.0 on 'tset' patches."""
    rng = np.random.default_rng(0)
    X = rng.integers(0, 255, (40, 32, 32, 3), np.uint8)
    np.savez(tmp_path / "one.npz", X=X, y=np.repeat([0, 1], 20), class_names=np.array(["a", "b"]))
    assert cli.main(["train", "--quiet", "--dataset", str(tmp_path / "one.npz"), "--features", "pixels", "--k", "1",
                     "--tune", "none", "--mirror", "off", "--out", str(tmp_path / "m.safetensors")]) == 0
    capsys.readouterr()
    assert cli.main(["evaluate", "--model", str(tmp_path / "m.safetensors"), "--dataset", str(tmp_path / "one.npz"),
                     "--split", "tset"]) == 2
    assert "has no 'tset' split" in capsys.readouterr().err
    assert cli.main(["evaluate", "--model", str(tmp_path / "m.safetensors"), "--dataset", str(tmp_path / "one.npz")]) == 0
    assert "has one split and no 'test' one" in capsys.readouterr().err


def test_a_library_warning_is_one_line_of_the_command(capsys):
    """Found from outside: scikit-learn's ConvergenceWarning had printed our source path and line."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    before = warnings.showwarning
    cli._one_line_warning(ConvergenceWarning("L-BFGS used all\n 300 iterations"), ConvergenceWarning, "x.py", 1)
    assert capsys.readouterr().err == "warning: L-BFGS used all 300 iterations\n"
    assert warnings.showwarning is before
