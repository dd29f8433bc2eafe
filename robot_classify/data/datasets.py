"""Patch datasets: image folders, .npz, PROPS (DeepRob) pickles and CIFAR-10 python batches.

Everything becomes `PatchSet`s of uint8 RGB 32x32 patches with integer labels into one list
of class names, keyed by split ("train", "val", "test", or "all" for a single-split file).
Pickles are read with `safe_pickle.safe_load`, which cannot run code.
"""
from __future__ import annotations

import logging
import re
import threading
import zipfile
from pathlib import Path

import cv2
import numpy as np

from ..learn.features import PATCH_SIZE
# PatchSet and split_validation live in learn (training takes them; learn imports nothing from data);
# still importable from here.
from ..learn.patch_set import PATCH_SHAPE, PatchSet, split_validation  # noqa: F401
from ..runtime.compressed import JPEG_SOI, PNG_SIGNATURE, truncation
from ..runtime.results import RESERVED_LABELS
from .safe_pickle import safe_load

log = logging.getLogger(__name__)

PROPS_CLASSES = ["master_chef_can", "cracker_box", "sugar_box", "tomato_soup_can", "mustard_bottle",
                 "tuna_fish_can", "gelatin_box", "potted_meat_can", "mug", "large_marker"]
FORMATS = ("auto", "props", "cifar10", "folder", "npz")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def to_patch(image: np.ndarray) -> np.ndarray:
    """Any image (grey, RGB, RGBA, 8/16-bit) -> 32x32 RGB uint8, resized with INTER_AREA."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.dtype != np.uint8:
        raise ValueError(f"unsupported image dtype {image.dtype}")
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.shape[2] == 4:
        image = image[:, :, :3]
    elif image.shape[2] == 1:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[:2] != (PATCH_SIZE, PATCH_SIZE):
        image = cv2.resize(image, (PATCH_SIZE, PATCH_SIZE), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image)


def read_image_unchanged(path: str | Path) -> np.ndarray:
    """The file's pixels as stored (channel order BGR, any depth): FileNotFoundError if there is
    no such file, ValueError if it cannot be decoded.

    Decoded from bytes read here, not `cv2.imread`: that prints an OpenCV warning line on its
    own for a missing or unreadable file, before the caller can say what went wrong.
    """
    path = Path(path)
    if path.is_dir():  # `predict FOLDER`: said as it is, not "no such file"
        raise ValueError(f"{path}: is a folder, not an image file")
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    data = np.fromfile(path, np.uint8)
    codec = "png" if bytes(data[:8]) == PNG_SIGNATURE else "jpeg" if bytes(data[:2]) == JPEG_SOI else ""
    cut = truncation(data, codec) if codec else None
    if cut:  # said here: libpng would print a line of its own before the caller's
        raise ValueError(f"{path}: truncated {codec.upper()} ({cut})")
    img = _decode_quietly(data) if data.size else None
    if img is None:
        raise ValueError(f"{path}: not a readable image")
    return img


_QUIET = threading.Lock()


def _decode_quietly(data: np.ndarray) -> np.ndarray | None:
    """cv2.imdecode without the warning line OpenCV prints for a damaged file (a truncated PNG:
    "PNG input buffer is incomplete"), which would stand before the caller's own one-line error."""
    log = getattr(getattr(cv2, "utils", None), "logging", None)
    if log is None:
        return cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    with _QUIET:  # the level is the process's: two readers must not restore each other's
        level = log.getLogLevel()
        log.setLogLevel(log.LOG_LEVEL_ERROR)
        try:
            return cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        finally:
            log.setLogLevel(level)


def read_image(path: str | Path) -> np.ndarray:
    """Read a file as RGB (or grey); FileNotFoundError if missing, ValueError if OpenCV cannot decode it."""
    img = read_image_unchanged(path)
    if img.ndim == 3 and img.shape[2] >= 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA if img.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return img


def load_folder(root: Path) -> dict[str, PatchSet]:
    splits = [d for d in sorted(root.iterdir()) if d.is_dir() and d.name in ("train", "val", "test")]
    if not splits:
        raise ValueError(f"{root}: expected train/, val/ or test/ folders with one folder per class")
    names_file = root / "class_names.txt"
    if names_file.is_file():
        class_names = [n.strip() for n in names_file.read_text().splitlines() if n.strip()]
    else:
        class_names = sorted({c.name for s in splits for c in s.iterdir() if c.is_dir() and not c.name.startswith("_")})
    reserved = [c for c in class_names if c.lower() in RESERVED_LABELS]
    if reserved:  # replay-eval's rows and a class map's keyword: a class of that name mixes with them
        raise ValueError(f"{root}: class {reserved[0]!r} is a word replay-eval and class maps keep for themselves "
                         f"({', '.join(RESERVED_LABELS)}); name the folder 'unknown' for examples of none of the "
                         "classes, or give the class another name")
    out = {}
    for split in splits:
        images, labels, skipped = [], [], 0
        for ci, name in enumerate(class_names):
            for f in sorted((split / name).glob("*")) if (split / name).is_dir() else []:
                if f.suffix.lower() not in IMAGE_SUFFIXES or not f.is_file():
                    continue
                try:
                    images.append(to_patch(read_image(f)))
                    labels.append(ci)
                except ValueError as e:
                    skipped += 1
                    log.warning("skipping %s", e)
        if skipped:
            log.warning("%s: skipped %d unreadable images", split, skipped)
        out[split.name] = PatchSet(np.stack(images) if images else np.zeros((0, *PATCH_SHAPE), np.uint8),
                                   np.asarray(labels, np.int64), class_names)
    return out


def _whole_numbers(values: np.ndarray, what: str) -> np.ndarray:
    """`values` as int64 where each is a whole number; a float array of 0..1 pixels or of labels
    plus 0.5 had been cut to integers without a word (found from outside)."""
    values = np.asarray(values)
    if values.dtype.kind == "f" and values.size and not np.array_equal(values, np.round(values)):
        raise ValueError(f"{what} must be whole numbers, got {values.dtype} values such as "
                         f"{values.flat[np.flatnonzero(values != np.round(values))[0]]:g}")
    if values.dtype.kind not in "biuf":
        raise ValueError(f"{what} must be numbers, got {values.dtype}")
    return values.astype(np.int64)


def load_npz(path: Path) -> dict[str, PatchSet]:
    try:
        with np.load(path, allow_pickle=False) as z:
            files = dict(z)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:  # a cut .npz is a bad zip
        raise ValueError(f"{path}: not a readable .npz without pickled objects ({e})") from None
    if "class_names" not in files:
        raise ValueError(f"{path}: missing 'class_names'")
    names = [str(n) for n in files["class_names"]]
    out = {}
    for split in ("", "train", "val", "test"):
        xk, yk = ("X", "y") if not split else (f"X_{split}", f"y_{split}")
        if xk in files and yk in files:
            images = files[xk]
            if images.ndim == 4 and images.shape[1] in (1, 3) and images.shape[3] not in (1, 3, 4):
                raise ValueError(f"{path}: {xk} has shape {images.shape}: channels first? images are "
                                 "(N, height, width, 3) RGB")
            if images.ndim == 4 and images.shape[1:3] != (PATCH_SIZE, PATCH_SIZE):
                images = np.stack([to_patch(i) for i in images]) if len(images) else images
            try:
                out[split or "all"] = PatchSet(images, _whole_numbers(files[yk], "labels"), names)
            except (TypeError, ValueError) as e:  # labels of text, or outside the class list
                raise ValueError(f"{path}: {xk}, {yk}: {e}") from None
    if not out:
        raise ValueError(f"{path}: needs arrays X and y (or X_train/y_train, X_test/y_test)")
    return out


def _props_root(path: Path) -> Path:
    for cand in (path, path / "Progress-Objects-Sample"):
        if (cand / "meta.pkl").is_file():
            return cand
    raise ValueError(f"{path}: no PROPS meta.pkl found")


def load_props(path: Path) -> dict[str, PatchSet]:
    root = _props_root(path)
    meta = _load_dict(root / "meta.pkl", ("test_split",))
    test_split = {Path(str(n)).stem for n in meta["test_split"]}
    names = [str(n) for n in meta.get("class_names", PROPS_CLASSES)]
    parts: dict[str, list] = {"train": [], "test": []}
    files = sorted(f for f in root.glob("*.pkl") if f.name != "meta.pkl")
    if not files:
        raise ValueError(f"{root}: no <class>_<n>.pkl instance files")
    for gi, f in enumerate(files):
        d = _load_dict(f, ("data", "labels"))
        data, labels = np.asarray(d["data"]), np.asarray(d["labels"], np.int64).ravel()
        if data.dtype != np.uint8 or data.ndim != 4 or data.shape[1:] != PATCH_SHAPE or len(data) != len(labels):
            raise ValueError(f"{f}: data must be uint8 (N, {PATCH_SIZE}, {PATCH_SIZE}, 3) with N labels, got "
                             f"{data.dtype} {data.shape} and {labels.shape}")
        parts["test" if f.stem in test_split else "train"].append((data, labels, np.full(len(labels), gi)))
    out = {}
    for split, items in parts.items():
        if items:
            out[split] = PatchSet(np.concatenate([i[0] for i in items]), np.concatenate([i[1] for i in items]),
                                  names, np.concatenate([i[2] for i in items]))
    return out


def _cifar_root(path: Path) -> Path:
    for cand in (path, path / "cifar-10-batches-py"):
        if (cand / "batches.meta").is_file() or (cand / "test_batch").is_file():
            return cand
    raise ValueError(f"{path}: no CIFAR-10 batches found")


def _load_dict(path: Path, required: tuple[str, ...]) -> dict:
    """A pickled dict with str keys (Python 2 era CIFAR pickles may have bytes keys)."""
    d = safe_load(path)
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(d).__name__}")
    d = {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}
    missing = [k for k in required if k not in d]
    if missing:
        raise ValueError(f"{path}: missing keys {missing}")
    return d


def load_cifar10(path: Path) -> dict[str, PatchSet]:
    root = _cifar_root(path)
    names = [f"class_{i}" for i in range(10)]
    if (root / "batches.meta").is_file():
        meta = _load_dict(root / "batches.meta", ("label_names",))
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta["label_names"]]

    def batch(f: Path) -> tuple[np.ndarray, np.ndarray]:
        d = _load_dict(f, ("data",))
        if "labels" not in d and "fine_labels" not in d:
            raise ValueError(f"{f}: missing keys ['labels'] (or 'fine_labels')")
        try:  # text instead of numbers: one line naming the batch, not a traceback
            data = np.asarray(d["data"])
            labels = np.asarray(d.get("labels", d.get("fine_labels")))
            numbers = data.dtype.kind in "biuf" and labels.dtype.kind in "biuf"
        except (TypeError, ValueError, OverflowError) as e:
            raise ValueError(f"{f}: data and labels must be numbers ({e})") from None
        if not numbers:
            raise ValueError(f"{f}: data and labels must be numbers, got {data.dtype} and {labels.dtype}")
        try:
            labels = _whole_numbers(labels, "labels")
            data = data if data.dtype == np.uint8 else _whole_numbers(data, "pixel values")
        except ValueError as e:
            raise ValueError(f"{f}: {e}") from None
        in_range = data.dtype == np.uint8 or not data.size or 0 <= data.min() <= data.max() <= 255
        if not in_range:  # not wrapped around into other pixels
            raise ValueError(f"{f}: pixel values must be 0-255, got {data.min()}..{data.max()}")
        data = data.astype(np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * PATCH_SIZE * PATCH_SIZE or len(labels) != len(data):
            raise ValueError(f"{f}: expected data (N, 3072) and N labels, got {data.shape} and {labels.shape}")
        if labels.size and (labels.min() < 0 or labels.max() >= len(names)):
            raise ValueError(f"{f}: labels outside [0, {len(names)}) ({len(names)} classes)")
        return data.reshape(-1, 3, PATCH_SIZE, PATCH_SIZE).transpose(0, 2, 3, 1).copy(), labels

    out = {}
    train = [batch(f) for f in sorted(root.glob("data_batch_*"), key=lambda p: int(re.sub(r"\D", "", p.name) or 0))]
    if train:
        out["train"] = PatchSet(np.concatenate([t[0] for t in train]), np.concatenate([t[1] for t in train]), names)
    if (root / "test_batch").is_file():
        out["test"] = PatchSet(*batch(root / "test_batch"), names)
    return out


def _require_dataset(path: Path) -> None:
    """Missing and empty datasets say so, rather than that their format is unknown."""
    if not path.exists():
        kind = "file" if path.suffix == ".npz" else "folder"
        raise FileNotFoundError(f"no such {kind}: {path} (a dataset is a folder or an .npz file)")
    if path.is_dir() and not any(path.iterdir()):
        raise ValueError(f"{path}: the dataset folder is empty")


def detect_format(path: Path) -> str:
    _require_dataset(path)
    if path.is_file() and path.suffix == ".npz":
        return "npz"
    if not path.is_dir():
        raise ValueError(f"{path}: not a dataset (a folder or .npz file)")
    try:
        _props_root(path)
        return "props"
    except ValueError:
        pass
    try:
        _cifar_root(path)
        return "cifar10"
    except ValueError:
        pass
    if any((path / s).is_dir() for s in ("train", "val", "test")):
        return "folder"
    raise ValueError(f"{path}: cannot tell the dataset format; pass --format ({', '.join(FORMATS[1:])})")


def load_dataset(path: str | Path, fmt: str = "auto") -> dict[str, PatchSet]:
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    path = Path(path)
    _require_dataset(path)
    fmt = detect_format(path) if fmt == "auto" else fmt
    loader = {"props": load_props, "cifar10": load_cifar10, "folder": load_folder, "npz": load_npz}[fmt]
    return loader(path)


def get_split(splits: dict[str, PatchSet], name: str) -> PatchSet:
    """A dataset of one split (`all`: an .npz of images and labels alone) stands in for `train` and
    `test`, the two a command asks for by default; any other name must exist (a mistyped
    `--split tset` had evaluated on everything)."""
    if name in splits:
        return splits[name]
    if "all" in splits and name in ("train", "test"):
        return splits["all"]
    raise ValueError(f"dataset has no {name!r} split (it has: {', '.join(sorted(splits))})")
