import numpy as np
import pytest

from robot_classify.datasets import split_validation
from robot_classify.training import TrainOptions, train_model
from robot_classify.tuning import fold_indices, plot_knn_curve, tune_knn

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


def test_train_model_never_sees_test_split():
    """Tuning gets only the training split: the selected params depend on train data alone."""
    train = make_patches(15, 3, seed=1)
    opts = TrainOptions(classifier="knn", k="auto", metrics=["l2"], features=["pixels"], tune="cv",
                        device="cpu", quiet=True)
    model = train_model(train, opts)
    assert model.meta["tuning"]["strategy"] == "cv"
    assert model.meta["training"]["n_samples"] == len(train)


@pytest.mark.parametrize("strategy", ["val", "none"])
def test_train_linear_strategies(strategy):
    train = make_patches(15, 3, seed=2)
    opts = TrainOptions(classifier="linear", features=["pixels"], tune=strategy, epochs=5, device="cpu",
                        quiet=True, regs=[1e-4, 1e-3], lrs=[0.01])
    model = train_model(train, opts)
    labels, proba = model.predict(train.images)
    assert (labels == train.labels).mean() > 0.9


def test_bad_train_options_rejected():
    with pytest.raises(ValueError, match="tune must be one of"):
        TrainOptions(tune="test")
    with pytest.raises(ValueError, match="k must be"):
        TrainOptions(k="-3")
