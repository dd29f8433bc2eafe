import numpy as np
import pytest

from robot_classify.learn.knn import KNNClassifier, vote


def test_knn_tie_break_prefers_class_with_nearest_member():
    # Query at 0: neighbours at 1 (class 1), 2 (class 0), 3 (class 1), 4 (class 0) -> 2:2 tie.
    X = np.array([[1.0], [2.0], [3.0], [4.0]], np.float32)
    y = np.array([1, 0, 1, 0])
    clf = KNNClassifier(k=4, metric="l2", device="cpu").fit(X, y)
    assert clf.predict(np.array([[0.0]], np.float32)).tolist() == [1]
    # Mirror it: nearest is now class 0.
    clf = KNNClassifier(k=4, metric="l2", device="cpu").fit(X, 1 - y)
    assert clf.predict(np.array([[0.0]], np.float32)).tolist() == [0]


def test_vote_shares_sum_to_one_and_match_counts():
    labels = np.array([[0, 1, 1, 2, 1]])
    dist = np.array([[1.0, 2.0, 3.0, 4.0, 5.0]])
    lab, shares = vote(labels, dist, 3)
    assert lab.tolist() == [1]
    np.testing.assert_allclose(shares, [[0.2, 0.6, 0.2]])
    lab, shares = vote(labels, dist, 3, "distance")
    np.testing.assert_allclose(shares.sum(1), 1.0)
    assert lab.tolist() == [1]  # 1/2 + 1/3 + 1/5 > 1/1


def test_distance_weights_exact_match_wins():
    lab, shares = vote(np.array([[2, 0, 0]]), np.array([[0.0, 1.0, 1.0]]), 3, "distance")
    assert lab.tolist() == [2]
    np.testing.assert_allclose(shares, [[0, 0, 1]])


def test_predict_proba_rows_sum_to_one(patches):
    X = patches.images.reshape(len(patches), -1)
    clf = KNNClassifier(k=5, device="cpu").fit(X, patches.labels)
    p = clf.predict_proba(X[:10])
    np.testing.assert_allclose(p.sum(1), 1.0)
    assert (clf.predict(X) == patches.labels).mean() == 1.0


@pytest.mark.parametrize("kwargs, message", [
    ({"k": 0}, "k must be a positive integer"),
    ({"k": 2.5}, "k must be a positive integer"),
    ({"metric": "minkowski"}, "metric must be one of"),
    ({"weights": "gaussian"}, "weights must be one of"),
])
def test_bad_hyperparameters_rejected_by_fit(kwargs, message):
    clf = KNNClassifier(**kwargs)  # scikit-learn's convention: __init__ stores, fit validates
    with pytest.raises(ValueError, match=message):
        clf.fit(np.zeros((3, 2), np.float32), np.array([0, 1, 0]))


def test_n_neighbors_is_accepted_as_the_scikit_learn_name_for_k():
    X, y = np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 0, 1])
    clf = KNNClassifier(k=1, n_neighbors=3, device="cpu").fit(X, y)
    assert clf.n_neighbors_ == 3 and clf.predict(np.array([[2.9]])).tolist() == [0]  # votes 1, 0, 0
    assert KNNClassifier(k=1, device="cpu").fit(X, y).predict(np.array([[2.9]])).tolist() == [1]
    with pytest.raises(ValueError, match="n_neighbors must be a positive integer"):
        KNNClassifier(n_neighbors=0).fit(X, y)


def test_k_larger_than_training_set_rejected():
    with pytest.raises(ValueError, match="larger than the training set"):
        KNNClassifier(k=5).fit(np.zeros((3, 2), np.float32), np.array([0, 1, 0]))


def test_nan_in_x_rejected():
    with pytest.raises(ValueError, match="NaN"):
        KNNClassifier(k=1).fit(np.array([[np.nan, 0.0]]), np.array([0]))
    clf = KNNClassifier(k=1, device="cpu").fit(np.zeros((2, 2), np.float32), np.array([0, 1]))
    with pytest.raises(ValueError, match="infinity"):  # scikit-learn's validate_data message
        clf.predict(np.array([[np.inf, 0.0]]))


@pytest.mark.parametrize("weights,class_weight", [("uniform", None), ("distance", None), ("uniform", "balanced")])
@pytest.mark.parametrize("k", [1, 3, 7])
def test_the_untaught_answer_is_an_index_of_the_trained_samples_alone(weights, class_weight, k):
    """`evidence(untaught=True)` on a taught kNN answers as a kNN fitted on its trained samples
    alone: labels, shares and distances (what the node falls back to where a taught view won a
    class the segment cannot be)."""
    rng = np.random.default_rng(k)
    X, y = rng.normal(size=(60, 4)).astype(np.float32), rng.integers(0, 3, 60)
    T, ty = rng.normal(size=(25, 4)).astype(np.float32), rng.integers(0, 4, 25)  # a new class 3 too
    taught = KNNClassifier(k, weights=weights, class_weight=class_weight, device="cpu").fit(X, y)
    taught.add_samples(T, ty, taught=True)
    taught.add_samples(X[:5] + 0.01, y[:5])  # trained again after teaching: still untaught
    alone = KNNClassifier(k, weights=weights, class_weight=class_weight, device="cpu").fit(
        np.concatenate([X, X[:5] + 0.01]), np.concatenate([y, y[:5]]))
    Q = rng.normal(size=(40, 4)).astype(np.float32)
    got, want = taught.evidence(Q, untaught=True), alone.evidence(Q)
    assert np.array_equal(taught.classes_[got.labels], alone.classes_[want.labels])
    assert np.allclose(got.proba[:, :3], want.proba) and np.allclose(got.nearest, want.nearest)
    assert np.allclose(got.win_distance, want.win_distance) and got.taught_won is None
    assert taught.evidence(Q).taught_won is not None
