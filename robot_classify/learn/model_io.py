"""Model files: one safetensors file, tensors + JSON metadata in its header. No pickle.

Layout: tensors `features.*`, `knn.data` + `knn.labels` or `linear.W` + `linear.b` +
`linear.classes`; header metadata key `robot_classify` holds JSON with the format version,
class names, patch size, feature config, classifier kind and hyperparameters, the sha256 of
the training data, of the tensors (`tensors_sha256`) and, from version 2, of the metadata
itself (`metadata_sha256`: sha256 of the canonical JSON dump, sorted keys and no
whitespace, of every metadata field but this one).

Loading treats the file as untrusted: at most 10 tensors; the JSON is parsed with bounds
(2**20 characters, 16 levels of nesting, no NaN/Infinity, no number that overflows a float,
ints of at most 20 digits, no duplicate keys); every field is checked for its exact JSON type
and range before use (JSON `true` is not 1, no field is optional, no unknown field is passed
on); every size read from the file is bounded (class names, HOG bins and grid) or checked
against the tensors it describes (pca_dims, k); then both checksums are compared, then each
tensor's dtype, shape and values against the metadata, and the built model must classify a
probe patch. Any failure is a `ModelFormatError` (a ValueError) with a message that names
the field or tensor.

Version 3 adds `calibration` (null, or `learn.calibration.Calibration.to_json()`: how scores
are calibrated, the model's default min_score and its open-set threshold, checked field by
field) and stores the linear classifier's step budget, tolerance and solver instead of its
epochs. Version 2 files load with no calibration (raw scores, min_score 0.5, no open set).

Version 4 adds `resting` (null, or per class the heights in metres at which its training views
showed it resting: the node names that class only in a pose of such a height,
`runtime.object_sizes`). Version 3 and older files load with none (any pose).

Version 1 files (written before the metadata checksum) still load, with the same strict
checks on every field; a damaged v1 file whose fields all stay valid (a flipped letter in
a class name) cannot be told from a good one. Re-save them (`save_model(load_model(p), q)`)
to get version 2; the round trip predicts identically.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import secrets
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from .calibration import Calibration
from .checksums import file_sha256  # noqa: F401 -- importable from here, as before
from .device import resolve_device
from .features import FeaturePipeline
from .knn import KNNClassifier
from .linear import LinearClassifier
from .model import MAX_RESTING_HEIGHTS, NEGATIVE_LABELS, PATCH_SIZE, ClassifierModel, is_negative, is_resting_height
from .protocol import PatchClassifier, check_tensor

# The classifier kinds a model file may name (learn.protocol.PatchClassifier): the only place that lists them.
CLASSIFIERS: dict[str, type[PatchClassifier]] = {cls.kind: cls for cls in (KNNClassifier, LinearClassifier)}

FORMAT = "robot_classify.model"
FORMAT_VERSION = 4  # 4: + resting; 3: + calibration, linear step budget/solver; 2: metadata_sha256; 1: tensors only
READABLE_VERSIONS = (1, 2, 3, 4)
MAX_CLASSES = 10_000
MAX_NAME_CHARS = 256  # a class name or the model name
MAX_METADATA_CHARS = 1 << 20
MAX_METADATA_DEPTH = 16  # the tuning table is 5 deep
MAX_TENSORS = 10  # features.mean/scale/pca_mean/pca_components + at most 5 classifier tensors
MAX_INT_DIGITS = 20  # enough for any int64; Python would otherwise parse a 4,300-digit int

_FIELDS_V1 = frozenset({"format", "format_version", "name", "class_names", "patch_size", "features",
                        "classifier", "training", "tuning", "tensors_sha256"})
_FIELDS = {1: _FIELDS_V1, 2: _FIELDS_V1 | {"metadata_sha256"}, 3: _FIELDS_V1 | {"metadata_sha256", "calibration"},
           4: _FIELDS_V1 | {"metadata_sha256", "calibration", "resting"}}
# Exactly what `FeaturePipeline.config()` writes per kind; nothing is defaulted on load.
_FEATURE_FIELDS = {"pixels": frozenset({"kind", "center", "pca_dims"}),
                   "hog_color": frozenset({"kind", "hue_bins", "sat_bins", "color_weight", "grid", "grid_weight",
                                           "pca_dims"}),
                   "cnn": frozenset({"kind", "size", "layer", "pca_dims"}),
                   "cnn_color": frozenset({"kind", "size", "layer", "color_weight", "pca_dims"})}
_CLASSIFIER_PARAMS = {"knn": frozenset({"k", "metric", "weights"}),
                      "linear": frozenset({"loss", "reg", "lr", "max_steps", "batch_size", "momentum", "tol",
                                           "solver", "seed"})}
# Versions 1 and 2 stored the SGD epoch count; a loaded model is never retrained, so it is dropped.
_LINEAR_PARAMS_V2 = frozenset({"loss", "reg", "lr", "epochs", "batch_size", "momentum", "seed"})
_SHA256 = re.compile(r"[0-9a-f]{64}")


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


def _canonical_json(value: Any) -> str:
    """One text per value: sorted keys, no whitespace, ASCII, no NaN (floats print as repr)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def metadata_sha256(meta: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of every metadata field except `metadata_sha256` itself."""
    return hashlib.sha256(_canonical_json({k: v for k, v in meta.items() if k != "metadata_sha256"})
                          .encode()).hexdigest()


def save_model(model: ClassifierModel, path: str | Path) -> Path:
    path = Path(path)
    tensors = dict(model.features.state())
    params, clf_tensors = model.classifier.state()
    tensors.update(clf_tensors)
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "name": model.meta.get("name", path.stem),
        "class_names": list(model.class_names), "patch_size": model.patch_size,
        "features": model.features.config(),
        "classifier": {"kind": model.classifier.kind, "params": params},
        "training": model.meta.get("training", {}), "tuning": model.meta.get("tuning", {}),
        "calibration": None if model.calibration is None else model.calibration.to_json(),
        "resting": None if model.resting is None else {k: [float(h) for h in v] for k, v in model.resting.items()},
        "tensors_sha256": _tensors_sha256(tensors),
    }
    # Hash what a reader will parse (tuples become lists, float subclasses plain floats), and
    # refuse to write what load_model would refuse to read.
    meta = json.loads(_canonical_json(meta))
    meta["metadata_sha256"] = metadata_sha256(meta)
    _check_meta(meta, path)
    # A unique temporary name beside the target, renamed over it once complete: a crash never
    # leaves half a model under the real name, and two writers never share a temporary file.
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _new_file_beside(path)
    except OSError as e:  # the reason, said of the file asked for, not of a folder or a temporary name
        why = next((f"{p} is a file, not a folder" for p in path.parents if p.exists() and not p.is_dir()), None)
        raise OSError(f"cannot write {path}: {why or e.strerror or e}") from None
    mode = tmp.stat().st_mode & 0o777  # 0666 less the umask, as any new file
    try:
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp),
                  metadata={"robot_classify": _canonical_json(meta)})
        os.chmod(tmp, mode)  # safetensors writes its file 0600 whatever the umask
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _new_file_beside(path: Path) -> Path:
    """An empty file of a name no one else has, in `path`'s folder, created with the mode any
    file gets (0666 less the umask), which the model then keeps: a 0600 model (mkstemp's mode,
    and safetensors') is one a node running as another user cannot read."""
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return tmp
        except FileExistsError:
            continue


def is_model_file(path: str | Path) -> bool:
    """Whether `path` is a safetensors file that robot_classify wrote (its header only is read).
    A node replaces its teach.save_path on every save; found from outside: set to a config file
    by mistake, that file was replaced by a 14 MB model."""
    try:
        with safe_open(str(path), framework="numpy") as f:
            return "robot_classify" in (f.metadata() or {})
    except Exception:  # noqa: BLE001 -- anything unreadable as safetensors is not a model
        return False


def _require(cond: bool, path: Path, what: str) -> None:
    if not cond:
        raise ModelFormatError(f"{path}: {what}")


def _show(value: Any) -> str:
    """repr for messages, cut short: a damaged file can hold a megabyte string."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _cut(message: Any, limit: int = 300) -> str:
    """A message from a constructor or library may quote a value read from the file at length."""
    text = str(message)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "an integer",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON `true` is not 1


class _Refused:
    """Stands in for a JSON number the format refuses, so that the message can name its field."""

    def __init__(self, what: str) -> None:
        self.what = what


class _DuplicateKey(ValueError):
    pass


def _finite_float(text: str) -> float | _Refused:
    value = float(text)
    return value if math.isfinite(value) else _Refused(f"{text[:24]}, a number too large for a float")


def _bounded_int(text: str) -> int | _Refused:
    digits = len(text.lstrip("-"))
    return int(text) if digits <= MAX_INT_DIGITS else \
        _Refused(f"an integer of {digits} digits (at most {MAX_INT_DIGITS})")


def _no_constant(text: str) -> _Refused:
    return _Refused(f"{text}, not a finite number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise _DuplicateKey(f"key {_show(dup)} appears twice in one object")
    return out


def _scan(meta: Any, path: Path) -> None:
    """Refused numbers and nesting depth, each named by its field; walked without recursion."""
    stack: list[tuple[Any, str, int]] = [(meta, "", 1)]
    while stack:
        item, where, depth = stack.pop()
        field = f"metadata field {where[:80]}" if where else "metadata"
        if isinstance(item, _Refused):
            raise ModelFormatError(f"{path}: {field} holds {item.what}")
        if isinstance(item, (dict, list)):
            _require(depth <= MAX_METADATA_DEPTH, path, f"{field} is nested deeper than {MAX_METADATA_DEPTH} levels")
            children = item.items() if isinstance(item, dict) else enumerate(item)
            stack.extend((child, f"{where}[{key}]" if isinstance(item, list) else f"{where}.{key}" if where else key,
                          depth + 1) for key, child in children)


def _parse_metadata(text: str, path: Path) -> Any:
    _require(len(text) <= MAX_METADATA_CHARS, path,
             f"metadata is {len(text)} characters long, more than the {MAX_METADATA_CHARS} allowed")
    try:
        return json.loads(text, parse_float=_finite_float, parse_int=_bounded_int, parse_constant=_no_constant,
                          object_pairs_hook=_unique_keys)
    except _DuplicateKey as e:
        raise ModelFormatError(f"{path}: metadata refused: {e}") from None
    except RecursionError:  # json.loads recurses once per nesting level
        raise ModelFormatError(f"{path}: metadata is nested too deeply to parse") from None
    except ValueError as e:  # json.JSONDecodeError
        raise ModelFormatError(f"{path}: metadata is not valid JSON ({e})") from None


def _foreign(path: Path) -> str:
    """What a file that is not safetensors is, from its first bytes, where a user may have passed
    it for a model: a PyTorch checkpoint (a zip) or a pickle read as safetensors gave only
    "header too large". Nothing is unpickled or unzipped to say it."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return ""
    if head.startswith(b"PK\x03\x04"):
        return ("; it is a zip archive (a torch.save checkpoint, an .npz): robot_classify reads only its own "
                ".safetensors models")
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "; it is a pickle, which robot_classify never loads as a model: train one with `robot-classify train`"
    return ""


def _read(path: Path) -> tuple[Any, dict[str, np.ndarray]]:
    _require(not path.is_dir(), path, "a folder, not a model file (.safetensors)")
    _require(path.is_file(), path, "no such model file")
    try:
        with safe_open(str(path), framework="numpy") as f:
            header = f.metadata() or {}
            names = list(f.keys())
            tensors = {k: f.get_tensor(k) for k in names} if len(names) <= MAX_TENSORS else None
    except (SafetensorError, OSError, ValueError, TypeError, OverflowError, MemoryError) as e:
        raise ModelFormatError(f"{path}: not a readable safetensors model file ({_cut(e)}){_foreign(path)}") from None
    except Exception as e:  # last line of defence: an F8 dtype on this numpy raises AttributeError
        raise ModelFormatError(f"{path}: not a readable safetensors model file "
                               f"({type(e).__name__}: {_cut(e)})") from None
    _require(tensors is not None, path, f"{len(names)} tensors, more than the {MAX_TENSORS} a model has")
    _require("robot_classify" in header, path, "no robot_classify metadata; not a robot_classify model")
    return _parse_metadata(header["robot_classify"], path), tensors


def _fields(obj: Any, expected: frozenset[str], path: Path, where: str) -> dict[str, Any]:
    """A JSON object with exactly these keys: none defaulted, none passed on unchecked."""
    _require(isinstance(obj, dict), path, f"{where} must be a JSON object, got {_json_type(obj)}")
    missing = sorted(expected - obj.keys())
    _require(not missing, path, f"{where} is missing {', '.join(map(repr, missing))} (no default is assumed)")
    unknown = sorted(obj.keys() - expected)
    _require(not unknown, path, f"{where} has unknown field(s) {', '.join(_show(k) for k in unknown[:5])}")
    return obj


def _check_class_names(names: Any, path: Path) -> None:
    what = "class_names must be a non-empty list of unique strings"
    _require(isinstance(names, list) and 0 < len(names) <= MAX_CLASSES, path,
             f"{what} (at most {MAX_CLASSES}), got {_json_type(names)}"
             + (f" of length {len(names)}" if isinstance(names, list) else ""))
    for i, name in enumerate(names):
        _require(isinstance(name, str) and 0 < len(name) <= MAX_NAME_CHARS and name.isprintable(), path,
                 f"{what}: class_names[{i}] = {_show(name)} is not a printable string of 1 to "
                 f"{MAX_NAME_CHARS} characters")
    if len(set(names)) != len(names):
        seen: set[str] = set()
        dup = next(n for n in names if n in seen or seen.add(n))
        raise ModelFormatError(f"{path}: {what}: {_show(dup)} appears more than once")
    _require(not all(is_negative(n) for n in names), path,
             f"class_names are all negative labels ({', '.join(sorted(NEGATIVE_LABELS))}): "
             "a model needs at least one class it can name")


def _check_features(config: Any, path: Path) -> None:
    _require(isinstance(config, dict), path, f"features must be a JSON object, got {_json_type(config)}")
    kind = config.get("kind")
    _require(isinstance(kind, str) and kind in _FEATURE_FIELDS, path,
             f"features.kind must be one of {tuple(_FEATURE_FIELDS)}, got {_show(kind)}")
    _fields(config, _FEATURE_FIELDS[kind], path, "features")
    try:  # the constructors check every value's type and range (bounded sizes, finite weights)
        FeaturePipeline(**config)
    except (ValueError, TypeError) as e:
        raise ModelFormatError(f"{path}: bad feature config: {_cut(e)}") from None
    # The writer stores the centring the extractor used, which PCA forces on.
    _require(kind != "pixels" or config["center"] or not config["pca_dims"], path,
             "bad feature config: features.center must be true when pca_dims > 0")


def _classifier_params(meta: dict[str, Any]) -> dict[str, Any]:
    """The constructor arguments a (checked) file's classifier.params stand for."""
    params = dict(meta["classifier"]["params"])
    if meta["classifier"]["kind"] == "linear" and meta["format_version"] < 3:
        params.pop("epochs")
    return params


def _check_classifier(clf: Any, path: Path, version: int) -> None:
    _fields(clf, frozenset({"kind", "params"}), path, "classifier")
    kind = clf["kind"]
    _require(isinstance(kind, str) and kind in _CLASSIFIER_PARAMS, path,
             f"unknown classifier kind {_show(kind)} (expected one of {tuple(_CLASSIFIER_PARAMS)})")
    expected = _LINEAR_PARAMS_V2 if kind == "linear" and version < 3 else _CLASSIFIER_PARAMS[kind]
    if kind == "knn" and isinstance(clf["params"], dict) and "class_weight" in clf["params"]:
        expected = expected | {"class_weight"}  # written only when set (a taught kNN: balanced votes)
        _require(clf["params"]["class_weight"] == "balanced", path, "bad classifier parameters: class_weight "
                 f"must be 'balanced' when present, got {_show(clf['params']['class_weight'])}")
    params = _fields(clf["params"], expected, path, "bad classifier parameters: classifier.params")
    params = {k: v for k, v in params.items() if k != "epochs"}
    if version < 3 and kind == "linear":
        _require(_is_int(clf["params"]["epochs"]) and clf["params"]["epochs"] >= 1, path,
                 f"bad classifier parameters: epochs must be a positive integer, got {_show(clf['params']['epochs'])}")
    try:  # check_params checks types and ranges: k a positive int, metric, weights, loss, finite numbers
        CLASSIFIERS[kind](device="cpu", **params).check_params()
    except (ValueError, TypeError) as e:
        raise ModelFormatError(f"{path}: bad classifier parameters: {_cut(e)}") from None


def _check_meta(meta: Any, path: Path) -> int:
    """Type and range of every metadata field, before any is used; returns the format version."""
    _scan(meta, path)
    _require(isinstance(meta, dict), path, f"metadata must be a JSON object, got {_json_type(meta)}")
    _require(meta.get("format") == FORMAT, path,
             f"metadata names another format ({_show(meta.get('format'))}); not a robot_classify model")
    version = meta.get("format_version")
    _require(_is_int(version) and version in READABLE_VERSIONS, path,
             f"format version {_show(version)} is not supported (this robot_classify reads versions "
             f"{', '.join(map(str, READABLE_VERSIONS))})")
    _fields(meta, _FIELDS[version], path, "metadata")
    for key in ("tensors_sha256", "metadata_sha256"):
        _require(key not in meta or (isinstance(meta[key], str) and _SHA256.fullmatch(meta[key]) is not None), path,
                 f"{key} must be 64 lowercase hex digits, got {_show(meta.get(key))}")
    name = meta["name"]
    _require(isinstance(name, str) and len(name) <= MAX_NAME_CHARS, path,
             f"name must be a string of at most {MAX_NAME_CHARS} characters, got {_show(name)}")
    _check_class_names(meta["class_names"], path)
    size = meta["patch_size"]
    _require(_is_int(size) and size == PATCH_SIZE, path, f"patch_size {_show(size)} is not {PATCH_SIZE}")
    for key in ("training", "tuning"):  # informational; covered by the checksum, never used
        _require(isinstance(meta[key], dict), path, f"{key} must be a JSON object, got {_json_type(meta[key])}")
    _check_features(meta["features"], path)
    _check_classifier(meta["classifier"], path, version)
    if version >= 4 and meta["resting"] is not None:
        _check_resting(meta["resting"], meta["class_names"], path)
    if version >= 3 and meta["calibration"] is not None:
        try:
            Calibration.from_json(meta["calibration"])
            _require(meta["calibration"]["method"] == CLASSIFIERS[meta["classifier"]["kind"]].calibration_method, path,
                     f"calibration method {_show(meta['calibration']['method'])} does not fit a "
                     f"{meta['classifier']['kind']} classifier")
        except (ValueError, TypeError) as e:
            if isinstance(e, ModelFormatError):
                raise
            raise ModelFormatError(f"{path}: bad calibration: {_cut(e)}") from None
    return version


def _check_resting(resting: Any, class_names: list[str], path: Path) -> None:
    """null, or {class name: [height in metres, ...]}: classes of the model, 1-3 heights each in (0, 10]
    ({}: no class restricted, but the model records the poses of the classes it is taught)."""
    _require(isinstance(resting, dict), path, f"resting must be null or a JSON object, got {_json_type(resting)}")
    names = set(class_names)
    for name, heights in resting.items():
        _require(name in names, path, f"resting names {_show(name)}, which is not a class of the model")
        _require(isinstance(heights, list) and 1 <= len(heights) <= MAX_RESTING_HEIGHTS
                 and all(is_resting_height(h) for h in heights),
                 path, f"resting[{_show(name)}] must be a list of 1-{MAX_RESTING_HEIGHTS} heights in (0, 10] metres, "
                 f"got {_show(heights)}")


def _check_tensor(tensors: dict[str, np.ndarray], name: str, path: Path, dtype: str,
                  shape: tuple[int | None, ...]) -> np.ndarray:
    """`protocol.check_tensor` (the classifiers' own check) with the file named in the error."""
    try:
        return check_tensor(tensors, name, dtype, shape)
    except ValueError as e:
        raise ModelFormatError(f"{path}: {e}") from None


def _expected_tensors(meta: dict[str, Any]) -> set[str]:
    config, kind = meta["features"], meta["classifier"]["kind"]
    names = set(CLASSIFIERS[kind].tensor_names)
    if config["kind"] == "pixels" and config["center"]:
        names |= {"features.mean", "features.scale"}
    if config["pca_dims"]:
        names |= {"features.pca_mean", "features.pca_components"}
    return names


def _load_features(config: dict[str, Any], tensors: dict[str, np.ndarray], path: Path
                   ) -> tuple[FeaturePipeline, int]:
    """The pipeline and its output size, after checking each feature tensor against the config."""
    pipe = FeaturePipeline(**config)
    if config["kind"] == "pixels":
        dim = PATCH_SIZE * PATCH_SIZE * 3
        if config["center"]:
            _check_tensor(tensors, "features.mean", path, "float32", (dim,))
            scale = _check_tensor(tensors, "features.scale", path, "float32", (1,))
            _require(scale[0] > 0, path, f"tensor 'features.scale' must be > 0, got {scale[0]}")
    else:
        dim = pipe.extractor.dim
    pca_dims = config["pca_dims"]
    if pca_dims:
        _require(pca_dims <= dim, path, f"features.pca_dims {pca_dims} exceeds the {dim} features it reduces")
        _check_tensor(tensors, "features.pca_mean", path, "float32", (dim,))
        _check_tensor(tensors, "features.pca_components", path, "float32", (pca_dims, dim))
        dim = pca_dims
    return FeaturePipeline.from_config(config, tensors), dim


def _load_classifier(meta: dict[str, Any], tensors: dict[str, np.ndarray], dim: int, uint8_features: bool,
                     path: Path, device: str) -> PatchClassifier:
    kind = meta["classifier"]["kind"]
    try:
        return CLASSIFIERS[kind].from_state(_classifier_params(meta), tensors, dim, len(meta["class_names"]),
                                            uint8_features, device)
    except ValueError as e:  # the classifier names the tensor; the file's path is ours to add
        raise ModelFormatError(f"{path}: {_cut(e)}") from None


def load_model(path: str | Path, device: str = "auto") -> ClassifierModel:
    """Load and validate a model file; every failure is a ModelFormatError naming the problem.

    Order: parse the metadata safely, check every field's type and range, compare the
    checksums, check each tensor against the metadata, build, classify a probe patch.
    """
    path = Path(path)
    try:  # the caller's setting, not the file: say so rather than blame the tensors later
        resolve_device(device)
    except ValueError as e:
        raise ModelFormatError(f"{path}: cannot load a model on device {device!r}: {e}") from None
    meta, tensors = _read(path)
    version = _check_meta(meta, path)
    _require(meta["tensors_sha256"] == _tensors_sha256(tensors), path,
             "tensor checksum mismatch: the file was modified or damaged after it was written")
    if version >= 2:
        _require(meta["metadata_sha256"] == metadata_sha256(meta), path,
                 "metadata checksum mismatch: the file was modified or damaged after it was written")
    expected = _expected_tensors(meta)
    optional = getattr(CLASSIFIERS[meta["classifier"]["kind"]], "optional_tensor_names", frozenset())
    for name in sorted(expected - optional - tensors.keys()):
        raise ModelFormatError(f"{path}: missing tensor {name!r}")
    for name in sorted(tensors.keys() - expected):
        raise ModelFormatError(f"{path}: unexpected tensor {_show(name)} for this feature and classifier config")
    stage = "feature tensors"
    try:
        features, dim = _load_features(meta["features"], tensors, path)
        features.to(str(resolve_device(device)))
        probe = np.zeros((1, PATCH_SIZE, PATCH_SIZE, 3), np.uint8)
        stage = "feature extraction on a probe patch"
        X = features.transform(probe)
        _require(X.shape == (1, dim), path, f"features give {X.shape[1]} values per patch, the config says {dim}")
        stage = "classifier tensors"
        clf = _load_classifier(meta, tensors, dim, X.dtype == np.uint8, path, device)
        model = ClassifierModel(features, clf, list(meta["class_names"]), PATCH_SIZE,
                                {"name": meta["name"], "sha256": file_sha256(path),
                                 "training": meta["training"], "tuning": meta["tuning"]},
                                None if version < 3 or meta["calibration"] is None
                                else Calibration.from_json(meta["calibration"]),
                                None if version < 4 or meta["resting"] is None
                                else {k: tuple(float(h) for h in v) for k, v in meta["resting"].items()})
        stage = "classifying a probe patch"
        _, proba = model.predict(probe)
        _require(bool(np.isfinite(proba).all()), path, "the model gives non-finite scores on a probe patch")
    except ModelFormatError:
        raise
    except Exception as e:  # last line of defence; the checks above should leave nothing for it
        raise ModelFormatError(f"{path}: {stage} failed: {type(e).__name__}: {_cut(e)}") from None
    return model
