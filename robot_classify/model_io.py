"""Model files: one safetensors file, tensors + JSON metadata in its header. No pickle.

Layout: tensors `features.*`, `knn.data` + `knn.labels` or `linear.W` + `linear.b` +
`linear.classes`; header metadata key `robot_classify` holds JSON with the format version,
class names, patch size, feature config, classifier kind and hyperparameters, the sha256 of
the training data and of the tensors. Loading validates all of it and raises
`ModelFormatError` (a ValueError) with a message that says what is wrong.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from .features import FeaturePipeline
from .knn import KNNClassifier
from .linear import LinearClassifier
from .model import ClassifierModel

FORMAT = "robot_classify.model"
FORMAT_VERSION = 1
MAX_CLASSES = 10_000


class ModelFormatError(ValueError):
    """A model file that is missing, corrupt, tampered with or from an unknown version."""


def data_sha256(images: np.ndarray, labels: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(images).tobytes())
    h.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    return h.hexdigest()


def _tensors_sha256(tensors: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def file_sha256(path: str | Path) -> str:
    """Identity of a model on /object_labels: the hash of the exact file bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_model(model: ClassifierModel, path: str | Path) -> Path:
    path = Path(path)
    tensors = dict(model.features.state())
    clf = model.classifier
    if isinstance(clf, KNNClassifier):
        tensors["knn.data"] = clf.index_.data
        tensors["knn.labels"] = clf.classes_[clf.y_].astype(np.int64)
        params = {"k": clf.k, "metric": clf.metric, "weights": clf.weights}
    else:
        tensors["linear.W"] = clf.coef_.astype(np.float32)
        tensors["linear.b"] = clf.intercept_.astype(np.float32)
        tensors["linear.classes"] = clf.classes_.astype(np.int64)
        params = {"loss": clf.loss, "reg": clf.reg, "lr": clf.lr, "epochs": clf.epochs,
                  "batch_size": clf.batch_size, "momentum": clf.momentum, "seed": clf.seed}
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "name": model.meta.get("name", path.stem),
        "class_names": list(model.class_names), "patch_size": model.patch_size,
        "features": model.features.config(),
        "classifier": {"kind": model.kind, "params": params},
        "training": model.meta.get("training", {}), "tuning": model.meta.get("tuning", {}),
        "tensors_sha256": _tensors_sha256(tensors),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp),
              metadata={"robot_classify": json.dumps(meta)})
    tmp.replace(path)  # atomic: a crash never leaves half a model under the real name
    return path


def _require(cond: bool, path: Path, what: str) -> None:
    if not cond:
        raise ModelFormatError(f"{path}: {what}")


def _read(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    _require(path.is_file(), path, "no such model file")
    try:
        with safe_open(str(path), framework="numpy") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, TypeError) as e:
        raise ModelFormatError(f"{path}: not a readable safetensors model file ({e})") from None
    _require("robot_classify" in header, path, "no robot_classify metadata; not a robot_classify model")
    try:
        meta = json.loads(header["robot_classify"])
    except json.JSONDecodeError as e:
        raise ModelFormatError(f"{path}: metadata is not valid JSON ({e})") from None
    _require(isinstance(meta, dict) and meta.get("format") == FORMAT, path, "metadata names another format")
    return meta, tensors


def _check_tensor(tensors: dict[str, np.ndarray], name: str, path: Path, dtypes: tuple[str, ...],
                  ndim: int) -> np.ndarray:
    _require(name in tensors, path, f"missing tensor {name!r}")
    a = tensors[name]
    _require(a.dtype.name in dtypes, path, f"tensor {name!r} has dtype {a.dtype}, expected one of {dtypes}")
    _require(a.ndim == ndim, path, f"tensor {name!r} has shape {a.shape}, expected {ndim} dimensions")
    if a.dtype.kind == "f":
        _require(bool(np.isfinite(a).all()), path, f"tensor {name!r} contains NaN or inf")
    return a


def load_model(path: str | Path, device: str = "auto") -> ClassifierModel:
    """Load and validate a model file; every failure is a ModelFormatError naming the problem."""
    path = Path(path)
    meta, tensors = _read(path)
    version = meta.get("format_version")
    _require(version == FORMAT_VERSION, path,
             f"format version {version!r} is not supported (this robot_classify reads {FORMAT_VERSION})")
    names = meta.get("class_names")
    _require(isinstance(names, list) and 0 < len(names) <= MAX_CLASSES and all(isinstance(n, str) and n for n in names)
             and len(set(names)) == len(names), path, "class_names must be a non-empty list of unique strings")
    _require(meta.get("patch_size") == 32, path, f"patch_size {meta.get('patch_size')!r} is not 32")
    _require(meta.get("tensors_sha256") == _tensors_sha256(tensors), path,
             "tensor checksum mismatch: the file was modified or damaged after it was written")
    try:
        features = FeaturePipeline.from_config(meta["features"], tensors)
        clf_meta = meta["classifier"]
        kind, params = clf_meta["kind"], dict(clf_meta["params"])
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFormatError(f"{path}: bad feature or classifier metadata ({e!r})") from None
    n_classes = len(names)
    try:
        if kind == "knn":
            data = _check_tensor(tensors, "knn.data", path, ("uint8", "float32"), 2)
            labels = _check_tensor(tensors, "knn.labels", path, ("int64",), 1)
            _require(len(labels) == len(data), path, f"knn.labels has {len(labels)} rows, knn.data {len(data)}")
            _require(labels.min() >= 0 and labels.max() < n_classes, path, "knn.labels outside the class range")
            clf = KNNClassifier(device=device, **params)
            _require(clf.k <= len(data), path, f"k={clf.k} exceeds the {len(data)} stored samples")
            clf.fit(data, labels)
        elif kind == "linear":
            W = _check_tensor(tensors, "linear.W", path, ("float32",), 2)
            b = _check_tensor(tensors, "linear.b", path, ("float32",), 1)
            classes = _check_tensor(tensors, "linear.classes", path, ("int64",), 1)
            _require(W.shape[0] == len(b) == len(classes), path,
                     f"linear.W {W.shape}, linear.b {b.shape} and linear.classes {classes.shape} disagree")
            _require(classes.min() >= 0 and classes.max() < n_classes, path, "linear.classes outside the class range")
            clf = LinearClassifier(device=device, **params)
            clf.coef_, clf.intercept_, clf.classes_, clf.n_features_in_ = W, b, classes, W.shape[1]
        else:
            raise ModelFormatError(f"{path}: unknown classifier kind {kind!r}")
    except TypeError as e:
        raise ModelFormatError(f"{path}: bad classifier parameters ({e})") from None
    except ValueError as e:
        if isinstance(e, ModelFormatError):
            raise
        raise ModelFormatError(f"{path}: {e}") from None
    try:
        probe = features.transform(np.zeros((1, 32, 32, 3), np.uint8))
    except ValueError as e:
        raise ModelFormatError(f"{path}: feature statistics do not fit a 32x32x3 patch ({e})") from None
    _require(probe.shape[1] == clf.n_features_in_, path,
             f"feature size {probe.shape[1]} does not match the classifier's {clf.n_features_in_}")
    return ClassifierModel(features, clf, names, 32, {"name": meta.get("name", path.stem), "sha256": file_sha256(path),
                                                      "training": meta.get("training", {}),
                                                      "tuning": meta.get("tuning", {})})
