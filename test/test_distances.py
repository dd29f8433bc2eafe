import numpy as np
import pytest

from robot_classify.learn.distances import compute_distances, row_distances


@pytest.mark.parametrize("metric", ["l1", "l2", "cosine"])
def test_compute_distances_matches_direct_numpy(metric):
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(7, 12)), rng.normal(size=(5, 12))
    diff = X[:, None, :] - Y[None, :, :]
    if metric == "l1":
        ref = np.abs(diff).sum(2)
    elif metric == "l2":
        ref = np.sqrt((diff**2).sum(2))
    else:
        ref = 1 - (X @ Y.T) / np.linalg.norm(X, axis=1)[:, None] / np.linalg.norm(Y, axis=1)[None, :]
    np.testing.assert_allclose(compute_distances(X, Y, metric), ref, atol=1e-6)


@pytest.mark.parametrize("metric", ["l1", "l2"])
def test_row_distances_uint8_is_exact_integer_arithmetic(metric):
    rng = np.random.default_rng(2)
    rows = rng.integers(0, 256, (50, 3072), dtype=np.uint8)
    q = rng.integers(0, 256, 3072, dtype=np.uint8)
    diff = rows.astype(np.int64) - q.astype(np.int64)
    ref = np.abs(diff).sum(1) if metric == "l1" else (diff**2).sum(1)
    np.testing.assert_array_equal(row_distances(rows, q, metric), ref)


def test_unknown_metric_rejected():
    with pytest.raises(ValueError, match="metric must be one of"):
        compute_distances(np.zeros((1, 2)), np.zeros((1, 2)), "chebyshev")
