"""replay-eval's sign-off report on a bag whose errors are known by construction: one centroid
shifted by 10 mm, one swapped label, one missed object, one distractor; and --compare on two
models that differ on exactly one class."""
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from robot_classify.data.bags import COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC, write_bag
from robot_classify.evaluation.compare import compare_reports
from robot_classify.evaluation.replay_eval import replay_eval
from robot_classify.learn.features import FeaturePipeline
from robot_classify.learn.knn import KNNClassifier
from robot_classify.learn.model import ClassifierModel
from robot_classify.runtime.camera import Intrinsics
from robot_classify.runtime.parameters import check_parameters, segmentation
from robot_classify.runtime.patches import extract_objects
from robot_classify.sim.scene_render import RenderedScene

K = {"fx": 615.0, "fy": 615.0, "cx": 320.0, "cy": 240.0}
RED, BLUE, GREEN, YELLOW = (220, 20, 20), (20, 20, 220), (20, 200, 20), (200, 160, 20)
TOPICS = (COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC)
SHIFT = (0.006, -0.008, 0.0)  # 10 mm in 3D
CLASSES = ["red_box", "blue_box", "green_box"]


def _node_objects(color, depth):
    ex = extract_objects(color, depth, Intrinsics(**K), segmentation(check_parameters()))
    return sorted(ex.objects, key=lambda o: (o.bbox[1], o.bbox[0]))


def frame(boxes, truth):
    """boxes: (x, y, rgb), 60x60 px at 0.9 m on a table at 1 m. truth: (label, x, y, shift or
    None for no centroid); the truth's centroid is the node's own for that box plus the shift."""
    depth = np.full((480, 640), 1000, np.uint16)
    color = np.full((480, 640, 3), 110, np.uint8)
    for x, y, rgb in boxes:
        depth[y:y + 60, x:x + 60] = 900
        color[y:y + 60, x:x + 60] = rgb
    found = {o.bbox[:2]: o for o in _node_objects(color, depth)}
    objects = []
    for i, (lab, x, y, shift) in enumerate(truth):
        c = None
        if shift is not None and (x, y) in found:
            c = dict(zip("xyz", (float(v) for v in np.add(found[(x, y)].centroid, shift))))
        objects.append({"instance": i + 1, "class_name": lab, "visible_fraction": 1.0, "pixels": 3600,
                        "bbox": {"x_offset": x, "y_offset": y, "width": 60, "height": 60}, "centroid": c})
    return RenderedScene(color, depth, np.zeros((480, 640), np.uint16), {"intrinsics": K, "objects": objects})


def _model(labels):
    colours = [RED, BLUE, GREEN]
    depth = np.full((480, 640), 1000, np.uint16)
    color = np.full((480, 640, 3), 110, np.uint8)
    for n, rgb in enumerate(colours):
        depth[100:160, 100 + 150 * n:160 + 150 * n] = 900
        color[100:160, 100 + 150 * n:160 + 150 * n] = rgb
    ex = extract_objects(color, depth, Intrinsics(**K), segmentation(check_parameters()))
    crops = ex.patches[np.argsort([o.bbox[0] for o in ex.objects])]
    model = ClassifierModel(FeaturePipeline("pixels", center=False), KNNClassifier(1, "l2", device="cpu"),
                            list(CLASSES)).fit(crops, np.array(labels))
    model.meta.update(name="green_is_" + CLASSES[labels[2]], sha256=f"{labels[2]:064d}")
    return model


@pytest.fixture(scope="module")
def known(tmp_path_factory):
    f0 = frame([(100, 100, RED), (300, 100, BLUE), (500, 100, GREEN)],
               [("red_box", 100, 100, SHIFT), ("blue_box", 300, 100, (0, 0, 0)), ("green_box", 500, 100, (0, 0, 0))])
    f1 = frame([(100, 300, RED)], [("blue_box", 100, 300, (0, 0, 0)),  # swapped label
                                   ("red_box", 400, 300, None)])  # missed: nothing there
    f2 = frame([(300, 300, YELLOW)], [("mug", 300, 300, None)])  # a distractor: not a class of the model
    path = write_bag(tmp_path_factory.mktemp("bag") / "known", [f0, f1, f2])
    a, b = _model([0, 1, 2]), _model([0, 1, 1])  # B calls green boxes blue_box
    report = tmp_path_factory.mktemp("reports") / "a"
    return path, a, b, report, replay_eval(path, a, report, TOPICS, quiet=True)


def test_centroid_error_is_the_known_shift(known):
    m = known[4]
    c = m["centroid_error_mm"]
    # Matched objects with a truth centroid: red (10 mm off), blue, green, the swapped one (exact).
    assert c["n"] == 4 and c["unit"] == "mm"
    assert c["max"] == pytest.approx(10.0, abs=1e-6)
    assert c["median"] == pytest.approx(0.0, abs=1e-6)
    assert c["p90"] == pytest.approx(7.0, abs=1e-6)  # numpy's linear percentile of [0, 0, 0, 10]
    assert c["per_class"]["red_box"]["median"] == pytest.approx(10.0, abs=1e-6)
    assert c["per_class"]["blue_box"]["n"] == 2 and c["per_class"]["blue_box"]["max"] == pytest.approx(0, abs=1e-6)
    assert m["box_iou"]["n"] == 5 and m["box_iou"]["median"] == pytest.approx(1.0)


def test_failures_are_the_constructed_ones_worst_first(known):
    m = known[4]
    assert m["schema"] == "robot_classify/ReplayEvalMetrics/2"
    assert m["object_accuracy"] == pytest.approx(3 / 4)  # red, blue, green right; the swapped one wrong
    f = m["failures"]
    assert f["counts"] == {"misclassified": 1, "distractor_named": 1, "false_positive": 0, "missed": 1, "rejected": 0}
    items = f["items"]
    # Confident wrong names first (score 1.0 each, earlier frame first), then the missed object.
    assert [(r["outcome"], r["truth"], r["label"]) for r in items] == [
        ("misclassified", "blue_box", "red_box"), ("distractor_named", "mug", "red_box"), ("missed", "red_box", None)]
    report = known[3]
    for r in items:
        assert (report / r["crop"]).stat().st_size > 200 and (report / r["frame_image"]).exists()
    assert items[0]["time_s"] == pytest.approx(1 / 30, abs=1e-3)


def test_non_class_objects_and_thresholds(known):
    m = known[4]
    assert m["non_class_objects"] == {"ground_truth": 1, "matched": 1, "labelled_unknown": 0, "named": 1,
                                      "called": {"red_box": 1}, "what_they_were": {"mug": 1}}
    t = m["thresholds"]
    # 1-NN: every score is 1.0; 3 of the 4 known objects right.
    assert t["n"] == 4 and t["top1_accuracy"] == pytest.approx(0.75) and t["ece"] == pytest.approx(0.25)
    assert t["scores"]["right"]["counts"][-1] == 3 and t["scores"]["wrong"]["counts"][-1] == 1
    at = {c["min_score"]: c for c in t["coverage"]}
    assert at[0.5]["coverage"] == 1.0 and at[0.5]["accuracy"] == pytest.approx(0.75) and at[0.5]["no_class_named"] == 1
    assert t["reliability"]["count"][-1] == 4


def test_timing_and_run_context(known):
    path, model, _, report, m = known
    stages = m["timing_ms"]
    assert list(stages) == ["conversion", "segmentation", "features", "classifier", "total"]
    assert all(v["p50"] >= 0 and v["p99"] >= v["p50"] for v in stages.values())
    assert stages["total"]["p50"] >= stages["segmentation"]["p50"]
    per_frame = m["per_frame"]
    for r in per_frame:  # the stages are parts of the frame's time
        st = r["stages_ms"]
        assert st["conversion"] + st["segmentation"] + st["features"] + st["classifier"] <= st["total"] + 0.01
    assert [round((r["stamp_ns"] - per_frame[0]["stamp_ns"]) / 1e9, 3) for r in per_frame] == [0, 0.033, 0.067]
    run = m["run"]
    assert run["model"]["classes"] == CLASSES and run["model"]["sha256"] == "0" * 63 + "2"
    assert run["model"]["path"] == "(in memory: no model file)"  # not mistaken for the embedded default
    assert {"min_score", "top_k", "segmentation.mode", "model_path"} <= set(run["parameters"])
    assert m["thresholds"]["min_score"] == 0.5  # the parameter's default: the model's own (0.5 uncalibrated)
    assert run["bag"]["topics"][COLOR_TOPIC] == "sensor_msgs/msg/Image" and run["bag"]["color_topic"] == COLOR_TOPIC
    assert run["package"]["version"] and run["host"]["cpu_count"] >= 1 and re.match(r"\d{4}-\d\d-\d\d", run["date"])
    md = (report / "summary.md").read_text()
    assert "| object accuracy | **75.0%** |" in md and "| red_box |" in md


def test_metrics_json_matches_its_documented_schema(known):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((Path(__file__).parents[1] / "config" / "replay_eval_metrics.schema.json").read_text())
    m = json.loads((known[3] / "metrics.json").read_text())
    jsonschema.validate(m, schema)
    assert set(schema["required"]) <= set(m)
    assert set(m) <= set(schema["properties"])  # every key written is documented


def test_report_off_writes_metrics_only(known, tmp_path):
    path, model = known[0], known[1]
    m = replay_eval(path, model, tmp_path / "r", TOPICS, quiet=True, report=False)
    written = sorted(p.name for p in (tmp_path / "r").iterdir())
    assert written == [".robot_classify_report", "metrics.json", "object_labels.jsonl", "objects.jsonl"]
    assert m["failures"]["counts"]["missed"] == 1 and m["failures"]["items"] == []


def test_compare_finds_the_one_known_disagreement(known, tmp_path):
    path, a, b, report_a, _ = known
    replay_eval(path, b, tmp_path / "b", TOPICS, quiet=True, report=False)
    r = compare_reports(report_a, tmp_path / "b", tmp_path / "cmp")
    assert r["names"] == ["green_is_green_box", "green_is_blue_box"]
    d = r["disagreements"]
    assert d["n"] == 1 and r["shared_objects"] == 6
    item = d["items"][0]
    assert (item["truth"], item["a"], item["b"], item["right"]) == ("green_box", "green_box", "blue_box", "a")
    assert (tmp_path / "cmp" / item["crop"]).stat().st_size > 200
    assert r["headline"]["object_accuracy"]["delta"] == pytest.approx(2 / 4 - 3 / 4)
    assert r["per_class"]["green_box"]["recall_delta"] == pytest.approx(-1.0)
    assert r["per_class"]["red_box"]["f1_delta"] == 0
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert "| object accuracy | 75.0% | 50.0% |" in md and "| green_box |" in md


def test_compare_keeps_a_taught_class_and_shows_what_calibrate_changes(known, tmp_path):
    """Found from outside: after `teach`, --compare dropped the taught class's row and set two
    accuracies over different objects side by side unremarked; after `calibrate` it showed two
    identical columns, the names' mean score and ECE (what calibrate changes) left out."""
    import shutil

    report_a = known[3]
    taught = tmp_path / "taught"
    shutil.copytree(report_a, taught)
    m = json.loads((taught / "metrics.json").read_text())
    m["per_class"]["drill"] = {"precision": 0.5, "recall": 0.25, "f1": 1 / 3, "support": 4, "predicted": 2}
    m["objects"]["matched"] += 4
    m["named"]["mean_score"], m["named"]["ece"] = 0.61, 0.04
    (taught / "metrics.json").write_text(json.dumps(m))
    r = compare_reports(report_a, taught, tmp_path / "cmp", names=("default", "taught"))
    assert r["per_class"]["drill"]["recall_b"] == 0.25 and r["per_class"]["drill"]["recall_a"] is None
    assert r["class_objects_matched"]["b"] == r["class_objects_matched"]["a"] + 4
    assert r["named_scores"]["b"] == {"mean_score": 0.61, "ece": 0.04}
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert "| drill | n/a | 0.333 |" in md and "counts the objects of each model's own classes" in md
    assert "| names' mean score | 1.00 | 0.61 |" in md and "| names' ECE |" in md
    assert "counts the objects of each model" in (tmp_path / "cmp" / "compare.html").read_text()


def test_compare_refuses_reports_of_two_bags_that_share_stamps(known, tmp_path):
    """Tried from outside: every make-bag bag starts at the same stamp, so reports of two bags
    paired object for object and compared as if one (the crops cut from a third); and two
    models of one name read `A: A: name` with no way to tell them apart."""
    path, a, b, report_a, _ = known
    other = write_bag(tmp_path / "other", [frame([(300, 300, RED)], [("red_box", 300, 300, None)])] * 3)
    replay_eval(other, b, tmp_path / "b_other", TOPICS, quiet=True, report=False)
    with pytest.raises(ValueError, match=r"was made on .*known and .* on .*other: compare two reports of one bag"):
        compare_reports(report_a, tmp_path / "b_other", tmp_path / "cmp")
    replay_eval(path, b, tmp_path / "b", TOPICS, quiet=True)
    with pytest.raises(ValueError, match="--bag .*other is not the bag the reports were made on"):
        compare_reports(report_a, tmp_path / "b", tmp_path / "cmp", bag=other)
    b.meta["name"] = a.meta["name"] = "same_name"  # a calibrated or taught copy keeps the name
    from robot_classify.learn.model_io import save_model

    fa, fb = save_model(a, tmp_path / "a.safetensors"), save_model(b, tmp_path / "b.safetensors")
    for tag, m in (("a2", fa), ("b2", fb)):
        from robot_classify.learn.model_io import load_model

        replay_eval(path, load_model(m, device="cpu"), tmp_path / tag, TOPICS, quiet=True,
                    parameters={"model_path": str(m)})
    r = compare_reports(tmp_path / "a2", tmp_path / "b2", tmp_path / "cmp2")
    assert r["names"] == ["a.safetensors", "b.safetensors"]
    page = (tmp_path / "cmp2" / "compare.html").read_text()
    assert "A: A:" not in page and 'href="../a2/report.html">report A</a>' in page


def _browser() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@pytest.mark.skipif(_browser() is None, reason="no headless Chromium here (apt-get install chromium)")
@pytest.mark.parametrize("page", ["report.html", "cmp/compare.html"])
def test_report_opens_in_a_real_browser_with_every_image(known, tmp_path, page):
    path, a, b, report_a, _ = known
    folder = tmp_path / "copy"
    shutil.copytree(report_a, folder)  # opened from a copied folder: nothing refers outside it
    if page.startswith("cmp"):
        replay_eval(path, b, tmp_path / "b", TOPICS, quiet=True, report=False)
        compare_reports(folder, tmp_path / "b", folder / "cmp")
    html_file = folder / page
    srcs = re.findall(r'<img src="([^"]+)"', html_file.read_text())
    assert srcs and all((html_file.parent / s).is_file() for s in srcs)
    run = subprocess.run([_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                          "--enable-logging=stderr", "--v=0", "--dump-dom", html_file.as_uri()],
                         capture_output=True, text=True, timeout=90)
    assert run.returncode == 0, run.stderr[-2000:]
    dom = run.stdout
    assert f'data-images="{len(srcs)}/{len(srcs)}"' in dom
    assert 'id="broken" hidden' in dom
    assert "Uncaught" not in run.stderr


def test_gallery_keeps_the_worst_and_only_their_frames(tmp_path):
    from robot_classify.evaluation.failures import FailureGallery

    def rec(frame, outcome, score):
        return {"frame": frame, "stamp_ns": frame * 10**9, "outcome": outcome, "label": "x", "score": score,
                "truth": "y", "visible_fraction": 1.0, "truth_bbox": [10, 10, 20, 20], "bbox": [12, 10, 20, 20]}

    img = np.zeros((60, 60, 3), np.uint8)
    g = FailureGallery(cap=2)
    g.offer([rec(0, "misclassified", 0.6), rec(0, "correct", 1.0)], img, (), ())
    g.offer([rec(1, "rejected", 0.3)], img, (), ())  # a refusal: below any wrong name
    g.offer([rec(2, "misclassified", 0.9), rec(2, "distractor_named", 1.0)], img, (), ())
    kept = g.write(tmp_path, 0)
    assert [(r["frame"], r["outcome"], r["score"]) for r in kept] == [(2, "misclassified", 0.9),
                                                                      (0, "misclassified", 0.6)]
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == ["frame_00000.png", "frame_00002.png"]
    assert kept[0]["time_s"] == 2.0


def test_compare_of_one_model_under_two_settings_names_the_runs_and_what_differs(known, tmp_path, capsys):
    """Two runs of one model differ only by a params file: the sides are named by their report
    folders and the parameters that differ are listed (both had read "A: model", "B: model")."""
    from robot_classify import cli

    path, a, _, _, _ = known
    replay_eval(path, a, tmp_path / "loose", TOPICS, {"min_score": 0.0}, quiet=True, report=False)
    replay_eval(path, a, tmp_path / "strict", TOPICS, {"min_score": 0.99}, quiet=True, report=False)
    report_a = tmp_path / "loose"
    r = compare_reports(report_a, tmp_path / "strict", tmp_path / "cmp")
    assert r["names"] == ["A: loose", "B: strict"]
    assert r["parameters_differ"] == {"min_score": [0.0, 0.99]}
    assert "Parameters that differ: `min_score` 0.0 / 0.99" in (tmp_path / "cmp" / "compare.md").read_text()
    assert "parameter that differs" in (tmp_path / "cmp" / "compare.html").read_text()
    assert r["latency_p50_ms"]["b"] == json.loads((tmp_path / "strict" / "metrics.json").read_text())[
        "timing_ms"]["total"]["p50"]  # the figure compare.md and the report show
    params = tmp_path / "p.yaml"
    params.write_text("/**/robot_classify:\n  ros__parameters:\n    min_score: 0.5\n")
    code = cli.main(["replay-eval", "--bag", str(path), "--report", str(tmp_path / "cmp2"), "--compare",
                     str(report_a), str(tmp_path / "strict"), "--params-file", str(params), "--quiet"])
    err = capsys.readouterr().err
    assert code == 0 and f"--params-file {params} is not used" in err


def test_cli_compare_of_two_report_folders_prints_markdown(known, tmp_path, capsys):
    from robot_classify import cli

    path, _, b, report_a, _ = known
    replay_eval(path, b, tmp_path / "b", TOPICS, quiet=True, report=False)
    code = cli.main(["replay-eval", "--bag", str(path), "--report", str(tmp_path / "cmp"), "--compare",
                     str(report_a), str(tmp_path / "b"), "--format", "md", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0 and "| object accuracy | 75.0% | 50.0% |" in out and "| green_box | 1.000 | 0.000 | -1.000 | -1.000 |" in out
    # B never names green_box: its precision is undefined (n/a, as in each model's own report), its F1 0
    per_class = json.loads((tmp_path / "cmp" / "compare.json").read_text())["per_class"]
    assert per_class["green_box"]["precision_b"] is None and per_class["green_box"]["f1_b"] == 0.0
    assert "n/a" in (tmp_path / "cmp" / "compare.html").read_text()
    assert (tmp_path / "cmp" / "compare.html").exists()


def test_cli_compare_of_two_model_files_runs_both(known, tmp_path, capsys):
    from robot_classify import cli
    from robot_classify.learn.model_io import save_model

    path, a, b, _, _ = known
    fa, fb = save_model(a, tmp_path / "a.safetensors"), save_model(b, tmp_path / "b.safetensors")
    params = tmp_path / "robot.yaml"
    params.write_text("robot_classify:\n  ros__parameters:\n    min_score: 0.3\n")
    code = cli.main(["replay-eval", "--bag", str(path), "--report", str(tmp_path / "cmp"), "--compare", str(fa), str(fb),
                     "--params-file", str(params), "--device", "cpu", "--no-report", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0 and "they label 1 of 6 objects differently" in out
    m = json.loads((tmp_path / "cmp" / "a" / "metrics.json").read_text())
    assert m["run"]["model"]["path"] == str(fa) and m["run"]["params_file"] == str(params)
    assert m["run"]["parameters"]["min_score"] == 0.3 and m["thresholds"]["min_score"] == 0.3
    assert (tmp_path / "cmp" / "b" / "objects.jsonl").exists() and (tmp_path / "cmp" / "compare.html").exists()


def test_threshold_curves_leave_out_what_the_other_checks_made_unknown():
    """An object the size or pose check made `unknown` (its score passed min_score) stays
    unnamed at every threshold: the curves show what the node would publish."""
    from robot_classify.evaluation.replay_metrics import threshold_summary

    def rec(known, label, score, top="mug", truth="mug"):
        return {"known": known, "iou": 0.9, "label": label, "score": score, "top": top, "truth": truth}
    records = [rec(True, "mug", 0.9), rec(True, "unknown", 0.95),  # the second: vetoed by a check
               rec(False, "unknown", 0.9, truth="distractor"),      # vetoed: never named
               rec(False, "mug", 0.8, truth="distractor")]          # named from 0 to 0.8
    t = threshold_summary(records, min_score=0.5)
    at = {c["min_score"]: c for c in t["coverage"]}
    assert at[0.0]["no_class_named"] == 0.5 and at[0.5]["no_class_named"] == 0.5 and at[0.9]["no_class_named"] == 0
    assert at[0.0]["coverage"] == 0.5 and at[0.0]["kept"] == 1  # of both class objects, the vetoed one never kept
    assert t["n"] == 2 and t["top1_accuracy"] == 1.0  # calibration itself: the classifier's scores, both


def test_compare_into_its_own_folder_again_replaces_its_files_and_refuses_a_strangers(known, tmp_path):
    """Found in review: the --compare folder went unchecked, and an old run's disagreement crops stayed."""
    from robot_classify import cli

    path, a, b, report_a, _ = known
    replay_eval(path, b, tmp_path / "b", TOPICS, quiet=True, report=False)
    top = tmp_path / "cmp"
    argv = ["replay-eval", "--bag", str(path), "--report", str(top), "--compare", str(report_a), str(tmp_path / "b")]
    assert cli.main(argv) == 0
    (top / "disagreements" / "stale.png").write_text("from an earlier run")
    (top / "mine.txt").write_text("the user's")
    assert cli.main(argv) == 0
    assert not (top / "disagreements" / "stale.png").exists() and (top / "mine.txt").read_text() == "the user's"
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "compare.md").write_text("someone else's")
    assert cli.main([*argv[:3], "--report", str(stranger), *argv[5:]]) == 2
    assert (stranger / "compare.md").read_text() == "someone else's"


def test_an_answer_reads_as_the_node_gave_it():
    from robot_classify.evaluation.report_html import answer_text

    assert answer_text(None, None, None) == "nothing (not detected)"
    assert answer_text("unknown", "mug", 0.41) == "unknown (best: mug 0.41)"
    assert answer_text("unknown", "unknown", 0.0) == "unknown"  # its own unknown examples were nearest
    assert answer_text("mug", "mug", 0.9) == "mug 0.90"


def test_the_commit_a_benchmark_records_leaves_out_its_own_results():
    """A benchmark overwrites its result files as it runs; `exclude` keeps them from marking the
    measured code dirty. Outside a git checkout (an installed wheel) there is no commit."""
    from robot_classify.evaluation.run_context import git_commit

    full, results_aside = git_commit(), git_commit(exclude=("bench/results",))
    if full is None:
        pytest.skip("not a git checkout")
    assert results_aside["commit"] == full["commit"] and len(full["commit"]) == 40
    assert isinstance(results_aside["dirty"], bool) and (full["dirty"] or not results_aside["dirty"])
