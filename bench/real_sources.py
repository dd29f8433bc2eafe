"""Reading the real frames of doc/real_frames.md from their sources' own files.

Each source is a public repository holding a few RGB-D frames in its own layout (PNG pairs,
`.npy`, `.mat`, pickles). `frames(source, files)` gives every frame of a source as
(colour file's path, RGB uint8, depth in metres with 0 where unknown, K 3x3), in the image-id
order of its labels (`bench/real_labels/SOURCE.json`). `files` is a folder holding the
source's files under their repository paths (`ORIGINS` names the repository, the commit and
the paths). The YCB-Video sample is imported as it is (`robot-classify import-dataset`) and is
not here.

Pickled files are read with the package's restricted unpickler: they may build numpy arrays
and plain containers, nothing else.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np
import scipy.io
import yaml

from robot_classify.data.safe_pickle import safe_load, safe_loads

Frame = tuple[str, np.ndarray, np.ndarray, np.ndarray]

ORIGINS: dict[str, dict] = {
    "uoc": {"repository": "NVlabs/UnseenObjectClustering", "commit": "f5a00c78f61eff70a2477ab77475c12ef821d739",
            "paths": [f"data/demo/{i:06d}-{s}.png" for i in range(9) for s in ("color", "depth")]
            + ["data/demo/camera_params.json"]},
    "posecnn": {"repository": "NVlabs/PoseCNN-PyTorch", "commit": "f7d28f2abd38fcfc297d8d421bb6b69248626eb5",
                "paths": [f"data/demo/{i:06d}-{s}.png" for i in range(5) for s in ("color", "depth")]
                + ["data/demo/meta.yml"]},
    "graspnet": {"repository": "graspnet/graspnet-baseline", "commit": "280c215129f759ed8649cb4e89fc5dfee55f4f80",
                 "paths": [f"doc/example_data/{f}" for f in ("color.png", "depth.png", "meta.mat")]},
    "posecnn2": {"repository": "yuxng/PoseCNN", "commit": "9f3dd7b7bce21dcafc05e8f18ccc90da3caabd04",
                 "paths": [f"data/demo_images/{i:06d}-{s}.png" for i in range(1, 6) for s in ("color", "depth")]},
    "m2t2": {"repository": "NVlabs/M2T2", "commit": "be2e5f6feae2f961615ab0f7b643f0f98b0c3a50",
             "paths": [f"sample_data/real_world/{i:02d}/{f}" for i in range(4)
                       for f in ("rgb.png", "depth.npy", "meta_data.pkl")]},
    "6dof": {"repository": "NVlabs/6dof-graspnet", "commit": "cd08b6c559e51a187ab65faea6415f51239808b8",
             "paths": [f"demo/data/{s}.npy" for s in ("blue_mug", "cheezit", "cylinder", "green_bowl", "mustard",
                                                       "pepper", "red_mug", "sugar", "white_bowl", "white_mug")]},
}


def _rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cannot read {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _depth_png(path: Path, metres_per_unit: float) -> np.ndarray:
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.ndim != 2:
        raise FileNotFoundError(f"cannot read {path} as a one-channel depth image")
    return raw.astype(np.float32) * np.float32(metres_per_unit)


def _k(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], np.float64)



def _npy_dict(path: Path) -> dict:
    """An object `.npy` holding one pickled dict of arrays, read by `safe_pickle`'s rules
    (`np.load(allow_pickle=True)` would run whatever the pickle names)."""
    with path.open("rb") as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _order, dtype = read_header(f)
        if dtype != object or shape != ():
            raise ValueError(f"{path}: expected one pickled object, found {dtype} {shape}")
        obj = safe_loads(f.read(), source=str(path))
    obj = obj.item() if isinstance(obj, np.ndarray) else obj
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a dict, found {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _uoc(files: Path) -> Iterator[Frame]:
    cam = json.loads((files / "data/demo/camera_params.json").read_text())
    k = _k(cam["fx"], cam["fy"], cam["x_offset"], cam["y_offset"])
    for i in range(9):
        name = f"data/demo/{i:06d}-color.png"
        yield name, _rgb(files / name), _depth_png(files / f"data/demo/{i:06d}-depth.png", 0.001), k


def _posecnn(files: Path) -> Iterator[Frame]:
    meta = yaml.safe_load((files / "data/demo/meta.yml").read_text())
    k = np.asarray(meta["INTRINSICS"], np.float64).reshape(3, 3)
    for i in range(5):
        name = f"data/demo/{i:06d}-color.png"
        yield name, _rgb(files / name), _depth_png(files / f"data/demo/{i:06d}-depth.png", 0.001), k


def _graspnet(files: Path) -> Iterator[Frame]:
    meta = scipy.io.loadmat(files / "doc/example_data/meta.mat")
    k = np.asarray(meta["intrinsic_matrix"], np.float64).reshape(3, 3)
    factor = float(np.asarray(meta["factor_depth"]).ravel()[0])
    yield ("doc/example_data/color.png", _rgb(files / "doc/example_data/color.png"),
           _depth_png(files / "doc/example_data/depth.png", 1.0 / factor), k)


POSECNN_K = _k(1066.778, 1067.487, 312.9869, 241.3109)  # yuxng/PoseCNN tools/demo.py (YCB-Video's Xtion)


def _posecnn2(files: Path) -> Iterator[Frame]:
    for i in range(1, 6):
        name = f"data/demo_images/{i:06d}-color.png"
        yield name, _rgb(files / name), _depth_png(files / f"data/demo_images/{i:06d}-depth.png", 1e-4), POSECNN_K


def _m2t2(files: Path) -> Iterator[Frame]:
    for i in range(4):
        folder = f"sample_data/real_world/{i:02d}"
        depth = np.load(files / folder / "depth.npy", allow_pickle=False).astype(np.float32)
        depth[~np.isfinite(depth) | (depth < 0)] = 0.0
        meta = safe_load(files / folder / "meta_data.pkl")
        yield f"{folder}/rgb.png", _rgb(files / folder / "rgb.png"), depth, np.asarray(meta["intrinsics"], np.float64)


SIXDOF = ("blue_mug", "cheezit", "cylinder", "green_bowl", "mustard", "pepper", "red_mug", "sugar",
          "white_bowl", "white_mug")


def _sixdof(files: Path) -> Iterator[Frame]:
    for stem in SIXDOF:
        name = f"demo/data/{stem}.npy"
        d = _npy_dict(files / name)
        depth = np.asarray(d["depth"], np.float32).copy()
        depth[~np.isfinite(depth) | (depth < 0)] = 0.0
        yield name, np.ascontiguousarray(d["image"], np.uint8), depth, np.asarray(d["intrinsics_matrix"], np.float64)


READERS: dict[str, Callable[[Path], Iterator[Frame]]] = {
    "uoc": _uoc, "posecnn": _posecnn, "graspnet": _graspnet, "posecnn2": _posecnn2, "m2t2": _m2t2, "6dof": _sixdof}


def frames(source: str, files: str | Path) -> list[Frame]:
    return list(READERS[source](Path(files)))
