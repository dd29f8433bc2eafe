"""Objects joined by a low bridge of depth: cut them apart at the valley between them.

A stereo depth camera (a RealSense D4xx) smears an object's depth a few pixels onto the table
around it: the height above the support falls off in a ramp, not a step. Two objects a few
centimetres apart then meet in a ramp a few centimetres high, above the segmentation's
`grow_height`, with no depth jump to cut at: on a crowded real UOC table a pink cup, a toy
brick, a plastic box and a marker came out as one segment that way. A valley between two
peaks is what tells them: each object rises well above the bridge that joins them. One object
has no such valley inside it: heights rise from its rim to its top (a can, a box, a bottle), or
its parts meet at their own height (a mug's handle, a marker against a box, two boxes side by
side), where no bridge is lower than `RATIO` (35%) of the lower peak.

A component is cut at the lowest of `LEVELS` (metres above the support) at which its pixels
above that level make two or more pieces of `min_area`, each rising at least 1 / `RATIO` times
the level (so each peak stands nearly three times as high as the bridge); every pixel of the component then
goes to its nearest piece (`patches._split_at_cores`, as a segment cut at its necks), and each
part is looked at again.
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

LEVELS = (0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.065, 0.08, 0.1, 0.13)  # metres above the support
RATIO = 0.35  # a bridge at most this share of the lower peak's height
PEAK_PERCENTILE = 95.0  # a piece's peak: flying pixels above it are noise
MAX_PARTS = 8  # parts of one component at most: a safety bound on the recursion

Component = tuple  # (mask local to its box on the grid, (x, y, w, h), area in full-resolution pixels)
Splitter = Callable[[np.ndarray, tuple[int, int, int, int], np.ndarray, int], list[tuple]]


def _cores(mask: np.ndarray, heights: np.ndarray, min_area: int) -> np.ndarray | None:
    """The pieces above the lowest level that parts the component, as a bool mask; None where none does.
    A piece's peak is its PEAK_PERCENTILE height: it reaches `level / RATIO` when more than
    (100 - PEAK_PERCENTILE)% of its pixels do, counted per piece with one bincount a level."""
    values = heights[mask]
    if len(values) < 2 * min_area:
        return None
    share = 1.0 - PEAK_PERCENTILE / 100.0
    k = int(PEAK_PERCENTILE / 100.0 * (len(values) - 1))
    top = float(np.partition(values, k)[k])
    for level in LEVELS:
        if level > RATIO * top:
            break
        above = mask & (heights >= level)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(above.view(np.uint8), connectivity=8)
        if n <= 2:
            continue
        areas = stats[:, cv2.CC_STAT_AREA]
        high = np.bincount(labels[heights >= level / RATIO], minlength=n)  # background (0) counts all, unused
        keep = (areas >= min_area) & (high > share * areas)
        keep[0] = False
        if keep.sum() >= 2:
            return keep[labels]
    return None


def split_at_valleys(comps: list[Component], height: np.ndarray, min_area: int, pixel_area: int,
                     split: Splitter) -> tuple[list[Component], int]:
    """`comps` with each cut at its valleys (see the module), in their order (a part where its
    component was), and how many cuts were made. `height`: metres above the support on the
    segmentation grid; `min_area`: grid pixels of a piece; `split(mask, box, cores, min_area)`:
    the parts of a mask given its cores (`patches._split_at_cores`)."""
    out: list[Component] = []
    cuts = 0
    for component in comps:
        pending = [component]
        while pending:
            c = pending.pop(0)
            m, (x, y, w, h), _ = c
            heights = np.nan_to_num(height[y:y + h, x:x + w], nan=0.0)
            cores = _cores(m, heights, min_area)
            parts = [] if cores is None else split(m, (x, y, w, h), cores, min_area)
            if len(parts) < 2 or len(parts) > MAX_PARTS:
                out.append(c)
                continue
            cuts += 1
            pending[:0] = [(pm, pb, pa * pixel_area) for pm, pb, pa in parts]
    return out, cuts
