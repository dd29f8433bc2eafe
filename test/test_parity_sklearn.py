"""Real data: scikit-learn's bundled handwritten digits, fixed split, against sklearn itself."""
import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402

from robot_classify.learn.knn import KNNClassifier  # noqa: E402
from robot_classify.learn.linear import LinearClassifier  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X.astype(np.float32), y, test_size=0.3, random_state=42)
    return Xtr, ytr, Xte, yte


@pytest.mark.parametrize("metric", ["l1", "l2"])
@pytest.mark.parametrize("k", [1, 3, 5, 7])
def test_knn_agrees_with_sklearn_brute(digits, k, metric):
    Xtr, ytr, Xte, _ = digits
    clf = KNNClassifier(k, metric, device="cpu").fit(Xtr, ytr)
    dist, idx = clf.kneighbors(Xte, k + 1)
    ours, shares = clf.predict_from_neighbors(dist, idx, k)
    ref = KNeighborsClassifier(k, algorithm="brute", metric="manhattan" if metric == "l1" else "euclidean")
    theirs = ref.fit(Xtr, ytr).predict(Xte)
    assert (ours == theirs).mean() >= 0.995
    # Every disagreement is a tie the two libraries break differently: a tied vote (sklearn takes
    # the lowest class, we the class with the nearest member) or a distance tie at the k-th place.
    for j in np.flatnonzero(ours != theirs):
        top = np.sort(shares[j])[::-1]
        assert np.isclose(top[0], top[1], rtol=1e-12) or dist[j, k - 1] == dist[j, k]  # winner: +1 ulp


@pytest.mark.parametrize("loss, solver", [("softmax", "lbfgs"), ("svm", "lbfgs"), ("softmax", "sgd")])
def test_linear_within_one_point_of_logistic_regression_on_raw_pixels(digits, loss, solver):
    """Raw 0..16 pixels, no scaling by the caller: the classifier standardises them itself."""
    Xtr, ytr, Xte, yte = digits
    ours = LinearClassifier(loss, reg=1e-5, solver=solver, tol=1e-3, device="cpu").fit(Xtr, ytr)
    assert ours.solver_ == solver and ours.converged_
    acc = (ours.predict(Xte) == yte).mean()
    ref_acc = (LogisticRegression(max_iter=5000).fit(Xtr, ytr).predict(Xte) == yte).mean()
    assert acc >= ref_acc - 0.01, (acc, ref_acc)
