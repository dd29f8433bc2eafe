"""Real RGB-D datasets (BOP, YCB-Video) -> a ROS 2 bag that replay-eval, bag-to-dataset, teach
and replay read as they read a recorded one (`robot-classify import-dataset`)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .bags import write_frames
from .dataset_formats import FORMATS, LOADERS, detect_format
from .frames import ClassMap, DatasetError, LabelledFrame, select, ycbv_class_map

log = logging.getLogger(__name__)

# A tabletop RGB-D camera sees its scene between these (metres). A median depth outside them is a
# depth scale off by a power of ten (found from outside: depth_scale 0.1 on millimetre depth
# imported without a word, and replay-eval then found nothing at all).
PLAUSIBLE_DEPTH_M = (0.15, 10.0)


def _depth_looks_wrong(frame: LabelledFrame) -> bool:
    """Warns (once per import: the caller stops asking) where the frame's median depth is no
    tabletop's; True if it warned."""
    valid = frame.depth[frame.depth > 0]
    if not valid.size:
        return False
    median = float(np.median(valid)) / 1000.0
    if PLAUSIBLE_DEPTH_M[0] <= median <= PLAUSIBLE_DEPTH_M[1]:
        return False
    log.warning("%s: median depth %.3g m, outside the %g-%g m an RGB-D camera over a table sees: is the depth "
                "scale right (BOP depth_scale: millimetres per unit; YCB-Video factor_depth: units per metre)?",
                frame.source, median, *PLAUSIBLE_DEPTH_M)
    return True


def iter_dataset(path: str | Path, fmt: str = "auto", class_map: ClassMap | None = None,
                 scenes: Sequence[str] | None = None, every: int = 1,
                 max_frames: int | None = None, progress: bool = False) -> Iterator[LabelledFrame]:
    """The chosen frames, read one at a time. Everything but the images (scene folders, JSON,
    the selection) is checked before the first frame is read."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    loader = LOADERS[detect_format(path) if fmt == "auto" else fmt]
    refs = select(loader.frame_refs(path, scenes), every, max_frames)
    if not refs:
        raise DatasetError(f"{path}: no frames to import")
    class_map = class_map or ycbv_class_map()
    if progress:
        from tqdm.auto import tqdm

        refs = tqdm(refs, desc="import-dataset", unit="frame")
    return (loader.read_frame(r, class_map) for r in refs)


def import_dataset(path: str | Path, out: str | Path, fmt: str = "auto", class_map: ClassMap | None = None,
                   scenes: Sequence[str] | None = None, every: int = 1, max_frames: int | None = None,
                   rate_hz: float = 30.0, storage: str = "mcap", progress: bool = False,
                   counts: dict[str, int] | None = None) -> int:
    """Write the chosen frames to a new bag `out` (never overwritten; nothing is left behind on
    failure). Returns the number of frames written; `counts`, when given, receives the objects
    written per class name (`distractor` for those the class map leaves out), so that a class
    map with a typo shows before any evaluation."""
    if Path(out).exists():
        raise DatasetError(f"{out} exists; choose a new path (bags are never overwritten)")

    def counted(frames):
        warned = False
        for frame in frames:
            if not warned:
                warned = _depth_looks_wrong(frame)
            if counts is not None:
                for o in frame.objects:
                    counts[o.label] = counts.get(o.label, 0) + 1
            yield frame
    return write_frames(out, counted(iter_dataset(path, fmt, class_map, scenes, every, max_frames, progress)),
                        storage, rate_hz)
