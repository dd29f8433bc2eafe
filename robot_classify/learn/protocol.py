"""The one small protocol every patch classifier implements, so that no caller asks "kNN or linear?".

`ClassifierModel` (predict / classify), `model_io` (save / load), training (calibration) and
the runtime use only these members; a new classifier joins by implementing them and adding
itself to `CLASSIFIERS`. Both classifiers are also scikit-learn estimators (`fit`, `predict`,
`predict_proba`, `get_params`), which is a separate, wider contract.
"""
from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from .calibration import Evidence

try:
    from sklearn.utils.validation import validate_data
except ImportError:  # scikit-learn < 1.6 (Ubuntu 24.04's python3-sklearn is 1.4): the method form
    def validate_data(estimator: Any, X: Any = "no_validation", y: Any = "no_validation", **kwargs: Any) -> Any:
        return estimator._validate_data(X, y, **kwargs)


@runtime_checkable
class PatchClassifier(Protocol):
    kind: ClassVar[str]  # "knn", "linear": the model file's classifier.kind
    calibration_method: ClassVar[str]  # how `learn.calibration` turns its evidence into scores
    tensor_names: ClassVar[frozenset[str]]  # the tensors `state` writes and `from_state` reads
    # (a class may also name `optional_tensor_names`: ones that older model files lack)
    classes_: np.ndarray
    n_features_in_: int

    def fit(self, X: np.ndarray, y: np.ndarray) -> "PatchClassifier": ...

    def check_params(self) -> Any:
        """Raise ValueError naming a hyperparameter of bad type or range."""

    def evidence(self, X: np.ndarray, k: int | None = None) -> Evidence:
        """Labels (indices into classes_), scores and what calibration needs."""

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(hyperparameters as JSON values, tensors) for the model file."""

    @classmethod
    def from_state(cls, params: dict[str, Any], tensors: dict[str, np.ndarray], n_features: int, n_classes: int,
                   uint8_features: bool, device: str) -> "PatchClassifier":
        """The fitted classifier from checked params and untrusted tensors; ValueError names
        the tensor that does not fit (model_io adds the file's path)."""


def check_tensor(tensors: dict[str, np.ndarray], name: str, dtype: str, shape: tuple[int | None, ...]) -> np.ndarray:
    """Tensor `name` with this dtype and shape (None: any length), finite if float; else ValueError."""
    if name not in tensors:
        raise ValueError(f"missing tensor {name!r}")
    a = tensors[name]
    if a.dtype.name != dtype:
        raise ValueError(f"tensor {name!r} has dtype {a.dtype}, expected {dtype}")
    want = "(" + ", ".join("n" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
    if a.ndim != len(shape) or not all(d is None or d == n for n, d in zip(a.shape, shape)):
        raise ValueError(f"tensor {name!r} has shape {a.shape}, expected {want}")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise ValueError(f"tensor {name!r} contains NaN or inf")
    return a


def check_class_indices(a: np.ndarray, name: str, n_classes: int) -> None:
    if not len(a):
        raise ValueError(f"tensor {name!r} is empty")
    if a.min() < 0 or a.max() >= n_classes:
        raise ValueError(f"{name} outside the class range [0, {n_classes})")
