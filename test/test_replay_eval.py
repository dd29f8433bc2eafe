"""replay-eval on a tiny bag whose right answers were worked out by hand."""
import json

import numpy as np
import pytest

from robot_classify.data.bags import COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC, write_bag
from robot_classify.runtime.camera import Intrinsics
from robot_classify.learn.features import FeaturePipeline
from robot_classify.learn.knn import KNNClassifier
from robot_classify.learn.model import ClassifierModel
from robot_classify.runtime.patches import extract_objects
from robot_classify.evaluation.replay_eval import bag_to_dataset, replay_eval
from robot_classify.sim.scene_render import RenderedScene

K = {"fx": 615.0, "fy": 615.0, "cx": 320.0, "cy": 240.0}
RED, BLUE = (220, 20, 20), (20, 20, 220)
TOPICS = (COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC)


def frame(boxes, truth):
    """boxes: (x, y, rgb) 60x60 px at 0.9 m on a table at 1 m; truth: (label, x, y) entries."""
    depth = np.full((480, 640), 1000, np.uint16)
    color = np.full((480, 640, 3), 110, np.uint8)
    for x, y, rgb in boxes:
        depth[y:y + 60, x:x + 60] = 900
        color[y:y + 60, x:x + 60] = rgb
    objects = [{"instance": i + 1, "class_name": lab, "visible_fraction": 1.0, "pixels": 3600,
                "bbox": {"x_offset": x, "y_offset": y, "width": 60, "height": 60}, "centroid": None}
               for i, (lab, x, y) in enumerate(truth)]
    return RenderedScene(color, depth, np.zeros((480, 640), np.uint16), {"intrinsics": K, "objects": objects})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    a = frame([(100, 100, RED), (300, 100, BLUE)], [("red_box", 100, 100), ("blue_box", 300, 100)])
    b = frame([(100, 300, RED)], [("blue_box", 100, 300), ("red_box", 400, 300)])  # mislabelled + missed
    c = frame([(300, 300, BLUE)], [])  # a detection with no ground truth
    ex = extract_objects(a.color, a.depth, Intrinsics(**K))
    crops = ex.patches[np.argsort([o.bbox[0] for o in ex.objects])]
    model = ClassifierModel(FeaturePipeline("pixels", center=False), KNNClassifier(1, "l2", device="cpu"),
                            ["red_box", "blue_box"]).fit(crops, np.array([0, 1]))
    path = write_bag(tmp_path_factory.mktemp("bag") / "tiny", [a, b, c])
    return path, model


def test_replay_eval_numbers_match_the_hand_count(tiny, tmp_path):
    path, model = tiny
    m = replay_eval(path, model, tmp_path / "report", TOPICS, quiet=True)
    # Matched objects: A red->red, A blue->blue, B (truth blue)->red: 2 of 3 right.
    assert m["object_accuracy"] == pytest.approx(2 / 3)
    # Truth objects: 2 in A, 2 in B (one has nothing there): 3 of 4 found.
    assert m["detection_recall"] == pytest.approx(3 / 4)
    # Detections: 2 + 1 + 1, of which 3 match truth.
    assert m["detection_precision"] == pytest.approx(3 / 4)
    assert m["per_class"]["red_box"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2, "predicted": 2}
    assert m["per_class"]["blue_box"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2, "predicted": 2}
    labels, cm = m["confusion"]["labels"], np.array(m["confusion"]["matrix"])
    at = lambda r, c: cm[labels.index(r), labels.index(c)]  # noqa: E731
    assert (at("red_box", "red_box"), at("blue_box", "red_box"), at("red_box", "missed"),
            at("background", "blue_box")) == (1, 1, 1, 1)
    assert m["frames"]["pairs"] == 3 and m["frames"]["processed"] == 3
    assert set(m["latency_ms"]) >= {"p50", "p90", "p99"}
    for f in ("metrics.json", "confusion.png", "stages.png", "timeline.png", "report.html", "summary.md",
              "failures/000.png", "frames/frame_00001.png"):
        assert (tmp_path / "report" / f).stat().st_size > 100
    assert json.loads((tmp_path / "report" / "metrics.json").read_text())["object_accuracy"] == m["object_accuracy"]


def test_bag_to_dataset_labels_the_nodes_crops_and_splits_by_time(tiny, tmp_path):
    path, model = tiny
    counts = bag_to_dataset(path, model, tmp_path / "ds", TOPICS, split_by_time=0.5, quiet=True)
    # Frame A (train): red, blue. Frames B, C (test): B's crop is truth "blue_box"; C's is unlabelled.
    assert counts == {"train/red_box": 1, "train/blue_box": 1, "test/blue_box": 1, "test/_unlabelled": 1}
    from robot_classify.data.datasets import load_dataset

    ds = load_dataset(tmp_path / "ds")
    assert len(ds["train"]) == 2 and ds["train"].class_names == ["blue_box", "red_box"]
    # 1: every frame trains (found from outside: a one-frame bag gave only test/, which train refuses)
    counts = bag_to_dataset(path, model, tmp_path / "all", TOPICS, split_by_time=1.0, quiet=True)
    assert counts == {"train/red_box": 1, "train/blue_box": 2, "train/_unlabelled": 1}
    # a small share still trains on the first frame
    counts = bag_to_dataset(path, model, tmp_path / "small", TOPICS, split_by_time=0.1, quiet=True)
    assert counts["train/red_box"] == 1 and not any(k.startswith("test/red") for k in counts)


def test_ground_truth_that_matches_no_frame_is_an_error_not_a_recall_of_zero(tiny, tmp_path):
    """Found from outside: a sidecar shifted by 1000 s printed detection recall 0.0% of 0 objects,
    and bag-to-dataset with a ground-truth topic the bag has not wrote only `_unlabelled` crops."""
    from robot_classify.data.bags import BagError, read_ground_truth

    path, model = tiny
    shifted = tmp_path / "shifted.jsonl"
    docs = []
    for stamp, labels in read_ground_truth(path).items():
        doc = labels.to_doc()
        doc["header"]["stamp"]["sec"] += 1000
        docs.append(json.dumps(doc))
    shifted.write_text("\n".join(docs) + "\n")
    with pytest.raises(BagError, match="none of the 3 ground-truth stamps is a frame's stamp"):
        replay_eval(path, model, tmp_path / "report", TOPICS, sidecar=shifted, quiet=True)
    assert not (tmp_path / "report").exists()
    with pytest.raises(BagError, match="none of the 3 ground-truth stamps"):
        bag_to_dataset(path, model, tmp_path / "ds", TOPICS, sidecar=shifted, quiet=True)
    with pytest.raises(BagError, match="no ground truth to label the crops with \\(topic /nope"):
        bag_to_dataset(path, model, tmp_path / "ds2", TOPICS, gt_topic="/nope", quiet=True)


def test_report_outputs_are_listed_and_a_rerun_replaces_only_them(tiny, tmp_path):
    """Found from outside: a second run into the same --report kept the first run's failure crops
    and pages beside the new metrics.json. Found in review: a folder holding someone else's
    metrics.json was taken for a report and emptied, even by a run whose --bag did not exist."""
    from robot_classify.data.bags import BagError
    from robot_classify.evaluation.replay_eval import REPORT_MARKER, REPORT_OUTPUTS

    path, model = tiny
    report = tmp_path / "report"
    replay_eval(path, model, report, TOPICS, quiet=True)
    assert {p.name for p in report.iterdir()} <= {*REPORT_OUTPUTS, REPORT_MARKER} and (report / "failures").is_dir()
    (report / "keep.txt").write_text("mine")
    with pytest.raises(BagError):  # a typo in --bag: the earlier report stays whole
        replay_eval(tmp_path / "no_such_bag", model, report, TOPICS, quiet=True)
    assert (report / "failures").is_dir() and (report / "report.html").is_file()
    with pytest.raises(BagError, match="missing topic"):  # a wrong --topics (found from outside): the same
        replay_eval(path, model, report, ("/x", "/y", "/z"), quiet=True)
    assert (report / "failures").is_dir() and (report / "report.html").is_file()
    replay_eval(path, model, report, TOPICS, quiet=True, report=False)
    assert sorted(p.name for p in report.iterdir()) == sorted([REPORT_MARKER, "keep.txt", "metrics.json",
                                                               "object_labels.jsonl", "objects.jsonl"])
    other = tmp_path / "other"  # someone else's metrics.json and figures: no marker, refused
    (other / "frames").mkdir(parents=True)
    (other / "metrics.json").write_text("{}")
    (other / "frames" / "000001.png").write_text("mine")
    with pytest.raises(ValueError, match="holds no earlier output of `robot-classify replay-eval`"):
        replay_eval(path, model, other, TOPICS, quiet=True)
    assert sorted(p.name for p in other.rglob("*")) == ["000001.png", "frames", "metrics.json"]


def test_replay_eval_progress_bar_knows_the_bag_length(tiny, tmp_path, monkeypatch):
    import robot_classify.evaluation.replay_eval as re_mod

    path, model = tiny
    assert re_mod.color_count(path, COLOR_TOPIC) == 3
    totals = []
    real = re_mod.tqdm
    monkeypatch.setattr(re_mod, "tqdm", lambda it, **kw: totals.append(kw.get("total")) or real(it, **kw))
    replay_eval(path, model, tmp_path / "report", TOPICS, quiet=False)
    assert totals == [3]


def test_replay_eval_and_bag_to_dataset_open_the_bag_once(tiny, tmp_path, monkeypatch):
    """Ground truth, topics, progress total and frames all come from one open reader (was three opens)."""
    import robot_classify.data.bags as bags

    path, model = tiny
    opens = []
    real = bags.open_reader
    monkeypatch.setattr(bags, "open_reader", lambda p: opens.append(p) or real(p))
    m = replay_eval(path, model, tmp_path / "report", TOPICS, quiet=False, report=False)
    assert len(opens) == 1 and m["frames"]["pairs"] == 3
    bag_to_dataset(path, model, tmp_path / "ds", TOPICS, quiet=True)
    assert len(opens) == 2


def test_failed_replay_eval_removes_only_the_folders_it_made(tiny, tmp_path, monkeypatch):
    from robot_classify.data.bags import BagError
    from robot_classify.evaluation import replay_eval as module

    path, model = tiny
    wrong_topics = ("/a", "/b", "/c")  # checked before any folder is made or marked
    with pytest.raises(BagError, match="missing topic"):
        replay_eval(path, model, tmp_path / "new" / "report", wrong_topics, quiet=True)
    assert not (tmp_path / "new").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    with pytest.raises(BagError, match="missing topic"):
        replay_eval(path, model, mine, wrong_topics, quiet=True)
    assert list(mine.iterdir()) == []

    def fails(*args, **kwargs):
        raise RuntimeError("a frame failed")

    monkeypatch.setattr(module, "_evaluate", fails)  # fails after mkdir
    with pytest.raises(RuntimeError):
        replay_eval(path, model, tmp_path / "new" / "report", TOPICS, quiet=True)
    assert not (tmp_path / "new").exists()
    with pytest.raises(RuntimeError):  # an empty folder of the user's stays, holding only the marker that
        replay_eval(path, model, mine, TOPICS, quiet=True)  # lets a re-run replace what a failed run left
    assert [p.name for p in mine.iterdir()] == [".robot_classify_report"]
