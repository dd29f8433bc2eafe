import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from robot_classify.cli import build_parser
from robot_classify.data.datasets import split_validation
from robot_classify.learn.model_io import data_sha256, load_model
from robot_classify.learn.training import TrainOptions, train_model
from robot_classify.evaluation.plots import plot_knn_curve
from robot_classify.learn.tuning import TuneResult, fold_indices, tune_knn, tune_linear

from conftest import make_patches


def test_folds_partition_the_data_and_are_stratified():
    data = make_patches(10, 3)
    folds = fold_indices(data, 5)
    val = np.concatenate([v for _, v in folds])
    assert sorted(val.tolist()) == list(range(len(data)))
    for tr, va in folds:
        assert set(tr).isdisjoint(va)
        assert np.bincount(data.labels[va], minlength=3).tolist() == [2, 2, 2]


def test_folds_keep_groups_together():
    data = make_patches(10, 3, groups=6)
    for tr, va in fold_indices(data, 3):
        assert set(data.groups[tr]).isdisjoint(data.groups[va])


def test_validation_split_by_group_never_empties_a_class():
    data = make_patches(12, 3)
    data.groups = data.labels * 10 + np.arange(len(data)) % 3  # 3 groups per class
    tr, va = split_validation(data, 0.3)
    assert set(tr.labels) == {0, 1, 2} and set(va.labels) == {0, 1, 2}
    assert set(tr.groups).isdisjoint(va.groups)


def test_tune_knn_table_and_curve(tmp_path):
    data = make_patches(15, 3)
    res = tune_knn(data, [1, 3, 5], ["l1", "l2"], ["pixels"], device="cpu", quiet=True)
    assert len(res.rows) == 6 and all(len(r["scores"]) == 5 for r in res.rows)
    assert res.best["mean"] == max(r["mean"] for r in res.rows)
    plot_knn_curve(res, str(tmp_path / "cv.png"))
    assert (tmp_path / "cv.png").stat().st_size > 1000


def test_train_model_never_sees_test_split(tmp_path):
    """`robot-classify train` on a dataset with a test split: poisoning that split (random images,
    shifted labels) changes nothing in the model, and the kNN index holds exactly the training
    patches. Raw-pixel L2 kNN stores uint8 patches, so index rows can be compared with images."""
    train = make_patches(12, 3, seed=1)
    test = make_patches(6, 3, seed=5)
    rng = np.random.default_rng(9)
    tests = {"clean": (test.images, test.labels),
             "poisoned": (rng.integers(0, 256, test.images.shape, dtype=np.uint8), (test.labels + 1) % 3)}
    files = {}
    for name, (X_test, y_test) in tests.items():
        npz = tmp_path / f"{name}.npz"
        np.savez(npz, X_train=train.images, y_train=train.labels, X_test=X_test, y_test=y_test,
                 class_names=np.array(train.class_names))
        files[name] = tmp_path / f"{name}.safetensors"
        args = build_parser().parse_args(["train", "--dataset", str(npz), "--features", "pixels", "--tune", "cv",
                                          "--mirror", "off",  # the index is compared with the patches
                                          "--device", "cpu", "--quiet", "--out", str(files[name])])
        assert args.func(args) == 0
    clean, poisoned = (load_file(str(files[n])) for n in ("clean", "poisoned"))
    assert clean.keys() == poisoned.keys() == {"knn.data", "knn.labels"}
    for key in clean:
        np.testing.assert_array_equal(clean[key], poisoned[key])
    meta = {n: load_model(files[n], device="cpu").meta for n in files}
    assert meta["clean"]["tuning"] == meta["poisoned"]["tuning"] and meta["clean"]["tuning"]["strategy"] == "cv"
    assert meta["clean"]["training"] == {"sha256": data_sha256(train.images, train.labels), "n_samples": len(train)}
    index_rows = sorted(row.tobytes() for row in clean["knn.data"])
    assert index_rows == sorted(img.reshape(-1).tobytes() for img in train.images)
    assert not {img.reshape(-1).tobytes() for img in test.images} & set(index_rows)
    label_of = {img.reshape(-1).tobytes(): label for img, label in zip(train.images, train.labels)}
    assert [label_of[row.tobytes()] for row in clean["knn.data"]] == clean["knn.labels"].tolist()


@pytest.mark.parametrize("strategy", ["val", "none"])
def test_train_linear_strategies(strategy):
    train = make_patches(15, 3, seed=2)
    opts = TrainOptions(classifier="linear", features=["pixels"], tune=strategy, max_steps=200, device="cpu",
                        quiet=True, regs=[1e-4, 1e-3], lrs=[0.01])
    model = train_model(train, opts)
    labels, proba = model.predict(train.images)
    assert (labels == train.labels).mean() > 0.9


def test_bad_train_options_rejected():
    with pytest.raises(ValueError, match="tune must be one of"):
        TrainOptions(tune="test")
    with pytest.raises(ValueError, match="k must be"):
        TrainOptions(k="-3")


def test_cli_linear_train_and_evaluate_plots_say_what_they_did(tmp_path, capsys):
    """Default `train --classifier linear` on a small set: the table printed once, the solver named,
    calibrated and not all-unknown; `evaluate --plots` draws the search, reliability and coverage."""
    train, test = make_patches(20, 3, seed=1), make_patches(8, 3, seed=1)
    npz = tmp_path / "d.npz"
    np.savez(npz, X_train=train.images, y_train=train.labels, X_test=test.images, y_test=test.labels,
             class_names=np.array(train.class_names))
    model = tmp_path / "m.safetensors"
    args = build_parser().parse_args(["train", "--dataset", str(npz), "--classifier", "linear", "--features",
                                      "pixels", "--reg", "1e-5,1e-3,1e-1", "--device", "cpu", "--quiet",
                                      "--out", str(model)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert out.count("reg=0.001") == 1 and "lbfgs solver" in out and "default min_score" in out
    args = build_parser().parse_args(["evaluate", "--model", str(model), "--dataset", str(npz), "--quiet",
                                      "--metrics-out", str(tmp_path / "m.json"), "--plots", str(tmp_path / "p")])
    assert args.func(args) == 0
    report = json.loads((tmp_path / "m.json").read_text())
    assert report["accuracy"] == 1.0 and report["calibration"]["kept_at_default_min_score"] == 1.0
    for name in ("reliability.png", "coverage.png", "cv_curve.png", "confusion.png"):
        assert (tmp_path / "p" / name).stat().st_size > 1000


def test_tuning_warns_at_a_grid_edge_and_for_classes_cv_cannot_validate():
    data = make_patches(10, 3, seed=4, groups=5)
    data.groups = np.where(data.labels == 2, 99, data.groups)  # class 2 lives in one scene group only
    res = tune_linear(data, {"reg": [1e-6, 1e-5]}, {"kind": "pixels", "pca_dims": 0, "center": True}, "softmax",
                      folds=3, device="cpu", quiet=True)
    assert any("class 'class_2'" in w and "lacks it" in w for w in res.warnings)
    assert not any("edge" in w for w in res.warnings)  # both perfect on classes 0 and 1: a plateau, no warning
    table = TuneResult("cv")
    for reg, scores in ((1e-6, [0.7, 0.72, 0.71]), (1e-3, [0.8, 0.82, 0.81]), (1.0, [0.9, 0.91, 0.92])):
        table.add({"reg": reg}, scores)
    assert table.grid_warnings({"reg": [1e-6, 1e-3, 1.0]}) == [
        "best reg=1.0 is at the edge of the grid [1e-06, 1.0] and still improving (0.9100 vs 0.8100 at reg=0.001): "
        "widen it (--reg a,b,c)"]
    res.rows = [{**r, "mean": 0.0} for r in res.rows]
    assert res.grid_warnings({"reg": [1e-6, 1e-5]}) == [
        "every candidate scored 0: the validation cannot tell them apart (the first is used)"]


def test_evaluate_scores_crops_of_no_class_by_whether_the_node_says_unknown(tmp_path, capsys):
    """Tried from outside on 0.6.1: a `bag-to-dataset` set holds `distractor` crops; `evaluate`
    refused it for a model without that class, and with one counted every such crop wrong (a
    negative label is never a top-1 answer). Top-1 accuracy is over the model's classes; the
    crops of no class are right when the node would say `unknown`."""
    train, test = make_patches(20, 4, seed=3), make_patches(8, 4, seed=3)
    names = ["class_0", "class_1", "class_2", "distractor"]
    npz = tmp_path / "d.npz"
    np.savez(npz, X_train=train.images, y_train=train.labels, X_test=test.images, y_test=test.labels,
             class_names=np.array(names))
    real = train.labels < 3
    closed = tmp_path / "closed.npz"
    np.savez(closed, X_train=train.images[real], y_train=train.labels[real], X_test=test.images[:1],
             y_test=test.labels[:1], class_names=np.array(names[:3]))
    for data, out in ((npz, "with.safetensors"), (closed, "without.safetensors")):
        args = build_parser().parse_args(["train", "--dataset", str(data), "--classifier", "knn", "--k", "1",
                                          "--features", "pixels", "--device", "cpu", "--quiet",
                                          "--out", str(tmp_path / out)])
        assert args.func(args) == 0
    capsys.readouterr()
    args = build_parser().parse_args(["evaluate", "--model", str(tmp_path / "with.safetensors"), "--dataset", str(npz),
                                      "--quiet", "--metrics-out", str(tmp_path / "m.json")])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "m.json").read_text())
    assert report["accuracy"] == 1.0 and report["n"] == 24  # the 3 classes' 24 crops
    assert report["answers"]["no_class_crops"] == 8 and report["answers"]["no_class_unknown"] == 8
    assert "8 of 8 crops of no class (unknown, distractor) unknown" in out and "distractor " not in out
    args = build_parser().parse_args(["evaluate", "--model", str(tmp_path / "without.safetensors"),
                                      "--dataset", str(npz), "--quiet"])
    assert args.func(args) == 0  # a model without negatives is evaluated too: 8 crops of no class
    assert "accuracy 1.0000 (top-1) on 24 test patches" in capsys.readouterr().out
    only = tmp_path / "only.npz"  # crops of no class alone: nothing to give a top-1 accuracy on
    np.savez(only, X_test=test.images[test.labels == 3], y_test=np.zeros(8, np.int64),
             class_names=np.array(["distractor"]))
    args = build_parser().parse_args(["evaluate", "--model", str(tmp_path / "with.safetensors"), "--dataset",
                                      str(only), "--quiet", "--plots", str(tmp_path / "p")])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "accuracy n/a (top-1) on 0 test patches" in out and "ECE n/a" in out
    assert "8 of 8 crops of no class (unknown, distractor) unknown" in out


def test_a_tie_in_tuning_goes_to_the_earlier_row_when_folds_differ_in_size():
    """Found from outside: k = 1, 3 and 5 each had 621 of 1,000 right over folds of 199-201
    samples, their fold means 3e-5 apart, and k = 5 won against the documented tie-break."""
    from robot_classify.learn.tuning import TuneResult

    r = TuneResult("cv")
    r.add({"k": 1}, [124 / 199, 125 / 200, 124 / 200, 124 / 200, 124 / 201])
    r.add({"k": 3}, [124 / 200, 124 / 199, 125 / 200, 124 / 201, 124 / 200])
    r.add({"k": 5}, [125 / 201, 124 / 199, 124 / 200, 124 / 200, 124 / 200])
    assert r.best["params"] == {"k": 1}
    r.add({"k": 7}, [0.7] * 5)
    assert r.best["params"] == {"k": 7}
