"""Metric plausibility: a class name only for a segment of that product's size.

The node measures every object in metres (`DetectedObject.extent`, from the aligned depth), and
the default classes are real products of known size. A 32x32 crop has no scale: a keyboard's
crop can look like a marker's, a bowl's like a sugar box's. Their sizes cannot. Measured from
outside on real frames, most wrong names with high scores were of this kind (a keyboard named
`large_marker` 0.92). A segment whose best class's size rules it out is `unknown` (the
runner-up is not named in its place: on real frames it was wrong far more often than right).

Sizes are the YCB products' bounding boxes (Calli et al., "The YCB object and model set",
2015, and the YCB-Video models), metres, smallest first. Taught classes and classes without
an entry are never ruled out.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

PRODUCT_SIZES: dict[str, tuple[float, float, float]] = {
    "master_chef_can": (0.102, 0.102, 0.139),
    "cracker_box": (0.060, 0.158, 0.210),
    "sugar_box": (0.038, 0.089, 0.175),
    "tomato_soup_can": (0.066, 0.066, 0.101),
    "mustard_bottle": (0.058, 0.095, 0.190),
    "tuna_fish_can": (0.033, 0.085, 0.085),
    "gelatin_box": (0.028, 0.073, 0.085),
    "potted_meat_can": (0.050, 0.082, 0.097),
    "mug": (0.081, 0.093, 0.117),
    "large_marker": (0.018, 0.018, 0.121),
}

# The visible surface's largest size (98th - 2nd percentile per camera axis, `surface_extent`)
# is at most the product's diagonal (a box seen corner-on), with room for depth noise and mask
# pixels that bleed onto the table; and at least a part of its longest side (occlusion, a box
# seen end-on leaves its second-longest side).
UPPER, SLACK = 1.15, 0.02  # times the diagonal, plus metres
LOWER = 0.35  # times the longest side
# The segment's area seen head-on (`DetectedObject.area_m2`) is at most the product's largest
# silhouette: for a box a x b x c, seen along its diagonal, sqrt(a²b² + b²c² + c²a²). Axis sizes
# alone cannot tell a 10 cm square from a marker lying diagonally; areas can (0.01 vs 0.002 m²).
AREA_UPPER, AREA_SLACK = 1.3, 0.001  # times the silhouette, plus square metres (mask bleed)


def silhouette(dims: tuple[float, float, float]) -> float:
    """The largest area the product's bounding box shows a camera, square metres."""
    a, b, c = dims
    return float(np.sqrt((a * b) ** 2 + (b * c) ** 2 + (c * a) ** 2))


# Resting on the support, a product shows one of its stable poses: one of its three sizes is its
# height and the other two its footprint (a box on any face, a can standing or lying). The top
# of the visible surface (`DetectedObject.top`) is then that size above the plane: at least
# TOP_LOWER of it (the top's rim pixels, a plane fit a few millimetres off) and at most TOP_UPPER
# of it plus TOP_SLACK (depth noise of a D4xx or an Xtion at a metre). A keyboard or a sheet of
# paper is 1-2 cm high whatever it looks like; a standing soup can is 10 cm, no tuna can. The
# footprint (`DetectedObject.footprint`, the points projected onto the plane) is at most the
# pose's two other sizes, with room for mask pixels bleeding onto the table. Measured on 17 real
# frames (doc/real_frames.md), this rejected 39 of the 51 wrong class names and none of the 13
# right ones; a product held up, stacked on another or leaning is `unknown` by the same rule.
TOP_LOWER, TOP_UPPER, TOP_SLACK = 0.8, 1.05, 0.01
MINOR_UPPER, MINOR_SLACK = 1.2, 0.02  # the footprint's short side against the pose's short side
MAJOR_UPPER, MAJOR_SLACK = 1.15, 0.04  # its long side against the pose's footprint diagonal
# ... and at least half the pose's long side, where the footprint is an area (at least
# AREA_MINOR across: the top or a second side is in view; a box seen end-on from a low camera
# shows one face, a line as long as its short side) and the segment is not cut by the image's
# border. A 5x7 cm foam brick is no cracker box lying flat, a small can no sugar box on its side.
# On 60 held-out renders every right name showed 0.54 of it or more, segments partly hidden
# behind nearer ones included (a test for those flagged 65% of the rendered segments: too many
# to exempt; doc/real_frames.md). Less MAJOR_LOWER_SLACK: a real mask loses its rim where depth
# has holes at the object's edges (a D4xx's or an Xtion's), a centimetre across at a metre, as
# the upper bounds allow for pixels that bleed onto the table. A standing mustard bottle seen on
# its 5.8 cm side measured a 4.6 cm footprint, under half (4.75 cm) the 9.5 cm long side of its
# standing pose's footprint (0.9.12, doc/real_frames.md).
MAJOR_LOWER, AREA_MINOR, MAJOR_LOWER_SLACK = 0.5, 0.03, 0.01


def _poses(dims: np.ndarray) -> np.ndarray:
    """(products, 3 poses, 3): per pose, its height and the two other sizes, smaller first."""
    d = np.sort(dims, axis=1)
    return np.stack([d[:, [0, 1, 2]], d[:, [1, 0, 2]], d[:, [2, 0, 1]]], axis=1)


def resting_poses(dims: np.ndarray, heights: tuple[float, ...] | None) -> np.ndarray:
    """(3,) bool over `_poses(dims)`: the poses nearest in height to one of `heights` (the heights
    a model's training views showed the product resting at, `ClassifierModel.resting`), every
    pose without them. The renders' sizes differ from the product's by millimetres (a can 14 cm
    high for 13.9), so the nearest pose is the one meant; a marker's two lying poses are equally
    near and both allowed."""
    if not heights:
        return np.ones(3, bool)
    pose_heights = _poses(np.asarray(dims, np.float64)[None])[0, :, 0]
    off = np.abs(pose_heights[:, None] - np.asarray(heights, np.float64)[None, :])
    return (off <= off.min(0, keepdims=True) + 1e-6).any(1)


@lru_cache(maxsize=64)
def _allowed(names: tuple[str, ...], resting: tuple[tuple[str, tuple[float, ...]], ...]) -> np.ndarray:
    """`resting_poses` of each product, (products, 3): the same for every frame of a model, so
    worked out once (0.3 ms a frame otherwise, as much as the rest of the rule)."""
    heights = dict(resting)
    out = np.stack([resting_poses(np.array(PRODUCT_SIZES[n], np.float64), heights.get(n)) for n in names])
    out.flags.writeable = False
    return out


def _fits(sizes: np.ndarray, areas: np.ndarray, dims: np.ndarray, tops: np.ndarray | None = None,
          footprints: np.ndarray | None = None, truncated: np.ndarray | None = None,
          allowed: np.ndarray | None = None) -> np.ndarray:
    """The rule, (segments, products) bool: a segment's largest visible size (`sizes`, metres) and
    head-on area (`areas`, square metres, NaN = not measured) against products of `dims` (m, 3);
    with `tops` (metres) and `footprints` ((segments, 2) minor, major, metres), also against the
    products' resting poses (`truncated`: (segments,) bool, cut by the image's border, so no lower
    bound on the footprint; `allowed`: (products, 3) bool, the poses each product may be named in,
    `resting_poses`). NaN anywhere passes that part of the rule."""
    size, area = sizes[:, None], areas[:, None]
    ok = (LOWER * dims.max(1) <= size) & (size <= UPPER * np.linalg.norm(dims, axis=1) + SLACK)
    limit = AREA_UPPER * np.array([silhouette(tuple(d)) for d in dims]) + AREA_SLACK
    ok &= np.isnan(area) | (area <= limit)
    if tops is None:
        return ok
    poses = _poses(dims)[None]  # (1, products, poses, 3)
    top = tops[:, None, None]
    fp = np.full((len(tops), 2), np.nan) if footprints is None else footprints
    minor, major = fp[:, 0, None, None], fp[:, 1, None, None]
    whole = np.ones((len(tops), 1, 1), bool) if truncated is None else ~np.asarray(truncated, bool)[:, None, None]
    whole = whole & (minor >= AREA_MINOR)  # NaN: no footprint, and no bound from it
    height, short, long_ = poses[..., 0], poses[..., 1], poses[..., 2]
    in_pose = ((np.isnan(top) | ((TOP_LOWER * height <= top) & (top <= TOP_UPPER * height + TOP_SLACK)))
               & (np.isnan(minor) | (minor <= MINOR_UPPER * short + MINOR_SLACK))
               & (np.isnan(major) | ((major <= MAJOR_UPPER * np.hypot(short, long_) + MAJOR_SLACK)
                                     & (~whole | (major >= MAJOR_LOWER * long_ - MAJOR_LOWER_SLACK)))))
    if allowed is not None:  # a pose the model never saw the product in names nothing (no top: no pose known)
        in_pose &= allowed[None] | np.isnan(top)
    return ok & in_pose.any(axis=2)


def _rows(values: list | None, rows: list[int]) -> list | None:
    return None if values is None else [values[i] for i in rows]


def _nan(values: list[float | None] | None, n: int) -> np.ndarray:
    return np.full(n, np.nan) if values is None else np.array(
        [np.nan if v is None else v for v in values], np.float64)


def plausible(extent: np.ndarray, dims: tuple[float, float, float], area_m2: float | None = None,
              top: float | None = None, footprint: tuple[float, float] | None = None,
              truncated: bool = False) -> bool:
    """Whether a segment of visible `extent` (x, y, z metres), head-on area, top above the support
    and footprint on it, whole or cut by the image's border (`DetectedObject.truncated`), can be
    this product."""
    return bool(_fits(np.array([np.max(extent)], np.float64), _nan([area_m2], 1), np.array([dims], np.float64),
                      _nan([top], 1), np.array([footprint or (np.nan, np.nan)], np.float64),
                      np.array([truncated]))[0, 0])


# A can's side is round and a box's flat (`support.section_shape`, the side at mid-height on the
# support). On 36 real frames four of the twelve wrong names were a can named as a box or a box
# as a can (a SPAM can named `tomato_soup_can`, a white tin and a wafer tin named `sugar_box`,
# a printed mug named `tomato_soup_can`); no right name was of that kind (0.9.14,
# doc/real_frames.md). Standing cans only: the pose check names them standing alone, and a lying
# can's mid-height section runs along its axis.
CAN_RADII = {"master_chef_can": 0.051, "tomato_soup_can": 0.033}
BOXES = ("cracker_box", "sugar_box", "gelatin_box", "potted_meat_can")
# A can's side fits a circle within ROUND_RMS (a D4xx's noise at a metre is 1-2 mm, a mask's rim
# adds some) whose radius is at most RADIUS_UPPER times the can's. Not a lower bound: a short
# arc (a can half hidden, or seen nearly end-on) fits a smaller circle, as rendered cans in
# contact with others do.
ROUND_RMS = 0.0045
RADIUS_UPPER = 1.35
# ... and flat faces fit it no better than this share of the circle's error: a short flat face
# or a box's corner fits a circle of about its own half-width within a few millimetres too.
CAN_FLAT_RATIO = 0.6
STANDING = 0.8  # the rule judges a can standing: its top at least this share of its height
BOX_ROUND_RMS = 0.0025  # a box is never a side this round ...
BOX_ROUND_RADIUS = 0.06  # ... of this radius or less ...
BOX_ROUND_RATIO = 1.3  # ... that a pair of flat faces fits this much worse than the circle


def shape_fits(name: str, section: tuple[float, float, float] | None, top: float | None = None) -> bool:
    """False where the side's shape rules the product out: a can whose side is not round, or
    round but wider than the can, and a box whose side is a small, clean arc. True without a
    section or a rule, and for a can not standing (`top` under STANDING of its height: a lying
    can's mid-height section runs along its axis; a model taught lying cans may name them)."""
    if section is None:
        return True
    radius, circle_rms, lines_rms = section
    if name in CAN_RADII:
        if top is not None and top < STANDING * max(PRODUCT_SIZES[name]):
            return True
        return (circle_rms <= ROUND_RMS and radius <= RADIUS_UPPER * CAN_RADII[name]
                and lines_rms >= CAN_FLAT_RATIO * circle_rms)
    if name in BOXES:
        return not (circle_rms <= BOX_ROUND_RMS and radius <= BOX_ROUND_RADIUS
                    and lines_rms >= BOX_ROUND_RATIO * circle_rms)
    return True


def size_mask(class_names: list[str], extents: list[np.ndarray | None],
              areas: list[float | None] | None = None, tops: list[float | None] | None = None,
              footprints: list[tuple[float, float] | None] | None = None,
              truncated: list[bool] | None = None,
              resting: dict[str, tuple[float, ...]] | None = None,
              sections: list[tuple[float, float, float] | None] | None = None) -> np.ndarray:
    """(objects, classes) bool: False where the class's product cannot be that segment (`plausible`
    for all pairs at once: the node asks it for every object of every frame), or, with `tops` and
    `resting` (`ClassifierModel.resting`), rests in a pose the model never saw it in, or, with
    `sections`, whose side is not of its shape (`shape_fits`). Objects without an extent (no
    valid depth) and classes of unknown size stay True."""
    out = np.ones((len(extents), len(class_names)), bool)
    cols = [c for c, n in enumerate(class_names) if n in PRODUCT_SIZES]
    rows = [i for i, e in enumerate(extents) if e is not None and np.all(np.isfinite(e))]
    if not cols or not rows:
        return out
    sizes = np.array([np.max(extents[i]) for i in rows], np.float64)
    fps = np.array([(np.nan, np.nan) if footprints is None or footprints[i] is None else footprints[i]
                    for i in rows], np.float64).reshape(len(rows), 2)
    dims = np.array([PRODUCT_SIZES[class_names[c]] for c in cols], np.float64)
    cut = None if truncated is None else np.array(_rows(truncated, rows), bool)
    allowed = None if not resting else _allowed(tuple(class_names[c] for c in cols),
                                                tuple(sorted((k, tuple(map(float, v))) for k, v in resting.items())))
    out[np.ix_(rows, cols)] = _fits(sizes, _nan(_rows(areas, rows), len(rows)), dims,
                                    _nan(_rows(tops, rows), len(rows)), fps, cut, allowed)
    if sections is not None:
        for i in rows:
            top = None if tops is None else tops[i]
            for c in cols:
                if out[i, c] and not shape_fits(class_names[c], sections[i], top):
                    out[i, c] = False
    return out
