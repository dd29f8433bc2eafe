"""YCB-Video in its own layout -> `LabelledFrame`s.

`YCB_Video_Dataset/data/NNNN/` folders hold, per frame NNNNNN:
  NNNNNN-color.png   RGB
  NNNNNN-depth.png   uint16, metres = value / factor_depth (10000: 1/10 mm)
  NNNNNN-label.png   per-pixel object id (the YCB-V id, 1..21; 0 = background)
  NNNNNN-meta.mat    cls_indexes (ids in view), factor_depth, intrinsic_matrix (SciPy reads it)
  NNNNNN-box.txt     `<name> x1 y1 x2 y2` per object, in cls_indexes order (optional here: names)
Point at the dataset root (with data/), at data/, or at one NNNN folder.

Each id is one object (YCB-Video has one instance per class in a scene): its instance number is
its id, its box the tight box of its label pixels, its centroid from those pixels and the depth.
The format has no visible fraction (None).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from .frames import (IGNORE, YCBV_OBJECTS, ClassMap, DatasetError, GroundTruthObject, LabelledFrame, depth_to_mm,
                     find_scene_folders, intrinsics_from_matrix, mask_bbox, mask_centroid, pick_scenes,
                     read_file_image, same_size, select, to_rgb, ycbv_class_map)

COLOR_SUFFIX = "-color.png"


@dataclass(frozen=True)
class YcbvFrameRef:
    folder: Path
    frame: str  # "000001"

    def file(self, kind: str) -> Path:
        return self.folder / f"{self.frame}-{kind}"

    @property
    def name(self) -> str:
        return f"{self.folder.name}/{self.frame}"


def is_scene(path: Path) -> bool:
    return path.is_dir() and any(path.glob(f"*{COLOR_SUFFIX}"))


def find_scenes(path: str | Path) -> list[Path]:
    """`path` itself if it is a scene folder, else the scene folders of the dataset root or its data/."""
    path = Path(path)
    return find_scene_folders(path, is_scene, path / "data" if (path / "data").is_dir() else path,
                              f"no YCB-Video frames (NNNN/NNNNNN{COLOR_SUFFIX}); point at the dataset root, its "
                              f"data/ folder or one scene folder")


# A frame is any of its files: one whose colour image is missing stops the import at it (found
# from outside: it had been left out without a word, where BOP stops with "no image").
FRAME_FILE = re.compile(r"^(\d+)-(?:color\.png|depth\.png|label\.png|meta\.mat)$")


def frame_refs(path: str | Path, scenes: Sequence[str] | None = None) -> list[YcbvFrameRef]:
    path = Path(path)
    return [YcbvFrameRef(s, frame) for s in pick_scenes(find_scenes(path), scenes, path)
            for frame in sorted({m.group(1) for m in map(FRAME_FILE.match, (f.name for f in s.iterdir())) if m})]


def read_meta(path: Path) -> dict[str, Any]:
    """cls_indexes (list of ids), factor_depth (Fraction: units per metre), intrinsic_matrix."""
    from scipy.io import loadmat

    if not path.is_file():
        raise DatasetError(f"{path}: missing")
    try:
        mat = loadmat(str(path))
    except Exception as e:  # noqa: BLE001 -- scipy raises several types for a corrupt .mat
        raise DatasetError(f"{path}: not a readable .mat file ({type(e).__name__}: {e})") from None
    for key in ("cls_indexes", "factor_depth", "intrinsic_matrix"):
        if key not in mat:
            raise DatasetError(f"{path}: missing {key!r}")
    factor = np.asarray(mat["factor_depth"], dtype=np.float64).ravel()
    if factor.size != 1 or not np.isfinite(factor[0]) or factor[0] <= 0:
        raise DatasetError(f"{path}: factor_depth must be one number > 0, got {mat['factor_depth']!r}")
    ids = np.asarray(mat["cls_indexes"]).ravel()
    if ids.size and (ids.dtype.kind not in "uif" or np.any(ids != np.round(ids))):
        raise DatasetError(f"{path}: cls_indexes must be integer object ids")
    return {"cls_indexes": [int(i) for i in ids], "factor_depth": Fraction(str(float(factor[0]))),
            "intrinsic_matrix": mat["intrinsic_matrix"]}


def read_box_names(path: Path, n: int) -> list[str] | None:
    """The object names of a -box.txt, in order; None without the file."""
    if not path.is_file():
        return None
    lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    if any(len(ln) != 5 for ln in lines):
        raise DatasetError(f"{path}: each line must be '<name> x1 y1 x2 y2'")
    if len(lines) != n:
        raise DatasetError(f"{path}: {len(lines)} boxes, but the -meta.mat lists {n} objects")
    return [ln[0] for ln in lines]


def read_frame(ref: YcbvFrameRef, class_map: ClassMap | None = None) -> LabelledFrame:
    class_map = class_map or ycbv_class_map()
    color_path, depth_path, label_path = (ref.file(k) for k in ("color.png", "depth.png", "label.png"))
    meta_path = ref.file("meta.mat")
    meta = read_meta(meta_path)
    color = to_rgb(read_file_image(color_path, rgb=True), str(color_path))
    # metres = raw / factor -> millimetres = raw * 1000 / factor, exactly (10000: raw / 10).
    depth = depth_to_mm(read_file_image(depth_path, rgb=False), Fraction(1000) / meta["factor_depth"],
                        str(depth_path))
    same_size(color.shape, depth, depth_path, color_path)
    label = read_file_image(label_path, rgb=False)
    if label.ndim != 2:
        raise DatasetError(f"{label_path}: a label image has one channel, got shape {label.shape}")
    same_size(color.shape, label, label_path, color_path)
    K = intrinsics_from_matrix(meta["intrinsic_matrix"], f"{meta_path}: intrinsic_matrix")
    ids = meta["cls_indexes"]
    bad = [i for i in ids if i not in YCBV_OBJECTS]
    if bad:
        raise DatasetError(f"{meta_path}: cls_indexes holds {bad[0]}; YCB-Video's objects are 1-{max(YCBV_OBJECTS)}")
    stray = sorted(set(np.unique(label).tolist()) - {0, *ids})
    if stray:  # pixels of an object the frame does not list: a label image of another frame?
        raise DatasetError(f"{label_path}: labels {stray[:5]} are not in {meta_path.name}'s cls_indexes {list(ids)}")
    names = read_box_names(ref.file("box.txt"), len(ids)) or [YCBV_OBJECTS.get(i, str(i)) for i in ids]
    objects = []
    for obj_id, name in zip(ids, names):
        mask = label == obj_id
        bbox = mask_bbox(mask)
        if bbox is None:
            continue  # listed but hidden
        class_name = class_map.label(obj_id, name)
        if class_name == IGNORE:  # a segment that is no object: not ground truth
            continue
        objects.append(GroundTruthObject(label=class_name, instance=obj_id, bbox=bbox,
                                         visible_fraction=None, centroid=mask_centroid(mask, depth, K),
                                         dataset_id=name))
    return LabelledFrame(color, depth, K, tuple(objects), source=ref.name, sequence=str(ref.folder))


def iter_frames(path: str | Path, class_map: ClassMap | None = None, scenes: Sequence[str] | None = None,
                every: int = 1, max_frames: int | None = None) -> Iterator[LabelledFrame]:
    for ref in select(frame_refs(path, scenes), every, max_frames):
        yield read_frame(ref, class_map)
