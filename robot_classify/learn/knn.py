"""k-nearest-neighbour classifier: exact search (`ExactIndex`) plus a majority vote.

Tie-break (documented and tested): when several classes share the highest vote, the winner
is the tied class whose nearest member among the k neighbours is closest to the query. With
distance weights, exact matches (distance 0) take the whole vote, as in scikit-learn.

`class_weight="balanced"` (scikit-learn's name and formula, n_samples / (n_classes * count))
multiplies each neighbour's vote by its class's weight: the vote then compares class densities
(votes / class size) rather than raw counts, which a class taught from ten views needs beside
classes of several hundred examples.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from .calibration import Evidence
from .distances import METRICS
from .neighbors import ExactIndex
from .protocol import check_class_indices, check_tensor, validate_data

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
         weights: str = "uniform", class_weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Labels and vote shares from neighbours sorted nearest first, shape (n, k).

    `class_weights` (n_classes,), when given, scales each neighbour's vote by its class's weight.
    Returns (labels, shares) where shares rows sum to 1.
    """
    n, k = neighbor_labels.shape
    if weights == "uniform":
        w = np.ones((n, k))
    else:
        zero = neighbor_dist <= 0
        w = np.where(zero.any(1, keepdims=True), zero.astype(float), 1.0 / np.maximum(neighbor_dist, 1e-300))
    if class_weights is not None:
        w = w * class_weights[neighbor_labels]
    votes = np.zeros((n, n_classes))
    np.add.at(votes, (np.repeat(np.arange(n), k), neighbor_labels.ravel()), w.ravel())
    # Position of each class's nearest member among the neighbours (k if absent).
    first = np.full((n, n_classes), k)
    np.minimum.at(first, (np.repeat(np.arange(n), k), neighbor_labels.ravel()), np.tile(np.arange(k), n))
    tied = votes >= votes.max(1, keepdims=True) * (1 - 1e-12)
    labels = np.where(tied, first, k + 1).argmin(1)
    shares = votes / votes.sum(1, keepdims=True)
    # One ulp more for the winner, so that argmax(shares) agrees with the tie-break above
    # (scikit-learn's contract between predict and predict_proba).
    # Only rows with a tie: an untied winner already has the largest share, and may be 1.0.
    rows = np.flatnonzero(tied.sum(1) > 1)
    shares[rows, labels[rows]] = np.nextafter(shares[rows, labels[rows]], np.inf)
    return labels, shares


class KNNClassifier(ClassifierMixin, BaseEstimator):
    """Exact k-NN with sklearn's fit / predict / predict_proba / kneighbors.

    A scikit-learn estimator (`check_estimator` passes, test/test_sklearn_api.py): `__init__` stores,
    `fit` validates; learned state has a trailing underscore.
    """

    kind = "knn"
    calibration_method = "knn_logistic"  # learn.calibration: vote share and distance -> P(right)

    def __init__(self, k: int = 5, metric: str = "l2", weights: str = "uniform", device: str = "auto",
                 max_scratch_bytes: int = 256 << 20, n_neighbors: int | None = None,
                 class_weight: str | None = None) -> None:
        # scikit-learn's convention: store only; `fit` (and model_io, through `check_params`) validates.
        self.k = k
        self.metric = metric
        self.weights = weights
        self.device = device
        self.max_scratch_bytes = max_scratch_bytes
        self.n_neighbors = n_neighbors
        self.class_weight = class_weight

    def check_params(self) -> int:
        """Every hyperparameter's type and range; returns the neighbour count in force
        (`n_neighbors`, scikit-learn's name, when given, else `k`)."""
        k = self.k if self.n_neighbors is None else self.n_neighbors
        name = "k" if self.n_neighbors is None else "n_neighbors"
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"{name} must be a positive integer, got {k!r}")
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {self.metric!r}")
        if self.weights not in WEIGHTS:
            raise ValueError(f"weights must be one of {WEIGHTS}, got {self.weights!r}")
        cw = self.class_weight
        if not (cw is None or cw == "balanced" or (isinstance(cw, dict) and all(
                isinstance(w, (int, float, np.number)) and not isinstance(w, bool) and np.isfinite(w) and w >= 0
                for w in cw.values()))):
            raise ValueError(f"class_weight must be None, 'balanced' or a dict of class -> weight >= 0, got {cw!r}")
        return int(k)

    def fit(self, X: np.ndarray, y: np.ndarray) -> "KNNClassifier":
        k = self.check_params()
        # dtype=None keeps uint8 pixels uint8: the index searches them in exact integer arithmetic.
        X, y = validate_data(self, X, y, dtype=None)
        check_classification_targets(y)
        if k > X.shape[0]:
            raise ValueError(f"k={k} is larger than the training set (n_samples = {X.shape[0]})")
        self.n_neighbors_ = k
        self.classes_, self.y_ = np.unique(y, return_inverse=True)
        self.index_ = ExactIndex(self.metric, self.device, self.max_scratch_bytes)
        self.index_.add(X)
        self.sample_scale_ = None
        self.taught_ = None  # per sample, whether teaching added it (None: none was)
        return self

    def _class_weights(self, samples: np.ndarray | None = None) -> np.ndarray | None:
        """Per class in `classes_`: scikit-learn's class_weight (a dict names classes; absent: 1);
        'balanced' counts the `samples` (a bool mask; all by default)."""
        if self.class_weight is None:
            return None
        if isinstance(self.class_weight, dict):
            return np.array([float(self.class_weight.get(c, 1.0)) for c in self.classes_.tolist()])
        y = self.y_ if samples is None else self.y_[samples]
        counts = np.bincount(y, minlength=len(self.classes_)).astype(np.float64)
        return len(y) / (len(self.classes_) * np.maximum(counts, 1.0))

    def add_samples(self, X: np.ndarray, y: np.ndarray, scale: float = 1.0, taught: bool = False) -> "KNNClassifier":
        """Memorise more labelled samples without refitting: a kNN's training is its memory, so
        live teaching appends to the index (amortised, `ExactIndex.add`) and to the labels.

        `scale` (>= 1) is how much farther than usual a query may lie from these samples before
        it is novel (`evidence().nearest` is divided by it): a class known from a few views is
        sparser than one of hundreds of examples, and its own held-out views say how much.
        `taught`: the samples come from teaching (`taught_`), not training; `evidence(untaught=True)`
        answers without them."""
        if not hasattr(self, "index_"):
            return self.fit(X, y)
        X, y = check_training_data(X, y)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, the model was fitted with {self.n_features_in_}")
        if not (np.isfinite(scale) and 1.0 <= scale <= 1e6):
            raise ValueError(f"scale must be a finite number in [1, 1e6], got {scale!r}")
        if scale != 1.0 or self.sample_scale_ is not None:
            old = np.ones(self.index_.ntotal, np.float32) if self.sample_scale_ is None else self.sample_scale_
            self.sample_scale_ = np.concatenate([old, np.full(len(X), scale, np.float32)])
        if taught or self.taught_ is not None:
            was = np.zeros(self.index_.ntotal, bool) if self.taught_ is None else self.taught_
            self.taught_ = np.concatenate([was, np.full(len(X), bool(taught))])
        self.index_.add(X)
        # What np.unique over all labels gives, without sorting the 50,000 old ones per view.
        classes = np.union1d(self.classes_, y)
        self.y_ = np.concatenate([np.searchsorted(classes, self.classes_)[self.y_], np.searchsorted(classes, y)])
        self.classes_ = classes
        return self

    def remove_samples(self, ids: np.ndarray) -> "KNNClassifier":
        """Forget the training samples `ids`; at least k samples must stay."""
        ids = np.unique(np.asarray(ids, np.int64))
        if self.index_.ntotal - len(ids) < self.n_neighbors_:
            raise ValueError(f"forgetting {len(ids)} of {self.index_.ntotal} samples would leave fewer than "
                             f"k={self.n_neighbors_}")
        self.index_.remove(ids)
        if self.sample_scale_ is not None:
            self.sample_scale_ = np.delete(self.sample_scale_, ids)
        if self.taught_ is not None:
            self.taught_ = np.delete(self.taught_, ids)
        labels = np.delete(self.classes_[self.y_], ids)
        self.classes_, self.y_ = np.unique(labels, return_inverse=True)
        return self

    def kneighbors(self, X: np.ndarray, n_neighbors: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(distances, indices) of the nearest training samples, nearest first."""
        check_is_fitted(self, "index_")
        X = validate_data(self, X, reset=False, dtype=None)
        return self.index_.search(X, n_neighbors or self.n_neighbors_)

    def _frame_neighbors(self, X: np.ndarray, k: int | None) -> tuple[np.ndarray, np.ndarray]:
        """`kneighbors` for the node's path: features from the model's own pipeline (a 2-D float32
        or uint8 array of the fitted width) go straight to the index, which still refuses NaN,
        inf and other widths; scikit-learn's input checks cost ~0.5 ms a frame, as much as
        searching the default model's index. Anything else takes `kneighbors` and its checks."""
        if (hasattr(self, "index_") and isinstance(X, np.ndarray) and X.ndim == 2 and len(X)
                and X.dtype in (np.float32, np.uint8) and X.shape[1] == self.n_features_in_):
            return self.index_.search(X, k or self.n_neighbors_)
        return self.kneighbors(X, k)

    def _trained_neighbors(self, X: np.ndarray, k: int, taught: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """(distances, indices, k) of the k nearest samples that `taught` (a bool per sample) does
        not mark, nearest first, as an index of them alone would find them (k at most their count)."""
        trained = self.index_.ntotal - int(taught.sum())
        if not trained:
            raise ValueError("every stored sample was taught: there is no untaught answer")
        # the k nearest trained samples are among the k + (taught samples) nearest of all
        dist, idx = self._frame_neighbors(X, min(self.index_.ntotal, k + int(taught.sum())))
        k = min(k, trained)
        first = np.argsort(taught[idx], axis=1, kind="stable")[:, :k]
        return np.take_along_axis(dist, first, 1), np.take_along_axis(idx, first, 1), k

    def predict_from_neighbors(self, dist: np.ndarray, idx: np.ndarray, k: int | None = None,
                               samples: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Vote with the first k of precomputed neighbours; lets tuning search once for all k.
        `samples`: the stored samples the neighbours were searched among (a bool mask; all by
        default), which balanced class weights count."""
        k = k or self.n_neighbors_
        labels, shares = vote(self.y_[idx[:, :k]], dist[:, :k], len(self.classes_), self.weights,
                              self._class_weights(samples))
        return self.classes_[labels], shares

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.predict_from_neighbors(*self.kneighbors(X))[1]

    tensor_names = frozenset({"knn.data", "knn.labels", "knn.scale", "knn.taught"})
    # only taught models have per-sample scales; files before 0.9.12 do not say which samples were taught
    optional_tensor_names = frozenset({"knn.scale", "knn.taught"})

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The model file's part (protocol): k, metric, weights (and class_weight when set); the
        stored samples, their labels and, for taught samples, their novelty scales."""
        check_is_fitted(self, "index_")
        params = {"k": int(self.n_neighbors_), "metric": self.metric, "weights": self.weights}
        if isinstance(self.class_weight, dict):
            raise ValueError("a class_weight dict is not stored in model files; use None or 'balanced'")
        if self.class_weight is not None:  # files without it stay byte-identical
            params["class_weight"] = self.class_weight
        tensors = {"knn.data": self.index_.data, "knn.labels": self.classes_[self.y_].astype(np.int64)}
        if self.sample_scale_ is not None:
            tensors["knn.scale"] = self.sample_scale_
        if self.taught_ is not None and self.taught_.any():  # all forgotten: as a file that was never taught
            tensors["knn.taught"] = self.taught_.astype(np.uint8)
        return params, tensors

    @classmethod
    def from_state(cls, params: dict[str, Any], tensors: dict[str, np.ndarray], n_features: int, n_classes: int,
                   uint8_features: bool, device: str) -> "KNNClassifier":
        # The index keeps uint8 features as uint8, except for cosine, which normalises rows.
        dtype = "uint8" if uint8_features and params["metric"] != "cosine" else "float32"
        data = check_tensor(tensors, "knn.data", dtype, (None, n_features))
        labels = check_tensor(tensors, "knn.labels", "int64", (len(data),))
        check_class_indices(labels, "knn.labels", n_classes)
        if params["k"] > len(data):
            raise ValueError(f"k={params['k']} exceeds the {len(data)} stored samples")
        clf = cls(device=device, **params).fit(data, labels)
        if "knn.scale" in tensors:
            scale = check_tensor(tensors, "knn.scale", "float32", (len(data),))
            if not (np.isfinite(scale).all() and (scale >= 1).all() and (scale <= 1e6).all()):
                raise ValueError("knn.scale must hold finite numbers in [1, 1e6]")
            clf.sample_scale_ = scale
        if "knn.taught" in tensors:
            taught = check_tensor(tensors, "knn.taught", "uint8", (len(data),))
            if not np.isin(taught, (0, 1)).all():
                raise ValueError("knn.taught must hold 0 or 1 per sample")
            clf.taught_ = taught.astype(bool)
        return clf

    def evidence(self, X: np.ndarray, k: int | None = None, untaught: bool = False) -> Evidence:
        """The classifier protocol's one call (`learn.calibration.Evidence`): vote shares, and the
        distances that say how far the query is from what the model knows: to the nearest
        sample of the winning class among the k (calibration) and to the nearest sample of any
        class (novelty, for 'unknown'; divided by that sample's scale, see `add_samples`);
        `taught_won`: whether taught samples alone made the winning class's votes.
        `untaught`: the vote of the trained samples alone (`add_samples(taught=True)` left out; the
        vote's k and weights as they are now), as an index of them alone would answer."""
        k = k or self.n_neighbors_
        taught = self.taught_ if self.taught_ is not None and self.taught_.any() else None
        samples = None  # the samples searched: all
        if untaught and taught is not None:
            dist, idx, k = self._trained_neighbors(X, k, taught)
            samples, taught = ~taught, None  # no taught sample among them
        else:
            dist, idx = self._frame_neighbors(X, k)
        labels, shares = self.predict_from_neighbors(dist, idx, k, samples)
        won = self.classes_[self.y_[idx[:, :k]]] == labels[:, None]
        if self.weights == "distance":  # an exact match votes alone (`vote`): the others won nothing
            exact = dist[:, :k] <= 0
            won &= np.where(exact.any(1, keepdims=True), exact, True)
        d_win = np.where(won, dist[:, :k], np.inf).min(1)
        nearest = dist[:, 0].astype(np.float64)
        if self.sample_scale_ is not None:  # within the reach of any of the k (the nearest's alone without scales)
            nearest = (dist[:, :k] / self.sample_scale_[idx[:, :k]]).min(1).astype(np.float64)
        taught_won = None if taught is None else (won <= taught[idx[:, :k]]).all(1)
        return Evidence(np.searchsorted(self.classes_, labels), shares, None, d_win, nearest, taught_won)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.predict_from_neighbors(*self.kneighbors(X))[0]
