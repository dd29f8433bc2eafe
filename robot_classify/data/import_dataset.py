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
from .matching import scored_truth

log = logging.getLogger(__name__)

# A tabletop RGB-D camera sees its scene between these (metres). A median depth outside them is a
# depth scale off by a power of ten (found from outside: depth_scale 0.1 on millimetre depth
# imported without a word, and replay-eval then found nothing at all).
PLAUSIBLE_DEPTH_M = (0.15, 6.0)
DEPTH_CHECK_FRAMES = 5  # judged on the median of the first frames' medians: one close-up is no scale error


def _depth_check(frames: Iterator[LabelledFrame]) -> Iterator[LabelledFrame]:
    """The frames, unchanged; warns once where the median depth of the first DEPTH_CHECK_FRAMES is
    no tabletop's."""
    medians, first = [], ""
    for frame in frames:
        if len(medians) < DEPTH_CHECK_FRAMES:
            valid = frame.depth[frame.depth > 0]
            if valid.size:
                medians.append(float(np.median(valid)) / 1000.0)
                first = first or frame.source
                if len(medians) == DEPTH_CHECK_FRAMES:
                    _warn_depth(first, medians)
        yield frame
    if 0 < len(medians) < DEPTH_CHECK_FRAMES:
        _warn_depth(first, medians)


def _warn_depth(source: str, medians: list[float]) -> None:
    median = float(np.median(medians))
    if not PLAUSIBLE_DEPTH_M[0] <= median <= PLAUSIBLE_DEPTH_M[1]:
        log.warning("%s: median depth %.3g m (over %d frames), outside the %g-%g m an RGB-D camera over a table "
                    "sees: is the depth scale right (BOP depth_scale: millimetres per unit; YCB-Video "
                    "factor_depth: units per metre)?", source, median, len(medians), *PLAUSIBLE_DEPTH_M)


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
                   counts: dict[str, int] | None = None, scored: dict[str, int] | None = None) -> int:
    """Write the chosen frames to a new bag `out` (never overwritten; nothing is left behind on
    failure). Returns the number of frames written; `counts`, when given, receives the objects
    written per class name (`distractor` for those the class map leaves out), so that a class
    map with a typo shows before any evaluation. `scored`, when given, receives the same counts of
    the objects evaluations score (`matching.scored_truth`: at least half in view)."""
    if Path(out).exists():
        raise DatasetError(f"{out} exists; choose a new path (bags are never overwritten)")

    def count(into: dict[str, int] | None, objects) -> None:
        for o in objects if into is not None else ():
            into[o.label] = into.get(o.label, 0) + 1

    def counted(frames):
        for frame in _depth_check(frames):
            count(counts, frame.objects)
            count(scored, scored_truth(frame.objects))
            yield frame
    return write_frames(out, counted(iter_dataset(path, fmt, class_map, scenes, every, max_frames, progress)),
                        storage, rate_hz)
