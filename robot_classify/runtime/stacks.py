"""One object standing or lying on another: where a segment's lower part shows a flat top.

Depth alone joins a stack into one segment: a soup can standing on a SPAM can, a drill lying on a
cracker box (both seen on real tables, doc/real_frames.md). The concave crease where they meet is
seldom closed all round, and the colour edge along it is no stronger than the print within one
product (`bench/lost_objects.py`). What a stack does show is the lower object's top: a flat patch parallel to the table,
well above it, with the upper object rising from it. Products themselves seldom show such a step:
a can's, a box's or a bottle's flat top is its highest surface, and the floor inside a mug or a
bowl lies within a centimetre or two of the table (`MIN_LEVEL`).

The pieces are judged by colour afterwards (`patches`): a step within one product (a drill's
battery below its body) shows the same colours on both sides, and stays one object.

An object on another is measured from the other's top (its base), not from the table: the pose
check (`object_sizes`) reads its height above what it stands on. That holds too where the crease
cut has already parted the two: a segment whose foot floats above the table, over a neighbour's
flat top at that height. A foot floats as well where the object stands on the table behind
something that hides it; then it stands beyond that top's outline, and its base stays the table.
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from .camera import Intrinsics
from .support import plane_basis

MIN_LEVEL = 0.03  # metres above the support: the lower object's top is at least this high...
MIN_RISE = 0.03  # ...and the upper object rises at least this far above it
FLAT_SLOPE = 0.25  # height change per metre across: a surface this close to level (~14 degrees) is flat
LEVEL_BIN = 0.005  # metres: the flat top's height is found to this
LEVEL_BAND = 0.008  # metres either side of that height: the flat top's pixels
MIN_TOP_AREA = 0.0003  # square metres of flat top in view (3 cm^2, where the renders stop gaining; at 1 cm^2 a drill
# standing on its battery was cut there on real frames. A SPAM can's top is 55)
ABOVE = 0.012  # metres above the flat top: the upper object
SMOOTH = 1.0  # grid pixels: the Gaussian on the height before its slope is measured...
SLOPE_STEP = 1  # ...over this many grid pixels either side
STRAY = 0.25  # of the least piece: smaller bits above the top stay with the lower object
CUT = 2  # pixels: the line cut between the two


def slope_map(mask: np.ndarray, height: np.ndarray, z: np.ndarray, fx: float) -> tuple[np.ndarray, np.ndarray]:
    """(slope, span): how steeply a segment's surface rises at each pixel, as height change per
    metre across, and how far a pixel spans on it (z / fx metres, `fx` in grid pixels). The height
    is smoothed within the segment (`mask`; Gaussian, SMOOTH) and differenced SLOPE_STEP pixels
    either side: a millimetre of sensor noise between neighbouring samples is a slope of ~0.4 at
    arm's length. NaN where nothing is known. Per segment, on its box: a frame's worth of maps
    for the few segments tall enough to hold a step cost more."""
    valid = mask & np.isfinite(height)
    weight = cv2.GaussianBlur(valid.astype(np.float32), (0, 0), SMOOTH)
    smooth = cv2.GaussianBlur(np.where(valid, height, np.float32(0)).astype(np.float32), (0, 0), SMOOTH)
    smooth /= np.maximum(weight, np.float32(1e-3))
    k = SLOPE_STEP
    gx = np.zeros_like(smooth)
    gy = np.zeros_like(smooth)
    gx[:, k:-k] = smooth[:, 2 * k:] - smooth[:, :-2 * k]
    gy[k:-k, :] = smooth[2 * k:, :] - smooth[:-2 * k, :]
    span = z.astype(np.float32) / np.float32(fx)
    with np.errstate(invalid="ignore"):
        slope = np.hypot(gx, gy) / (np.float32(2 * k) * span)
    return slope, span


def flat_top(mask: np.ndarray, height: np.ndarray, z: np.ndarray, fx: float, below: float = np.inf
             ) -> tuple[float, np.ndarray] | None:
    """(level, top): a segment's largest flat surface parallel to the support between MIN_LEVEL
    and `below` metres above it (its height, and its pixels), or None where it shows none of
    MIN_TOP_AREA. `mask`, `height` (metres above the support) and `z` (metres, NaN for none) are
    the segment's box on the segmentation's grid, `fx` its focal length in grid pixels."""
    slope, span = slope_map(mask, height, z, fx)
    # the segment's edge: its slope mixes in the table's height
    inner = cv2.erode(mask.view(np.uint8), np.ones((2 * SLOPE_STEP + 1,) * 2, np.uint8)).view(bool)
    with np.errstate(invalid="ignore"):
        flat = inner & (slope < FLAT_SLOPE) & (height >= MIN_LEVEL) & (height <= below)
    if not flat.any():
        return None
    levels = height[flat]
    # The level: the fullest LEVEL_BIN bin (with its neighbours), weighted by each pixel's area.
    bins = np.floor(levels / LEVEL_BIN).astype(np.int64)
    bins -= bins.min()
    weight = np.convolve(np.bincount(bins, weights=(span[flat] ** 2).astype(np.float64)), np.ones(3), mode="same")
    best = int(np.argmax(weight))
    level = float(np.median(levels[np.abs(bins - best) <= 1]))
    top = flat & (np.abs(height - level) <= LEVEL_BAND)
    if float((span[top] ** 2).sum()) < MIN_TOP_AREA:
        return None
    return level, top


def split_stack(mask: np.ndarray, height: np.ndarray, z: np.ndarray, fx: float, min_pixels: int
                ) -> tuple[np.ndarray, np.ndarray, float, np.ndarray] | None:
    """(lower, upper, level, top): a segment cut where something rises from a flat top (`top`, a
    mask, `flat_top`) at `level` metres above the support, or None where it shows no such step.
    The upper object may rest on that top or stand behind it (`rests_on` tells which).

    The upper object is every part of the segment more than ABOVE over the flat top, where a
    part of `min_pixels` or more joins the top; the lower object must hold `min_pixels` too.
    Only the largest flat level is tried. Arguments as `flat_top`'s."""
    hh = height[mask]
    hh = hh[np.isfinite(hh)]
    if len(hh) < 2 * min_pixels:
        return None
    k = int(0.98 * (len(hh) - 1))
    highest = float(np.partition(hh, k)[k])  # its top, a few flying pixels aside
    if highest < MIN_LEVEL + MIN_RISE:
        return None
    found = flat_top(mask, height, z, fx, highest - MIN_RISE)
    if found is None:
        return None
    level, top = found
    above = mask & (height > level + ABOVE)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(above.view(np.uint8), connectivity=8)
    # Something rises from the top where a part of it joins the top through the segment's pixels
    # at the top's height or higher (not down a side and up again).
    _, joined = cv2.connectedComponents((mask & (height >= level - LEVEL_BAND)).view(np.uint8), connectivity=8)
    reach = np.zeros(joined.max() + 1, bool)
    reach[joined[top]] = True
    reach[0] = False
    big = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= min_pixels) + 1
    if not np.isin(big, labels[above & reach[joined]]).any():
        return None
    # The lower object's top is its highest surface: whatever rises above it is the upper object,
    # also where it overhangs the top's edge apart from the part that touches it (stray pixels aside).
    upper = np.isin(labels, np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= STRAY * min_pixels) + 1)
    # The rest (below that height) goes to the nearer of the two: the top's pixels or the upper
    # object's. The upper object's own foot is nearer its body than the top (a mug standing
    # beside a box lying flat), the lower one's sides nearer its top.
    far_low = cv2.distanceTransform((~top).view(np.uint8), cv2.DIST_L2, 3)
    far_up = cv2.distanceTransform((~upper).view(np.uint8), cv2.DIST_L2, 3)
    upper |= mask & (far_up < far_low)
    # A line is cut between the two, as between objects cut at a crease.
    lower = mask & ~cv2.dilate(upper.view(np.uint8), np.ones((2 * CUT + 1,) * 2, np.uint8)).view(bool)
    if lower.sum() < min_pixels:
        return None
    return lower, upper, level, top


FOOT_FRACTION = 5.0  # percent: an object's foot, its lowest points above the support...
FOOT_GAP = 0.02  # ...within this of a neighbour's flat top (metres) where it rests on that top


Component = tuple  # (mask, (x, y, w, h), area[, base, on]): a segment on the segmentation's grid


def split_stacks(comps: list[Component], height: np.ndarray, z: np.ndarray, K: Intrinsics, plane: np.ndarray,
                 differ: Callable[[tuple[int, int, int, int], np.ndarray, np.ndarray], bool], min_pixels: int,
                 pixel_area: int) -> tuple[list[Component], int]:
    """The segments with stacks cut (`split_stack`, where `differ(box, lower, upper)` says the two
    pieces' colours are two objects'), each with its base: how high above the support it rests,
    metres. An upper piece, and a segment of its own whose foot floats above the support, rest on
    a neighbour's flat top where they stand over it (`rests_on`); else the base is 0, the support,
    the foot hidden behind something. (mask, box, area, base, on) each, `on` the index in this
    list of the segment it rests on (None: the support), and how many were cut.

    `height` and `z` (metres, NaN for none) are the frame's on the segmentation's grid, `K` its
    intrinsics there; areas are in full-resolution pixels (`pixel_area` per grid pixel)."""
    basis = plane_basis(plane)
    out: list[Component] = []
    tops: dict[int, tuple[float, np.ndarray] | None] = {}  # a segment's flat top: (level, its points)
    cuts = 0
    for m, (x, y, w, h), area in comps:
        box = (x, y, w, h)
        zz = z[y:y + h, x:x + w]
        cut = split_stack(m, height[y:y + h, x:x + w], zz, K.fx, min_pixels)
        if cut is None or not differ(box, cut[0], cut[1]):
            out.append((m, box, area, 0.0, None))
            continue
        cuts += 1
        lower, upper, level, top = cut
        top_points = K.segment_points(top, box, zz)
        on_top = rests_on(top_points, K.segment_points(upper, box, zz), basis)
        below = len(out)
        for part, b, on in ((lower, 0.0, None), (upper, level, below) if on_top else (upper, 0.0, None)):
            px, py, pw, ph = cv2.boundingRect(part.view(np.uint8))
            out.append((part[py:py + ph, px:px + pw], (x + px, y + py, pw, ph), int(part.sum()) * pixel_area, b, on))
        tops[below] = (level, top_points)
    return [_rest_on_neighbours(i, c, out, tops, height, z, K, basis) for i, c in enumerate(out)], cuts


def _mostly_below(values: np.ndarray, level: float) -> bool:
    """Whether counting alone shows the FOOT_FRACTION percentile of `values` below `level`. The
    percentile interpolates between the sorted values at floor(i) and floor(i) + 1, i = (n - 1)
    FOOT_FRACTION / 100; when floor(i) + 2 values lie below `level`, both of those do. Most
    segments stand on the support and are settled so, without the percentile's ~60 us."""
    return int(np.count_nonzero(values < level)) >= int((len(values) - 1) * FOOT_FRACTION / 100) + 2


def _rest_on_neighbours(i: int, comp: Component, comps: list[Component], tops: dict, height: np.ndarray,
                        z: np.ndarray, K: Intrinsics, basis: np.ndarray) -> Component:
    """`comp` with its base on the flat top of a neighbour (a segment whose box touches its box)
    that its foot stands on; unchanged where its foot is on the support or over no such top."""
    m, (x, y, w, h), area, base, _ = comp
    foot = height[y:y + h, x:x + w][m]
    foot = foot[np.isfinite(foot)]
    if base or not len(foot) or _mostly_below(foot, MIN_LEVEL):  # already on a top, or on the support
        return comp
    low = float(np.percentile(foot, FOOT_FRACTION))
    if low < MIN_LEVEL:
        return comp
    points = None
    for j, (mj, (xj, yj, wj, hj), *_) in enumerate(comps):
        if j == i or xj > x + w + CUT or x > xj + wj + CUT or yj > y + h + CUT or y > yj + hj + CUT:
            continue
        if j not in tops:
            heights = height[yj:yj + hj, xj:xj + wj]
            if not (heights[mj] >= low - FOOT_GAP).any():  # nothing of it as high as the foot: no top there
                continue
            box = np.s_[yj:yj + hj, xj:xj + wj]
            found = flat_top(mj, heights, z[box], K.fx)
            tops[j] = None if found is None else (found[0], K.segment_points(found[1], (xj, yj, wj, hj), z[box]))
        if tops[j] is None or abs(tops[j][0] - low) > FOOT_GAP:
            continue
        points = K.segment_points(m, (x, y, w, h), z[y:y + h, x:x + w]) if points is None else points
        if rests_on(tops[j][1], points, basis):
            return m, (x, y, w, h), area, tops[j][0], j
    return comp


REST_FRACTION = 0.5  # of the upper object's points over the flat top: it rests on it...
REST_MARGIN = 0.01  # ...the top's outline on the table grown by this, metres


def rests_on(top: np.ndarray, upper: np.ndarray, basis: np.ndarray) -> bool:
    """Whether an object (`upper`, its 3D points) rests on a flat top (`top`, that surface's
    points) rather than standing behind it on the support, the lower part of it hidden: most
    of its points lie over the top's outline on the table. `basis`: `support.plane_basis`."""
    if len(top) < 3 or not len(upper):
        return False
    top_xy = (top @ basis)[:, 1:].astype(np.float32)
    up_xy = (upper[:: max(1, len(upper) // 256)] @ basis)[:, 1:].astype(np.float32)
    hull = cv2.convexHull(top_xy)
    inside = [cv2.pointPolygonTest(hull, (float(x), float(y)), True) >= -REST_MARGIN for x, y in up_xy]
    return float(np.mean(inside)) >= REST_FRACTION
