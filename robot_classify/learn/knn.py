"""k-nearest-neighbour classifier: exact search (`ExactIndex`) plus a majority vote.

Tie-break (documented and tested): when several classes share the highest vote, the winner
is the tied class whose nearest member among the k neighbours is closest to the query. With
distance weights, exact matches (distance 0) take the whole vote, as in scikit-learn.
"""
from __future__ import annotations

import numpy as np

from .distances import METRICS
from .neighbors import ExactIndex

WEIGHTS = ("uniform", "distance")


def check_features(X: np.ndarray, name: str = "X") -> np.ndarray:
    """2-D, finite, non-empty: the contract every classifier's fit/predict checks once."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (n_samples, n_features), got shape {X.shape}")
    if X.dtype != np.uint8 and not np.isfinite(X).all():
        raise ValueError(f"{name} contains NaN or inf")
    return X


def check_training_data(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`check_features` plus one label per row: what every classifier's fit checks first."""
    X = check_features(X)
    y = np.asarray(y)
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have shape ({X.shape[0]},), got {y.shape}")
    return X, y


def vote(neighbor_labels: np.ndarray, neighbor_dist: np.ndarray, n_classes: int,
         weights: str = "uniform") -> tuple[np.ndarray, np.ndarray]:
    """Labels and vote shares from neighbours sorted nearest first, shape (n, k).

    Returns (labels, shares) where shares rows sum to 1.
    """
    n, k = neighbor_labels.shape
    if weights == "uniform":
        w = np.ones((n, k))
    else:
        zero = neighbor_dist <= 0
        w = np.where(zero.any(1, keepdims=True), zero.astype(float), 1.0 / np.maximum(neighbor_dist, 1e-300))
    votes = np.zeros((n, n_classes))
    np.add.at(votes, (np.repeat(np.arange(n), k), neighbor_labels.ravel()), w.ravel())
    # Position of each class's nearest member among the neighbours (k if absent).
    first = np.full((n, n_classes), k)
    np.minimum.at(first, (np.repeat(np.arange(n), k), neighbor_labels.ravel()), np.tile(np.arange(k), n))
    tied = votes >= votes.max(1, keepdims=True) * (1 - 1e-12)
    labels = np.where(tied, first, k + 1).argmin(1)
    return labels, votes / votes.sum(1, keepdims=True)


class KNNClassifier:
    """Exact k-NN with sklearn's fit / predict / predict_proba / kneighbors.

    Parameters are validated on construction; learned state has a trailing underscore.
    """

    def __init__(self, k: int = 5, metric: str = "l2", weights: str = "uniform", device: str = "auto",
                 max_scratch_bytes: int = 256 << 20) -> None:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        if weights not in WEIGHTS:
            raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}")
        self.k = int(k)
        self.metric = metric
        self.weights = weights
        self.device = device
        self.max_scratch_bytes = max_scratch_bytes

    def fit(self, X: np.ndarray, y: np.ndarray) -> "KNNClassifier":
        X, y = check_training_data(X, y)
        if self.k > X.shape[0]:
            raise ValueError(f"k={self.k} is larger than the training set ({X.shape[0]} samples)")
        self.classes_, self.y_ = np.unique(y, return_inverse=True)
        self.n_features_in_ = X.shape[1]
        self.index_ = ExactIndex(self.metric, self.device, self.max_scratch_bytes)
        self.index_.add(X)
        return self

    def add_samples(self, X: np.ndarray, y: np.ndarray) -> "KNNClassifier":
        """Memorise more labelled samples without refitting: a kNN's training is its memory, so
        live teaching appends to the index (amortised, `ExactIndex.add`) and to the labels."""
        if not hasattr(self, "index_"):
            return self.fit(X, y)
        X, y = check_training_data(X, y)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, the model was fitted with {self.n_features_in_}")
        self.index_.add(X)
        labels = np.concatenate([self.classes_[self.y_], y])
        self.classes_, self.y_ = np.unique(labels, return_inverse=True)
        return self

    def remove_samples(self, ids: np.ndarray) -> "KNNClassifier":
        """Forget the training samples `ids`; at least k samples must stay."""
        ids = np.unique(np.asarray(ids, np.int64))
        if self.index_.ntotal - len(ids) < self.k:
            raise ValueError(f"forgetting {len(ids)} of {self.index_.ntotal} samples would leave fewer than k={self.k}")
        self.index_.remove(ids)
        labels = np.delete(self.classes_[self.y_], ids)
        self.classes_, self.y_ = np.unique(labels, return_inverse=True)
        return self

    def kneighbors(self, X: np.ndarray, n_neighbors: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(distances, indices) of the nearest training samples, nearest first."""
        if not hasattr(self, "index_"):
            raise RuntimeError("KNNClassifier is not fitted; call fit(X, y) first")
        X = check_features(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, the model was fitted with {self.n_features_in_}")
        return self.index_.search(X, n_neighbors or self.k)

    def predict_from_neighbors(self, dist: np.ndarray, idx: np.ndarray, k: int | None = None
                               ) -> tuple[np.ndarray, np.ndarray]:
        """Vote with the first k of precomputed neighbours; lets tuning search once for all k."""
        k = k or self.k
        labels, shares = vote(self.y_[idx[:, :k]], dist[:, :k], len(self.classes_), self.weights)
        return self.classes_[labels], shares

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.predict_from_neighbors(*self.kneighbors(X))[1]

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.predict_from_neighbors(*self.kneighbors(X))[0]
