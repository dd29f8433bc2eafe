"""Both classifiers are scikit-learn estimators: every `check_estimator` check passes, so `clone`,
`GridSearchCV`, `Pipeline` and `cross_val_score` work with them."""
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from robot_classify.learn.knn import KNNClassifier
from robot_classify.learn.linear import LinearClassifier

# Checks skipped, each with its reason (none today; a skip needs a reason here).
EXPECTED_FAILED: dict[str, str] = {}


@parametrize_with_checks([KNNClassifier(device="cpu"), LinearClassifier(device="cpu")],
                         expected_failed_checks=lambda est: EXPECTED_FAILED)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def test_grid_search_and_pipeline_use_our_estimators():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (40, 5)), rng.normal(3, 1, (40, 5))]).astype(np.float32)
    y = np.repeat([0, 1], 40)
    search = GridSearchCV(KNNClassifier(device="cpu"), {"n_neighbors": [1, 5]}, cv=3).fit(X, y)
    assert search.best_score_ > 0.9
    assert cross_val_score(make_pipeline(StandardScaler(), LinearClassifier(device="cpu")), X, y, cv=3).mean() > 0.9
    params = clone(LinearClassifier(loss="svm", reg=0.1)).get_params()
    assert params["loss"] == "svm" and params["reg"] == 0.1
