"""From an RGB-D frame to object patches: tabletop segmentation, 32x32 crops, 3D centroids.

Modes:
  depth  fit the dominant support plane (RANSAC on a sparse grid of back-projected points),
         fill sensor dropouts with the farthest neighbouring depth, keep what rises above the
         plane (hysteresis: min_height somewhere, grow_height around it), cut the far side of
         depth jumps (objects at different depths), split touching objects at concave creases
         where their colours differ, and take connected components. No plane -> depth-range
         segmentation, reported in `Extraction.warning`.
  mask   an instance-id image from another segmenter (0 = background).
  full   the whole image is one patch (pre-cropped, PROPS-style input).

`crop_patch` is the one place a patch is cut and resized: the dataset generator and the
node both call it, so training crops and runtime crops are made the same way.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import cv2
import numpy as np
from scipy import ndimage

from ..learn.features import PATCH_SIZE
from .blobs import blobs_touching
from .camera import Intrinsics, check_depth_image, depth_to_metres, surface_centroid_extent
from .openings import rejoin_openings
from .stacks import split_stacks
from .support import (highest_support, near_support, plane_basis, pose_geometry, refine_plane, section_shape,
                      stands_on, support_outline, touches_support)
from .valleys import split_at_valleys

MODES = ("depth", "mask", "full")
SUPPORTS = ("highest", "dominant")
SCALES = (1, 2, 4)
AUTO_GRID_WIDTH = 320  # samples across the image the segmenter's steps were tuned on (VGA at scale 2)


def grid_scale(params: "SegmentationParams", width: int) -> int:
    """The scale a frame `width` pixels wide is segmented at: `params.scale`, or for 0 the one of
    SCALES whose grid is nearest AUTO_GRID_WIDTH samples wide (VGA: 2; 1280x720: 4).

    Why a grid of fixed width: the depth-jump cut compares neighbouring samples, and a real
    camera smears an object's edge over a few pixels. On a 1280x720 frame at scale 2 that edge is
    spread over twice as many samples as on a VGA frame, no step between two of them is a jump,
    and touching objects stay one segment. At scale 4 each sample spans the angle it spans on VGA
    at scale 2 (doc/segmentation.md, "Frames larger than VGA")."""
    if params.scale:
        return params.scale
    return min(SCALES, key=lambda s: abs(np.log(width / s / AUTO_GRID_WIDTH)))


@dataclass
class SegmentationParams:
    mode: str = "depth"
    min_depth: float = 0.15  # metres
    max_depth: float = 3.0
    min_height: float = 0.012  # above the support plane, metres: an object reaches this high
    grow_height: float = 0.006  # ...and takes in the pixels above this height connected to it
    max_height: float = 0.5
    plane_threshold: float = 0.008  # RANSAC inlier distance, metres
    ransac_iterations: int = 96
    depth_jump: float = 0.025  # metres (at 1 m, scaled with depth) between neighbouring samples: another object
    crease: float = 0.15  # concave-crease cut: sag / chord of the surface over +-5 px; 0 = off
    rejoin_colour: float = 20.0  # pieces cut at a crease rejoin when their mean CIELAB colours are this close...
    rejoin_histogram: float = 0.1  # ...and their colour histograms too (1 - Bhattacharyya coefficient); 1 = off
    min_area: int = 120  # pixels
    max_area: int = 640 * 480 // 3
    max_objects: int = 20
    # Segment and measure on every scale-th pixel (2: 320x240 for VGA, ~2x faster; crops are
    # still cut from the full-size image, creases still found on a 2-pixel grid). 0: chosen per
    # image (`grid_scale`): the grid about AUTO_GRID_WIDTH samples wide whatever the camera.
    scale: int = 0
    padding: float = 0.15  # fraction of the box side added on each side of the square crop
    mask_background: bool = True  # grey out pixels outside the object mask (as the training crops)
    # The support and what stands on it (runtime.support): a real table is seldom the only plane in view.
    support: str = "highest"  # highest: the highest large plane parallel to the dominant one; dominant: RANSAC's
    support_area: float = 0.1  # square metres: the least a plane above the dominant one needs to be the support
    on_support: bool = True  # keep only segments whose base lies inside the support's outline in the image
    min_extent: float = 0.02  # metres: an object's largest visible size is at least this...
    max_extent: float = 0.45  # ...and at most this (the largest YCB objects are ~0.3 m; a table, a chair is more)
    # Cut a segment larger than max_extent at its narrow necks (`SPLIT_RADII`) before dropping it. Off by
    # default: the pieces of a robot's plate or arm would come out as objects (doc/segmentation.md).
    split_large: bool = False
    # Cut a segment where one object stands or lies on another's flat top and their colours differ
    # (runtime.stacks): a soup can on a SPAM can, a drill on a cracker box.
    split_stacks: bool = True
    # Join a mug's, a cup's or a bowl's inside, which the depth-jump cut parts from its front wall
    # when seen from above, back to it (runtime.openings).
    rejoin_openings: bool = True
    # Cut a segment at a low valley between two peaks: objects a few centimetres apart that a
    # stereo camera's smeared depth joins by a low ramp (runtime.valleys).
    split_valleys: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"segmentation mode must be one of {MODES}, got {self.mode!r}")
        if not 0 <= self.min_depth < self.max_depth:
            raise ValueError(f"need 0 <= min_depth < max_depth, got {self.min_depth}, {self.max_depth}")
        if not 0 <= self.min_height < self.max_height:
            raise ValueError(f"need 0 <= min_height < max_height, got {self.min_height}, {self.max_height}")
        if not 0 <= self.grow_height <= self.min_height:
            raise ValueError(f"need 0 <= grow_height <= min_height, got {self.grow_height}, {self.min_height}")
        if self.min_area < 1 or self.max_area < self.min_area:
            raise ValueError(f"need 1 <= min_area <= max_area, got {self.min_area}, {self.max_area}")
        if self.scale not in (0,) + SCALES:
            raise ValueError(f"scale must be 0 (auto), 1, 2 or 4, got {self.scale}")
        if self.max_objects < 1:
            raise ValueError(f"max_objects must be >= 1, got {self.max_objects}")
        if not 0 <= self.padding <= 2:
            raise ValueError(f"padding must be in [0, 2], got {self.padding}")
        if self.crease < 0 or self.rejoin_colour < 0:
            raise ValueError(f"crease and rejoin_colour must be >= 0, got {self.crease}, {self.rejoin_colour}")
        if not 0 <= self.rejoin_histogram <= 1:
            raise ValueError(f"rejoin_histogram must be in [0, 1], got {self.rejoin_histogram}")
        if self.plane_threshold <= 0 or self.depth_jump <= 0 or self.ransac_iterations < 1:
            raise ValueError("plane_threshold, depth_jump and ransac_iterations must be positive")
        if self.support not in SUPPORTS:
            raise ValueError(f"support must be one of {SUPPORTS}, got {self.support!r}")
        if self.support_area <= 0:
            raise ValueError(f"support_area must be > 0 square metres, got {self.support_area}")
        if not 0 <= self.min_extent < self.max_extent:
            raise ValueError(f"need 0 <= min_extent < max_extent, got {self.min_extent}, {self.max_extent}")


@dataclass
class DetectedObject:
    instance: int
    bbox: tuple[int, int, int, int]  # x_offset, y_offset, width, height (sensor_msgs/RegionOfInterest)
    mask: np.ndarray  # bool, bbox-local (height, width)
    pixels: int
    centroid: np.ndarray | None  # (x, y, z) metres, camera frame; None without valid depth
    # What the patch is cut from: (the RGB frame, `crop_patch`'s padding, whether the background is greyed)
    source: tuple[np.ndarray, float, bool] = field(repr=False, compare=False)
    extent: np.ndarray | None = None  # (x, y, z) size of the visible surface, metres (camera.surface_extent)
    area_m2: float | None = None  # the mask's area seen head-on at its median depth, square metres
    # How it rests on the support (support.pose_geometry): its top above the plane and its
    # footprint (minor, major) on it, metres; None without a support plane.
    top: float | None = None
    footprint: tuple[float, float] | None = None
    # Cut by the image's border: what is measured of it (its footprint) is only the part in the picture.
    truncated: bool = False
    # Its side at mid-height against a circle and a pair of lines (support.section_shape):
    # (radius, circle_rms, lines_rms) metres; None without a support plane or enough points.
    section: tuple[float, float, float] | None = None
    # The instance of this frame's object it stands or lies on (runtime.stacks); None: the support.
    rests_on: int | None = None
    _patch: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def patch(self) -> np.ndarray:
        """The (32, 32, 3) uint8 RGB patch, cut when first read: the node classifies only the
        segments some class's size and pose fit, and the others' crops (a table edge, a monitor:
        the largest) cost ~1 ms each at 1280x720. Teaching and the reports read them later, from
        the same frame, so they get the crop the classifier would have seen."""
        if self._patch is None:
            color, padding, masked = self.source
            self._patch = crop_patch(color, self.bbox, padding, self.mask if masked else None)
        return self._patch

    def bbox_dict(self) -> dict[str, int]:
        return dict(zip(("x_offset", "y_offset", "width", "height"), map(int, self.bbox)))

    def centroid_dict(self) -> dict[str, float] | None:
        return None if self.centroid is None else dict(zip("xyz", map(float, self.centroid)))


@dataclass
class Extraction:
    objects: list[DetectedObject] = field(default_factory=list)
    plane: np.ndarray | None = None  # (a, b, c, d): a x + b y + c z + d = 0, normal towards the camera
    warning: str | None = None
    # Segments dropped before cropping, by reason ("off support", "too large", "too small"; "split":
    # too large, and cut into parts that were then judged each): what the support and size checks
    # took away, for tests and debugging.
    rejected: dict[str, int] = field(default_factory=dict)
    ms: float = 0.0
    scale: int = 1  # segmented on every scale-th pixel (`grid_scale`: what auto chose for this frame)

    @property
    def patches(self) -> np.ndarray:
        """All patches of the frame as one (N, 32, 32, 3) batch for the classifier."""
        return self.patches_of(np.ones(len(self.objects), bool))

    def patches_of(self, which: np.ndarray) -> np.ndarray:
        """The patches of the objects `which` (a bool per object) as one batch; the others are not cut."""
        chosen = [o.patch for o, w in zip(self.objects, which) if w]
        return np.stack(chosen) if chosen else np.zeros((0, PATCH_SIZE, PATCH_SIZE, 3), np.uint8)


def crop_patch(color: np.ndarray, bbox: tuple[int, int, int, int], padding: float = 0.15,
               mask: np.ndarray | None = None, size: int = PATCH_SIZE) -> np.ndarray:
    """Square crop around bbox (+padding per side), clipped at the border, INTER_AREA to size x size.

    `mask` (bbox-local bool) greys out pixels outside the object when given.
    """
    return shrink(crop_region(color, bbox, padding, mask), size)


def crop_region(color: np.ndarray, bbox: tuple[int, int, int, int], padding: float = 0.15,
                mask: np.ndarray | None = None) -> np.ndarray:
    """`crop_patch`'s crop at full size, before it is averaged down: a view of `color`, or a
    greyed copy with `mask`."""
    H, W = color.shape[:2]
    x, y, w, h = bbox
    side = max(w, h) * (1.0 + 2.0 * padding)
    cx, cy = x + w / 2.0, y + h / 2.0
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    x1, y1 = int(round(cx + side / 2)), int(round(cy + side / 2))
    x0c, y0c, x1c, y1c = max(0, x0), max(0, y0), min(W, x1), min(H, y1)
    if x1c <= x0c or y1c <= y0c:
        raise ValueError(f"bbox {bbox} lies outside the {W}x{H} image")
    crop = color[y0c:y1c, x0c:x1c]
    if mask is None:
        return crop
    grey = np.full_like(crop, 128)
    mx0, my0 = x - x0c, y - y0c
    sy = slice(max(0, my0), min(grey.shape[0], my0 + h))
    sx = slice(max(0, mx0), min(grey.shape[1], mx0 + w))
    inside = np.ascontiguousarray(mask[sy.start - my0:sy.stop - my0, sx.start - mx0:sx.stop - mx0])
    cv2.copyTo(crop[sy, sx], inside.view(np.uint8), grey[sy, sx])  # in place, through the view
    return grey


# Crops of at least this many pixels are averaged down through their integral image (`area_mean`).
# OpenCV's INTER_AREA takes ~1 ns a channel sample where the scale is not a whole number, as a
# large object's crop's mostly is: ~1.4 ms for the 720x629 crop of the cracker box in the real
# GraspNet pile, 0.53 ms through the sums. Below ~200x200 the sums' fixed cost loses, and where
# both scales are whole numbers OpenCV's own is faster.
AREA_SUMS_PIXELS = 200 * 200


def shrink(crop: np.ndarray, size: int = PATCH_SIZE) -> np.ndarray:
    """`crop` INTER_AREA to size x size, by whichever of OpenCV and `area_mean` is faster for it."""
    h, w = crop.shape[:2]
    if h * w >= AREA_SUMS_PIXELS and min(h, w) >= 2 * size and (h % size or w % size):
        return area_mean(crop, size)
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def area_mean(image: np.ndarray, size: int) -> np.ndarray:
    """`cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)` for a downscale: each output
    pixel the mean of the input over its own rectangle, pixels cut by the rectangle's sides counted
    by the part inside it. Read off the integral image: piecewise bilinear between its samples,
    so the integral up to any fractional point is its bilinear interpolation there. Exact in
    float64; OpenCV sums in float32, and the two round a mean that falls within ~1e-5 of a half
    to different sides: on random images 2% of 32x32 outputs differ from OpenCV's, in one value by
    one level, and 4 of the 1,654 crops of 156 real and rendered frames in 1-3 values by one level.
    uint8 (H, W[, C]) in, (size, size[, C]) out."""
    H, W = image.shape[:2]
    sums = cv2.integral(image, sdepth=cv2.CV_32S if H * W < 2**31 // 255 else cv2.CV_64F)
    sums = sums.reshape(H + 1, W + 1, -1)  # a channel axis for one-channel images too

    def at(n: int) -> tuple[np.ndarray, np.ndarray]:  # the rectangles' sides: integer part, fraction
        p = np.arange(size + 1) * (n / size)
        i = np.minimum(p.astype(np.intp), n - 1)
        return i, p - i
    y, fy = at(H)
    x, fx = at(W)
    fy, fx = fy[:, None, None], fx[None, :, None]
    rows = sums[y] * (1 - fy) + sums[y + 1] * fy
    cum = rows[:, x] * (1 - fx) + rows[:, x + 1] * fx
    total = cum[1:, 1:] - cum[:-1, 1:] - cum[1:, :-1] + cum[:-1, :-1]
    total *= size * size / (H * W)
    return np.rint(total, out=total).astype(np.uint8).reshape((size, size) + image.shape[2:])


def jittered_crop(color: np.ndarray, bbox: tuple[int, int, int, int], mask: np.ndarray, rng: np.random.Generator,
                  padding: float = 0.15, mask_background: bool = True) -> np.ndarray:
    """The crop a slightly different segmentation would give: the box shifted by up to 10% and
    10% smaller to 15% larger, the mask (image-sized uint8) eroded or dilated by a pixel or two.

    The default model's recipe trains on such crops and live teaching adds them beside each
    view, so a class learnt from ten views covers the segmenter's own variation as the
    recipe's classes do."""
    H, W = color.shape[:2]
    x, y, w, h = bbox
    s = rng.uniform(0.9, 1.15)
    nw, nh = max(2, int(w * s)), max(2, int(h * s))
    nx = int(x + (w - nw) / 2 + rng.uniform(-0.1, 0.1) * w)
    ny = int(y + (h - nh) / 2 + rng.uniform(-0.1, 0.1) * h)
    nx, ny = min(max(nx, 0), W - 1), min(max(ny, 0), H - 1)
    bx, by, bw, bh = nx, ny, min(nw, W - nx), min(nh, H - ny)
    op = cv2.erode if rng.random() < 0.7 else cv2.dilate
    m = op(mask, np.ones((3, 3), np.uint8), iterations=int(rng.integers(1, 3)))
    local = m[by:by + bh, bx:bx + bw].astype(bool) if mask_background else None
    return crop_patch(color, (bx, by, bw, bh), padding, local)


def occluded_crop(color: np.ndarray, mask: np.ndarray, rng: np.random.Generator, padding: float = 0.15,
                  mask_background: bool = True, keep: tuple[float, float] = (0.5, 0.9)) -> np.ndarray:
    """The crop the segmenter would cut if something in front hid part of the object
    (`occluded_mask`), cropped around what is left.

    In clutter the segmenter returns only the visible part, and its box, so the crop zooms in
    on a part of the object; `replay-eval` scores objects at least half visible, hence 50%."""
    box, local = occluded_mask(mask, rng, keep)
    return crop_patch(color, box, padding, local if mask_background else None)


def occluded_mask(mask: np.ndarray, rng: np.random.Generator, keep: tuple[float, float] = (0.5, 0.9)
                  ) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """`mask` (image-sized, nonzero = object) cut by a straight edge at a random angle, keeping a
    random `keep` fraction of its pixels: (box of what is left, its box-local bool mask)."""
    ys, xs = np.nonzero(mask)
    if len(ys) < 2:
        raise ValueError("the mask is empty: nothing to occlude")
    angle = rng.uniform(0.0, 2.0 * np.pi)
    along = xs * np.cos(angle) + ys * np.sin(angle)
    kept = along <= np.quantile(along, rng.uniform(*keep))
    ys, xs = ys[kept], xs[kept]
    x0, y0 = int(xs.min()), int(ys.min())
    w, h = int(xs.max()) + 1 - x0, int(ys.max()) + 1 - y0
    local = np.zeros((h, w), bool)
    local[ys - y0, xs - x0] = True
    return (x0, y0, w, h), local


def rebalanced(image: np.ndarray, rng: np.random.Generator, channel: float = 0.15, exposure: float = 0.15
               ) -> np.ndarray:
    """The image under another white balance and exposure: a gain per channel (1 +- `channel`)
    times one overall (1 +- `exposure`).

    Ten views taken in one minute share one white balance; the scenes the object is met in
    later do not (auto white balance and exposure settle differently per scene; the rendered
    generator draws the same spread per scene). Without such copies a plain, pale object
    (a grey can) is matched by its tint, not its shape (bench/teach_bench.py)."""
    gains = rng.uniform(1 - channel, 1 + channel, 3) * rng.uniform(1 - exposure, 1 + exposure)
    return np.clip(image.astype(np.float32) * gains.astype(np.float32), 0, 255).astype(np.uint8)


def check_inputs(color: np.ndarray, depth: np.ndarray | None, intrinsics: Intrinsics | None,
                 params: SegmentationParams, instance_mask: np.ndarray | None = None) -> None:
    """What `extract_objects` refuses, checked before anything is computed: a command that writes
    its output folder asks first, so that a bad input leaves no folder behind (found from outside:
    `patches` without `--intrinsics` had left one)."""
    check_frame(color, depth)
    if params.mode == "mask":
        if instance_mask is None:
            raise ValueError("mask mode needs an instance mask image")
        if instance_mask.shape[:2] != color.shape[:2]:
            raise ValueError(f"mask {instance_mask.shape[:2]} and colour {color.shape[:2]} differ in size")
    elif params.mode != "full" and (depth is None or intrinsics is None):
        raise ValueError("depth mode needs a depth image and camera intrinsics")


def check_frame(color: np.ndarray, depth: np.ndarray | None) -> None:
    if color.ndim != 3 or color.shape[2] != 3 or color.dtype != np.uint8:
        raise ValueError(f"colour must be uint8 (H, W, 3) RGB, got {color.dtype} {color.shape}")
    if color.shape[0] == 0 or color.shape[1] == 0:
        raise ValueError(f"empty colour image {color.shape}")
    if depth is not None:  # before the grid reads every scale-th pixel: the file's own shape
        check_depth_image(depth)
    if depth is not None and depth.shape[:2] != color.shape[:2]:
        raise ValueError(f"depth {depth.shape[:2]} and colour {color.shape[:2]} differ in size; "
                         "the depth image must be aligned to the colour image")


SCORE_POINTS = 1024


def fit_plane(points: np.ndarray, threshold: float, iterations: int, rng: np.random.Generator
              ) -> tuple[np.ndarray | None, float]:
    """RANSAC plane on (N, 3) points, all hypotheses scored in one vectorised pass on at most
    SCORE_POINTS of them (evenly spread: a plane's support is counted as well from a thousand
    points as from three thousand, at a third of the cost), then refined by least squares on
    its inliers until they stop changing (`support.refine_plane`). Returns (plane or None, inlier fraction)."""
    if len(points) < 50:
        return None, 0.0
    tri = points[rng.integers(0, len(points), (iterations, 3))]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    norm = np.linalg.norm(normals, axis=1)
    ok = norm > 1e-9
    if not ok.any():
        return None, 0.0
    normals = normals[ok] / norm[ok, None]
    d = -(normals * tri[ok, 0]).sum(1)
    scored = points[::max(1, len(points) // SCORE_POINTS)]
    counts = (np.abs(scored @ normals.T.astype(np.float32) + d.astype(np.float32)) < threshold).sum(0)
    best = int(np.argmax(counts))
    plane = refine_plane(points, np.append(normals[best], d[best]), threshold)
    if plane[3] < 0:  # the camera (origin) is on the positive side: heights above the table > 0
        plane = -plane
    inlier_fraction = float((np.abs(points.astype(np.float64) @ plane[:3] + plane[3]) < threshold).mean())
    return plane, inlier_fraction


def _height_map(z: np.ndarray, plane: np.ndarray, K: Intrinsics) -> np.ndarray:
    """Signed distance of every pixel's 3D point from the plane, without building the cloud."""
    H, W = z.shape
    a = (plane[0] * (np.arange(W, dtype=np.float32) - K.cx) / K.fx)[None, :] \
        + (plane[1] * (np.arange(H, dtype=np.float32) - K.cy) / K.fy)[:, None] + plane[2]
    return a.astype(np.float32) * z + np.float32(plane[3])


def _fill_holes(z: np.ndarray) -> np.ndarray:
    """Each hole pixel next to valid depth takes its farthest valid 8-neighbour. `z`: metres with
    NaN for no reading, or the camera's uint16 millimetres; metres out.

    Structured-light sensors drop pixels in bands along depth edges and on dark surfaces. A
    band between two surfaces at similar depth (a mug's rim, a dark label) fills with that
    depth and stops cutting the object apart; a band between a near and a far surface fills
    with the far depth, so the jump stays where the near surface ends.
    """
    if z.dtype == np.uint16:  # millimetres, 0 = none: fill them as they are, then convert (the same metres)
        filled = cv2.dilate(z, np.ones((3, 3), np.uint8))
        np.copyto(filled, z, where=z != 0)
        return depth_to_metres(filled)
    holes = np.isnan(z)
    farthest = cv2.dilate(cv2.patchNaNs(z.copy(), 0.0), np.ones((3, 3), np.uint8))
    fill = holes & (farthest > 0)
    out = z.copy()
    out[fill] = farthest[fill]
    return out


def _far_side_of_jumps(z: np.ndarray, jump: float) -> np.ndarray:
    """Pixels with an 8-neighbour nearer by more than `jump` (scaled with distance).

    Only the far side is cut: the near surface keeps its outline (and its full box), and one
    pixel of cut on the far side is enough to separate them under 8-connectivity, because every
    near/far pair that touches across the jump loses its far pixel.
    """
    nearest = cv2.erode(cv2.patchNaNs(z.copy(), 1e6), np.ones((3, 3), np.uint8))
    limit = np.maximum(z, np.float32(1.0))
    limit *= np.float32(jump)
    return (z - nearest) > limit


def _label(mask: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """8-connected components with stats. 16-bit labels make the stats pass ~3x faster; they fit
    whenever a quarter of the pixels (the most 8-connected blobs an image can hold) does."""
    ltype = cv2.CV_16U if ((mask.shape[0] + 1) // 2) * ((mask.shape[1] + 1) // 2) < 65535 else cv2.CV_32S
    n, labels, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(
        np.ascontiguousarray(mask).view(np.uint8), 8, ltype, cv2.CCL_DEFAULT)
    return n, labels, stats


def _mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) around the True pixels, None if there are none: labelling and crease
    measuring only need the part of the frame the objects are in."""
    x, y, w, h = cv2.boundingRect(np.ascontiguousarray(mask).view(np.uint8))
    return None if w == 0 else (x, y, x + w, y + h)


CREASE_GRID = 2  # full-resolution pixels between the samples the bend is measured on
CREASE_STEP = 3  # samples either side of the centre when measuring the surface's bend (3 x 2 = 6 px)
CREASE_SMOOTH = 2.0  # Gaussian sigma (full-resolution pixels) on depth before measuring it


def _concave_creases(z: np.ndarray, K: Intrinsics, box: tuple[int, int, int, int], threshold: float,
                     pixel: int = 1) -> np.ndarray:
    """`_crease_samples` as a bool map of `box` (x0, y0, x1, y1) of `z`, each sample covering its
    f x f pixels: what `_creases_in` returns, without a map of the whole image per call."""
    crease, X0, Y0, f = _crease_samples(z, K, box, threshold, pixel)
    x0, y0, x1, y1 = box
    if f > 1:
        crease = np.repeat(np.repeat(crease, f, axis=0), f, axis=1)
    part = crease[y0 - Y0:y1 - Y0, x0 - X0:x1 - X0]  # X0 <= x0, Y0 <= y0: the samples start before the box
    out = np.zeros((y1 - y0, x1 - x0), bool)
    out[:part.shape[0], :part.shape[1]] = part  # the image's last odd row or column has no sample
    return out


def _crease_grid(pixel: int) -> tuple[int, float, int]:
    """(z's pixels per crease sample, the smoothing's sigma and the bend's reach in samples) for
    a `z` of `pixel` full-resolution pixels per pixel."""
    f = max(1, CREASE_GRID // pixel)
    return f, CREASE_SMOOTH / (pixel * f), max(1, int(round(CREASE_STEP * CREASE_GRID / (pixel * f))))


def _crease_reach(pixel: int) -> int:
    """Pixels of `z` around a box that the crease test inside it reads: the bend's reach plus
    the smoothing's (OpenCV's Gaussian on float images reaches 4 sigma). With that much depth
    around it, a pixel's crease is what the whole frame gives it, whatever else the box holds
    (which segments lie off the support, how far the box reaches)."""
    f, sigma, s = _crease_grid(pixel)
    return f * (s + int(np.ceil(4 * sigma)))


def _crease_samples(z: np.ndarray, K: Intrinsics, box: tuple[int, int, int, int], threshold: float,
                    pixel: int = 1, read: tuple[int, int, int] | None = None) -> tuple[np.ndarray, int, int, int]:
    """Pixels where the surface folds away from the camera: objects that touch on a table meet in
    such a valley (convex bodies side by side), while one object's own edges bulge towards it.

    For each of four directions the centre point's depth is compared with the chord between the
    3D points CREASE_STEP samples either side; sag / chord above `threshold` is a crease. The
    ratio is free of distance and pixel size. The smoothed depth is sampled every CREASE_GRID
    full-resolution pixels (a crease is several pixels wide after smoothing) whatever grid `z`
    is on (`pixel`: full-resolution pixels per pixel of `z`, the segmentation's scale), so a
    frame segmented at half resolution is cut where the full-resolution one is; and only inside
    `box` (x0, y0, x1, y1). `z`: metres with NaN for no reading, or the camera's uint16
    millimetres (0: none), read as they are rather than converted to metres and back.

    Returns the crease on the sample grid and where that grid lies in `z`: (crease, X0, Y0, f),
    sample (i, j) covering z[Y0 + f i : Y0 + f (i + 1), X0 + f j : X0 + f (j + 1)].
    `read` (y, x, step): the caller reads only the samples every `step` pixels of `z` from the
    one holding pixel (y, x); the bend is measured there alone (the others stay False). A
    1280x720 frame segmented on every 4th pixel reads every 2nd sample: the test costs a
    quarter, and each sample read is what it was.
    """
    x0, y0, x1, y1 = box
    f, sigma, s = _crease_grid(pixel)
    pad = _crease_reach(pixel)
    X0, Y0 = max(0, x0 - pad) // f * f, max(0, y0 - pad) // f * f  # aligned, so the sample grid stays fixed
    # ... and whole samples, each the mean of its f x f pixels (a crop of odd size made INTER_AREA
    # average over a little more than f pixels a side, sliding with the crop's size); the image's
    # last row or column past a whole sample has none
    X1 = min(X0 - (X0 - x1 - pad) // f * f, X0 + (z.shape[1] - X0) // f * f)
    Y1 = min(Y0 - (Y0 - y1 - pad) // f * f, Y0 + (z.shape[0] - Y0) // f * f)
    zc = z[Y0:Y1, X0:X1]
    if zc.dtype == np.uint16:  # the same numbers as depth_to_metres and patchNaNs(0) give, one pass each
        valid = (zc != 0).astype(np.float32)
        zs = zc.astype(np.float32)
        zs *= np.float32(1e-3)
    else:
        valid = np.isfinite(zc).astype(np.float32)
        zs = cv2.patchNaNs(zc.copy(), 0.0)
    if f > 1:  # f x f means, then the Gaussian on the coarser grid (f*f fewer pixels to smooth)
        size = ((X1 - X0) // f, (Y1 - Y0) // f)
        valid = cv2.resize(valid, size, interpolation=cv2.INTER_AREA)
        zs = cv2.resize(zs, size, interpolation=cv2.INTER_AREA)
    weight = cv2.GaussianBlur(valid, (0, 0), sigma)
    zs = cv2.GaussianBlur(zs, (0, 0), sigma) / np.maximum(weight, np.float32(1e-3))
    H, W = zs.shape
    if H <= 2 * s or W <= 2 * s:
        return np.zeros((H, W), bool), X0, Y0, f
    centre = np.float32((f - 1) / 2)
    X = ((np.arange(X0, X0 + f * W, f, dtype=np.float32) + np.float32(centre - K.cx)) / np.float32(K.fx))[None, :] * zs
    Y = ((np.arange(Y0, Y0 + f * H, f, dtype=np.float32) + np.float32(centre - K.cy)) / np.float32(K.fy))[:, None] * zs
    crease = np.zeros((H, W), bool)
    k2 = np.float32(threshold * threshold)
    # The centres measured: rows r0, r0 + step, ... of [s, H - s), columns likewise
    step = 1 if read is None else max(1, read[2] // f)
    r0, c0 = (s, s) if read is None else ((read[0] - Y0) // f, (read[1] - X0) // f)
    r0, c0 = (v + -((v - s) // step) * step if v < s else v for v in (r0, c0))  # the first at s or after
    for dx, dy in ((1, 0), (0, 1), (1, 1), (1, -1)):
        # centre = [r0:H-s:step, c0:W-s:step]; plus / minus = the centres moved by +-(dx, dy) * s
        def shifted(a: np.ndarray, sign: int) -> np.ndarray:
            oy, ox = sign * dy * s, sign * dx * s
            return a[r0 + oy:H - s + oy:step, c0 + ox:W - s + ox:step]
        zp, zm = shifted(zs, 1), shifted(zs, -1)
        sag = shifted(zs, 0) - (zp + zm) * np.float32(0.5)
        chord2 = (shifted(X, 1) - shifted(X, -1)) ** 2 + (shifted(Y, 1) - shifted(Y, -1)) ** 2 + (zp - zm) ** 2
        crease[r0:H - s:step, c0:W - s:step] |= (sag > 0) & (sag * sag > k2 * chord2)
    return crease, X0, Y0, f


def _creases_in(box: tuple[int, int, int, int], z: np.ndarray, K: Intrinsics, params: SegmentationParams,
                fine: np.ndarray | None) -> np.ndarray:
    """The concave creases inside `box` of `z`'s grid, (y1 - y0, x1 - x0) bool.

    At a reduced scale with the full-resolution depth at hand (`fine`, the camera's image), the
    creases are measured on that depth's 2x2 means, as at full resolution, and read back on
    every scale-th pixel: a crease between two objects is a shallow valley a few millimetres deep,
    and every second pixel of the raw depth alone (no averaging) is noisy enough to hide it
    (measured: touching objects on rendered frames went unsplit). Only the box is converted."""
    x0, y0, x1, y1 = box
    s = params.scale
    if s == 1 or fine is None:
        return _concave_creases(z, K, box, params.crease, s)
    pad = -(-_crease_reach(1) // s) * s  # whole grid pixels
    RX0, RY0 = max(0, x0 * s - pad) // s * s, max(0, y0 * s - pad) // s * s  # aligned with z's grid
    RX1, RY1 = min(fine.shape[1], x1 * s + pad), min(fine.shape[0], y1 * s + pad)
    zf = fine[RY0:RY1, RX0:RX1]  # holes weigh nothing in the 2x2 means
    if zf.dtype != np.uint16:
        zf = depth_to_metres(zf)
    Kf = Intrinsics(K.fx * s, K.fy * s, K.cx * s - RX0, K.cy * s - RY0)
    bx0, by0 = x0 * s - RX0, y0 * s - RY0
    crease, X0, Y0, f = _crease_samples(zf, Kf, (bx0, by0, min(x1 * s, RX1) - RX0, min(y1 * s, RY1) - RY0),
                                        params.crease, read=(by0, bx0, s))
    # Read on z's grid straight from the samples: z's pixel i lies at full-resolution y0 s - RY0 + i s,
    # in sample (that - Y0) / f. Both offsets are multiples of f (2) and s is too (2 or 4).
    assert s % f == 0 and (by0 - Y0) % f == 0 and (bx0 - X0) % f == 0, \
        "the segmentation grid must fall on the crease samples (CREASE_GRID 2, scale 2 or 4)"
    grid = crease[(by0 - Y0) // f::s // f, (bx0 - X0) // f::s // f][:y1 - y0, :x1 - x0]
    out = np.zeros((y1 - y0, x1 - x0), bool)
    out[:grid.shape[0], :grid.shape[1]] = grid
    return out


# Full-resolution pixels that one more crease window's fixed cost (~0.09 ms: conversion, smoothing
# and the bend's passes, called once more) is worth, at ~3 ns a pixel (1280x720, measured).
CREASE_WINDOW_COST = 25_000
# Full-resolution pixels in the box around the mask from which creases are measured in windows: in
# a smaller box (a VGA frame holds 307,200) the windows' own cost (joining them: 0.1-0.4 ms) ate
# what they saved, 0.09 ms a frame more over 29 real VGA frames (measured).
CREASE_WINDOWS_FROM = 400_000


def _creases_around(cstats: np.ndarray, box: tuple[int, int, int, int], z: np.ndarray, K: Intrinsics,
                    params: SegmentationParams, fine: np.ndarray | None) -> np.ndarray:
    """`_creases_in(box, ...)` within the components that a crease can split (and the rest of the
    windows measured around them), False elsewhere; over the whole box where it holds fewer than
    CREASE_WINDOWS_FROM full-resolution pixels.

    `_split_at_creases` cuts a component only where it holds two pieces of min_area // 2 or
    more, so one smaller than twice that is never cut, whatever its creases. The others are
    measured in windows around them, joined where the rectangle around two costs less than both
    (`_join_windows`): on the real M2T2 tables at 1280x720 the box around the mask held 27-57
    components over the whole frame, and 5-7 windows hold under half of its pixels. A pixel's
    crease reads the depth within `_crease_reach` of it on a sample grid fixed by the image, so
    it is the same in any window that holds it. `cstats`: the components' stats within `box`."""
    x0, y0, x1, y1 = box
    s = params.scale
    if (x1 - x0) * (y1 - y0) * s * s < CREASE_WINDOWS_FROM:
        return _creases_in(box, z, K, params, fine)
    out = np.zeros((y1 - y0, x1 - x0), bool)
    can_split = cstats[1:, 4] * s * s >= 2 * (params.min_area // 2)
    windows = [(x0 + x, y0 + y, x0 + x + w, y0 + y + h) for x, y, w, h in cstats[1:, :4][can_split].tolist()]
    if not windows:
        return out
    reach, cost = -(-_crease_reach(1) // s), CREASE_WINDOW_COST // (s * s)  # on z's grid
    for wx0, wy0, wx1, wy1 in _join_windows(windows, reach, cost)[0]:
        out[wy0 - y0:wy1 - y0, wx0 - x0:wx1 - x0] = _creases_in((wx0, wy0, wx1, wy1), z, K, params, fine)
    return out


LAB_LOW, LAB_HIGH = np.float32([0, -80, -80]), np.float32([99.99, 79.99, 79.99])  # the histogram's range


def _colour_histogram(crop: np.ndarray, piece: np.ndarray, stats: np.ndarray, i: int) -> np.ndarray:
    """Piece i's CIELAB histogram, normalised (`_lab_histogram`), from its box of `crop`."""
    x, y, w, h = stats[i, :4]
    return _lab_histogram(_clipped_lab(crop[y:y + h, x:x + w]), (piece[y:y + h, x:x + w] == i).view(np.uint8))


def _clipped_lab(rgb: np.ndarray) -> np.ndarray:
    """An RGB image in CIELAB (float32), a* and b* clipped to the histograms' range."""
    lab = cv2.cvtColor(np.divide(rgb, np.float32(255.0), dtype=np.float32), cv2.COLOR_RGB2Lab)
    return np.clip(lab, LAB_LOW, LAB_HIGH, out=lab)


def _lab_histogram(lab: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """The normalised histogram of `lab`'s pixels where `inside` (uint8) is set: 8 x 8 a*b* bins
    over +-80 and 4 L* bins, each half counting every pixel (saturated colours, a* or b* beyond
    80, go to the outer bins)."""
    v = np.concatenate([cv2.calcHist([lab], [1, 2], inside, [8, 8], [-80, 80, -80, 80]).ravel(),
                        cv2.calcHist([lab], [0], inside, [4], [0, 100]).ravel()])
    return v / max(float(v.sum()), 1.0)


def _split_at_creases(mask: np.ndarray, z: np.ndarray, K: Intrinsics, color: np.ndarray,
                      params: SegmentationParams, fine: np.ndarray | None = None) -> np.ndarray:
    """Cut touching objects apart where their surfaces meet in a concave crease and differ in colour.

    The crease cuts each component into pieces. Pieces of one component whose mean colours are
    within `rejoin_colour` (CIELAB) and whose colour histograms are within `rejoin_histogram`
    are one object folded (a bottle's cap on its shoulder, a mug's handle); the rest are
    different objects. The mean alone joined printed products of the same average colour (a
    white-and-blue Domino box beside a blue-and-white Master Chef can), which a histogram parts;
    one object's folded pieces show the same colours, so their histograms agree. Every pixel of
    a component that holds two or more objects goes to the nearest piece (creases are a few
    pixels wide) and a two-pixel line is cut between objects. Pieces below half of min_area or a tenth of their component are ignored.
    Works on the box around the mask only, and measures creases only where they can cut
    (`_creases_around`).
    """
    box = _mask_box(mask)
    if box is None:
        return mask
    x0, y0, x1, y1 = box
    sub = mask[y0:y1, x0:x1]
    ncomp, comp, cstats = _label(sub)
    crease = _creases_around(cstats, box, z, K, params, fine)
    n, piece, stats = _label(sub & ~crease)
    if n <= 2:
        return mask
    # The component of each piece, read at one of its pixels: OpenCV numbers blobs in scan order,
    # so each piece has a pixel in its box's top row.
    owner = np.zeros(n, np.intp)  # 0 for the pieces too small to matter
    for i in np.flatnonzero(stats[1:, 4] * params.scale ** 2 >= params.min_area // 2) + 1:  # full-size pixels
        x, y, w = stats[i, :3]
        owner[i] = comp[y, x + int(np.argmax(piece[y, x:x + w] == i))]
    big = (owner > 0) & (stats[:, 4] >= 0.1 * cstats[owner, 4])
    split = np.flatnonzero(np.bincount(owner[big], minlength=ncomp) >= 2)
    if len(split) == 0:
        return mask
    candidates = np.flatnonzero(big & np.isin(owner, split))
    crop = color[y0:y1, x0:x1]
    mean_rgb = np.zeros((n, 3), np.float32)
    for i in candidates:
        x, y, w, h = stats[i, :4]
        inside = (piece[y:y + h, x:x + w] == i).view(np.uint8)
        mean_rgb[i] = cv2.mean(crop[y:y + h, x:x + w], mask=inside)[:3]
    lab = cv2.cvtColor(mean_rgb[None] / np.float32(255.0), cv2.COLOR_RGB2Lab)[0]
    group = np.arange(n)  # union-find over the pieces of one component with the same colour
    histograms: dict[int, np.ndarray] = {}  # only for pairs whose means already agree

    def histogram(i: int) -> np.ndarray:
        if i not in histograms:
            histograms[i] = _colour_histogram(crop, piece, stats, i)
        return histograms[i]

    def same_colours(a: int, b: int) -> bool:
        return _one_objects_colours(lab[a], lab[b], lambda: (histogram(a), histogram(b)), params)

    def root(a: int) -> int:
        while group[a] != a:
            a = group[a]
        return a
    for i, a in enumerate(candidates):
        for b in candidates[i + 1:]:
            if owner[a] == owner[b] and same_colours(a, b):
                group[root(b)] = root(a)
    group = np.array([root(a) for a in range(n)])
    split = [c for c in split if len(set(group[candidates[owner[candidates] == c]])) >= 2]
    if not split:
        return mask
    # Each component's pixels go to the nearest of its own pieces, on its own box (+1 pixel for
    # the 3x3 cut): one distance transform over all of them gave a pixel near another component's
    # piece to that one, and a component's cuts then depended on what else the frame held.
    k3 = np.ones((3, 3), np.uint8)
    out = mask.copy()
    for c in split:
        cx, cy, cw, ch = cstats[c, :4]
        bx0, by0, bx1, by1 = max(cx - 1, 0), max(cy - 1, 0), min(cx + cw + 1, sub.shape[1]), min(cy + ch + 1, sub.shape[0])
        p, region = piece[by0:by1, bx0:bx1], comp[by0:by1, bx0:bx1] == c
        seeds = (big & (owner == c))[p]  # a piece lies within the component that owns it
        _, nearest = cv2.distanceTransformWithLabels((~seeds).view(np.uint8), cv2.DIST_L2, 3,
                                                     labelType=cv2.DIST_LABEL_PIXEL)
        seed_group = np.zeros(int(nearest.max()) + 1, np.float32)
        seed_group[nearest[seeds]] = group[p[seeds]]
        assigned = seed_group[nearest]
        # Outside the component counts as a group of its own, so the line also takes the
        # component's one-pixel outline. That parts thin bridges left between two objects of one
        # colour; keeping the outline (0.9.22) lost 4 real objects of 165 (bench/lost_objects.py).
        assigned[~region] = 0
        out[y0 + by0:y0 + by1, x0 + bx0:x0 + bx1] &= ~((cv2.dilate(assigned, k3) != cv2.erode(assigned, k3)) & region)
    return out


VGA_PIXELS = 640 * 480


def _components(mask: np.ndarray, params: SegmentationParams, pixel_area: int = 1
                ) -> list[tuple[np.ndarray, tuple, int]]:
    """Connected components within the area limits (areas in full-resolution pixels).

    `max_area` is given for a 640x480 image and grows with a larger one's pixel count: a cracker
    box half a metre from a 1280x720 camera covers ~120,000 pixels, beyond the VGA limit, and was
    dropped without a word. (The metric `max_extent` is what keeps tables and walls out.)"""
    max_area = params.max_area * max(1.0, mask.size * pixel_area / VGA_PIXELS)
    box = _mask_box(mask)
    if box is None:
        return []
    ox, oy, x1, y1 = box
    n, labels, stats = _label(mask[oy:y1, ox:x1])
    out = []
    for i in range(1, n):
        x, y, w, h, area = map(int, stats[i])
        if params.min_area <= area * pixel_area <= max_area:
            out.append((labels[y:y + h, x:x + w] == i, (x + ox, y + oy, w, h), area * pixel_area))
    return out


# A segment too large to be one object (a robot's base plate or arm touching the objects, a row of
# objects touching each other) is cut at its narrow necks before it is given up: cores of pixels
# more than this far (metres, at the segment's depth) from its outline, each pixel joined to its
# nearest core; a part still too large is cut again with the next radius.
SPLIT_RADII = (0.02, 0.04)


def _split_at_necks(mask: np.ndarray, box: tuple[int, int, int, int], depth: float, fx: float, radius: float,
                    min_area: int) -> list[tuple[np.ndarray, tuple[int, int, int, int], int]]:
    """The parts of a segment (mask local to `box`, on the segmentation's grid) between its
    necks narrower than 2 x `radius` metres, largest first; [] when it has none. Each pixel goes
    to its nearest core and, as between objects cut at a crease, a line is cut between parts;
    each connected piece of at least `min_area` pixels is a part (a stray piece is not joined to
    a core it does not touch). O(pixels) whatever the number of cores."""
    r = radius * fx / max(depth, 1e-3)
    dist = cv2.distanceTransform(np.pad(mask.view(np.uint8), 1), cv2.DIST_L2, 3)[1:-1, 1:-1]
    cores = dist > r
    n, _ = cv2.connectedComponents(cores.view(np.uint8), connectivity=8)
    if n <= 2:
        return []
    return _split_at_cores(mask, box, cores, min_area)


def _split_at_cores(mask: np.ndarray, box: tuple[int, int, int, int], cores: np.ndarray, min_area: int
                    ) -> list[tuple[np.ndarray, tuple[int, int, int, int], int]]:
    """The parts of a segment (mask local to `box`) around its `cores` (two or more connected
    pieces within it), largest first; [] unless two parts of `min_area` pixels come of it."""
    _, nearest = cv2.distanceTransformWithLabels((~cores).view(np.uint8), cv2.DIST_L2, 3,
                                                 labelType=cv2.DIST_LABEL_CCOMP)
    # The line between parts: pixels with a neighbour in the mask nearest to another core (the
    # background counts as neither side, so the segment's own outline is kept).
    nearest = nearest.astype(np.float32)
    k3 = np.ones((3, 3), np.uint8)
    highest = cv2.dilate(np.where(mask, nearest, np.float32(0)), k3)
    lowest = cv2.erode(np.where(mask, nearest, np.float32(np.inf)), k3)
    kept = mask & (highest == lowest)
    _, labels, stats = _label(kept)
    x0, y0 = box[0], box[1]
    parts = []
    for i in np.flatnonzero(stats[1:, 4] >= min_area) + 1:
        x, y, w, h, area = map(int, stats[i])
        parts.append((labels[y:y + h, x:x + w] == i, (x0 + x, y0 + y, w, h), area))
    parts.sort(key=lambda p: -p[2])
    return parts if len(parts) > 1 else []


def _upscale(mask: np.ndarray, box: tuple[int, int, int, int], s: int, shape: tuple[int, int]
             ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A component found on a 1/s grid -> its full-resolution (nearest-neighbour) mask and box."""
    x, y, w, h = box
    X, Y = x * s, y * s
    Wf, Hf = min(w * s, shape[1] - X), min(h * s, shape[0] - Y)
    big = cv2.resize(mask.view(np.uint8), (w * s, h * s), interpolation=cv2.INTER_NEAREST)[:Hf, :Wf]
    return big.view(bool), (X, Y, Wf, Hf)


REFINE_BAND = 2  # full-resolution pixels either side of an upscaled mask's edge decided again


def _full_resolution_rule(depth: np.ndarray, K: Intrinsics, plane: np.ndarray, params: SegmentationParams,
                          box: tuple[int, int, int, int]) -> np.ndarray:
    """What the full-resolution segmenter keeps inside `box` (x0, y0, x1, y1) of the camera's
    depth image: hole-filled depth above grow_height and below max_height over the plane, not on
    the far side of a depth jump, after a 3x3 opening. Bool, the box's shape."""
    x0, y0, x1, y1 = box
    raw = depth[y0:y1, x0:x1]
    z = _fill_holes(raw if raw.dtype == np.uint16 else depth_to_metres(raw))
    height = _height_map(z, plane, Intrinsics(K.fx, K.fy, K.cx - x0, K.cy - y0))
    rises = (height > params.grow_height) & (height < params.max_height)  # NaN compares False
    rises &= ~_far_side_of_jumps(z, params.depth_jump)
    return cv2.morphologyEx(rises.view(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).view(bool)


RULE_REACH = 4  # pixels around a pixel that `_full_resolution_rule` reads: hole fill 1, depth jump 1, opening 2
RULE_WINDOW_COST = 8_000  # pixels that one more call of the rule costs (~0.035 ms at ~4.3 ns a pixel, measured)


def _rules_around(boxes: list[tuple[int, int, int, int]], region: tuple[int, int, int, int], depth: np.ndarray,
                  K: Intrinsics, plane: np.ndarray, params: SegmentationParams
                  ) -> list[tuple[np.ndarray, tuple[int, int]]]:
    """`_full_resolution_rule` around each upscaled box (x, y, w, h), as (rule, origin) for
    `_refine_edges`: the pixels its band reads, and RULE_REACH more for what they read, within
    `region` (x0, y0, x1, y1). Each of those pixels comes out as the rule over the whole region
    gives it, with the region's own border where it is near; over the region at once it cost
    2-5 ms a 1280x720 frame, most of it table between the objects. Windows that overlap or lie
    close are computed once, as the rectangle around them, wherever that rectangle holds no more
    pixels than they do apart plus a call's fixed cost (`_join_windows`): in a pile each object's
    window covers its neighbours' (the GraspNet frame: 783,000 pixels in 11 windows, 577,000 in
    6), and on the M2T2 tables 16-17 windows become 9-11."""
    pad = REFINE_BAND + 1 + RULE_REACH
    windows = [(max(region[0], x - pad), max(region[1], y - pad), min(region[2], x + w + pad),
                min(region[3], y + h + pad)) for x, y, w, h in boxes]
    out: list = [None] * len(windows)
    for (X0, Y0, X1, Y1), ks in zip(*_join_windows(windows, cost=RULE_WINDOW_COST)):
        rule = _full_resolution_rule(depth, K, plane, params, (X0, Y0, X1, Y1)), (X0, Y0)
        for k in ks:
            out[k] = rule
    return out


def _join_windows(windows: list[tuple[int, int, int, int]], grow: int = 0, cost: int = 0
                  ) -> tuple[list[tuple[int, int, int, int]], list[list[int]]]:
    """Windows (x0, y0, x1, y1) that overlap or lie close, joined into the rectangle around them
    wherever that costs no more: fewer pixels than the two apart (each `grow` larger on every
    side, as its computation reads them) plus `cost`, the pixels one computation's fixed cost
    is worth. The pair that saves the most goes first (the first pair in scan order of ties).
    Returns the rectangles and, for each, the indices of the windows it holds."""
    r = np.array(windows, np.int64).reshape(-1, 4)
    held = [[k] for k in range(len(r))]
    g = 2 * grow

    def size(rects: np.ndarray) -> np.ndarray:
        return (rects[:, 2] - rects[:, 0] + g) * (rects[:, 3] - rects[:, 1] + g)
    # saved[i, j]: what joining windows i and j saves, for every pair; updated for the joined
    # window's row and column only, and -1 for a window gone into another
    x0, y0 = np.minimum.outer(r[:, 0], r[:, 0]), np.minimum.outer(r[:, 1], r[:, 1])
    x1, y1 = np.maximum.outer(r[:, 2], r[:, 2]), np.maximum.outer(r[:, 3], r[:, 3])
    area = size(r)
    saved = area[:, None] + area[None, :] + cost - (x1 - x0 + g) * (y1 - y0 + g)
    np.fill_diagonal(saved, -1)
    alive = np.ones(len(r), bool)
    while len(r) > 1:
        i, j = divmod(int(np.argmax(saved)), len(r))  # i < j: the first of a symmetric pair in scan order
        if saved[i, j] < 0:
            break
        r[i] = (min(r[i, 0], r[j, 0]), min(r[i, 1], r[j, 1]), max(r[i, 2], r[j, 2]), max(r[i, 3], r[j, 3]))
        held[i] += held[j]
        alive[j] = False
        saved[j, :] = saved[:, j] = -1
        joined = np.concatenate([np.minimum(r[:, :2], r[i, :2]), np.maximum(r[:, 2:], r[i, 2:])], axis=1)
        area[i] = size(r[i:i + 1])[0]
        row = np.where(alive, area + area[i] + cost - size(joined), -1)
        row[i] = -1
        saved[i, :] = saved[:, i] = row
    keep = np.flatnonzero(alive)
    return [tuple(w) for w in r[keep].tolist()], [held[k] for k in keep]


def _refine_edges(mask: np.ndarray, box: tuple[int, int, int, int], rule: np.ndarray,
                  origin: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """An upscaled component's outline redrawn from the full-resolution depth: (mask, box).

    A mask found on every second pixel and blown up has a staircase edge two pixels deep; the
    crop's grey background and its box then differ from the ones a full-resolution mask gives,
    and from the training crops'. Within REFINE_BAND pixels of that edge each full-resolution
    pixel is decided again by the rule that found the component at full resolution (`rule`:
    `_full_resolution_rule` over a region at `origin` (x, y) holding the box and REFINE_BAND + 1
    pixels around it, `_rules_around`); the interior and the far outside stay, and the
    box is fitted to the result. Measured against full-resolution masks on rendered frames:
    mask IoU median 0.92 upscaled, 0.999 redrawn."""
    if not mask.any():
        return mask, box
    ox, oy = origin
    x, y, w, h = box
    b = REFINE_BAND + 1  # room for the edge to move out, and for the band's window
    X0, Y0 = max(ox, x - b), max(oy, y - b)
    X1, Y1 = min(ox + rule.shape[1], x + w + b), min(oy + rule.shape[0], y + h + b)
    grown = np.zeros((Y1 - Y0, X1 - X0), np.uint8)
    grown[y - Y0:y - Y0 + h, x - X0:x - X0 + w] = mask
    k = np.ones((2 * REFINE_BAND + 1, 2 * REFINE_BAND + 1), np.uint8)
    edge = (cv2.dilate(grown, k) != cv2.erode(grown, k)).view(bool)
    refined = np.where(edge, rule[Y0 - oy:Y1 - oy, X0 - ox:X1 - ox], grown.view(bool))
    tight = _mask_box(refined)
    if tight is None:
        return mask, box
    tx0, ty0, tx1, ty1 = tight
    return refined[ty0:ty1, tx0:tx1], (X0 + tx0, Y0 + ty0, tx1 - tx0, ty1 - ty0)


def segment_depth(z: np.ndarray, K: Intrinsics, params: SegmentationParams, color: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    """Object mask (bool) from metric depth; plus the plane and a warning if it fell back.

    `z`, `K` and `color` are on the grid of every `params.scale`-th pixel, as `extract_objects`
    passes them (K divided by the scale). Creases are then measured on that grid alone: without
    the camera's full-resolution depth to average, touching objects split less reliably than in
    `extract_objects` at the same scale.

    With `color` (RGB, same size) and `params.crease` > 0, touching objects are cut apart at
    concave creases where their colours differ (see `_split_at_creases`).
    """
    if not params.scale:  # auto: `z` is the grid it was given, the camera's own
        params = replace(params, scale=1)
    mask, plane, warning, *_ = _segment_depth(z, K, params, color)
    return mask, plane, warning


def _segment_depth(z: np.ndarray, K: Intrinsics, params: SegmentationParams, color: np.ndarray | None,
                   fine: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray | None, str | None, np.ndarray | None, tuple | None, int]:
    """`segment_depth` plus the height map, the support's outline and rim (`support_outline`;
    None without a plane or with `on_support` off) and the number of blobs dropped as wholly off
    them (`near_support`). `fine`: the full-resolution depth image when `z` is on a reduced grid
    (`_creases_in`)."""
    H, W = z.shape
    step = max(1, int(round(np.sqrt(H * W / 3000))))
    zs = z[::step, ::step]
    vs, us = np.nonzero((zs >= params.min_depth) & (zs <= params.max_depth))
    pts = K.backproject(us * step, vs * step, zs[vs, us]).astype(np.float32)
    plane, frac = fit_plane(pts, params.plane_threshold, params.ransac_iterations,
                            np.random.default_rng(params.seed))
    z = _fill_holes(z)
    in_range = (z >= params.min_depth) & (z <= params.max_depth)  # NaN compares False
    warning = h = support = None
    if not len(vs):  # nothing to segment, and no plane to miss
        warning = f"no valid depth between {params.min_depth:g} and {params.max_depth:g} m"
        far = zs[np.isfinite(zs) & (zs > params.max_depth)]
        if far.size and params.min_depth <= float(np.median(far)) / 1000 <= params.max_depth:
            # found from outside: a 32FC1 image in millimetres read as a blind camera
            warning += (f" (its depth is around {float(np.median(far)):g} m: millimetres in a 32FC1 image, "
                        "which holds metres?)")
        mask, plane = in_range, None
    elif plane is None or frac < 0.15:
        warning = "no support plane found; segmenting by depth range only"
        mask = in_range
        plane = None
    else:
        if params.support == "highest":
            plane = highest_support(pts, plane, K, step, params.plane_threshold, params.support_area)
        h = _height_map(z, plane, K)
        if params.on_support:
            support = support_outline(in_range & (np.abs(h) < 2 * params.plane_threshold))
        # Hysteresis: low objects (a marker lying down) barely clear min_height along their top;
        # their lower parts join from grow_height, while table noise above grow_height with no
        # pixel reaching min_height stays out.
        mask = in_range & (h > params.grow_height) & (h < params.max_height)
        mask, _ = blobs_touching(mask, h > params.min_height)
    mask &= ~_far_side_of_jumps(z, params.depth_jump)
    # Remove speckle; at reduced resolution a 3x3 opening would cut real 2-3 pixel bridges.
    if params.scale == 1:
        mask = cv2.morphologyEx(mask.view(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).view(bool)
    off = 0
    if support is not None:
        mask, off = near_support(mask, *support)
    if color is not None and params.crease > 0 and mask.any():
        mask = _split_at_creases(mask, z, K, color, params, fine)
    return mask, plane, warning, h, support, off


def _one_objects_colours(lab_a: np.ndarray, lab_b: np.ndarray, histograms, params: SegmentationParams) -> bool:
    """Whether two pieces show one object's colours: mean CIELAB colours (`lab_a`, `lab_b`)
    within `rejoin_colour` and colour histograms (`histograms()`, asked for only then) within
    `rejoin_histogram` (1 - Bhattacharyya coefficient)."""
    if np.linalg.norm(lab_a - lab_b) >= params.rejoin_colour:
        return False
    if params.rejoin_histogram >= 1:
        return True
    ha, hb = histograms()
    return 1.0 - float(np.sqrt(ha * hb).sum()) < params.rejoin_histogram


def _colours_differ(crop: np.ndarray, a: np.ndarray, b: np.ndarray, params: SegmentationParams) -> bool:
    """Whether two pieces of one crop (bool masks) are two objects by their colours, as pieces
    cut at a crease must be to stay apart (`_one_objects_colours`)."""
    crop = np.ascontiguousarray(crop)  # a view of every n-th pixel: OpenCV copied it for each call
    masks = [m.view(np.uint8) for m in (a & ~b, b & ~a)]
    means = [cv2.mean(crop, mask=m)[:3] for m in masks]
    lab = cv2.cvtColor(np.float32([means]) / np.float32(255.0), cv2.COLOR_RGB2Lab)[0]

    def histograms() -> tuple[np.ndarray, np.ndarray]:  # the crop in CIELAB once for both (~1 ms a 160x130 crop)
        whole = _clipped_lab(crop)
        return _lab_histogram(whole, masks[0]), _lab_histogram(whole, masks[1])
    return not _one_objects_colours(lab[0], lab[1], histograms, params)


def _mask_instances(instance_mask: np.ndarray, params: SegmentationParams) -> list:
    """Instances of an id image in O(pixels) whatever it holds: one bincount for the areas, one
    `find_objects` pass for the boxes, and a per-instance mask only for the `max_objects`
    largest in range (a mask with 65,535 ids once held the worker 26 s with a pass per id)."""
    ids = np.asarray(instance_mask)
    if ids.dtype.kind not in "ui":
        raise ValueError(f"an instance mask holds integer ids, got dtype {ids.dtype}")
    if ids.dtype.kind == "i" and ids.size and ids.min() < 0:
        raise ValueError("instance ids must be >= 0 (0 = background)")
    if ids.dtype.itemsize > 2 and ids.size and ids.max() > 65535:
        raise ValueError(f"instance ids above 65535 are not supported, got {ids.max()}")
    ids = ids.astype(np.uint16, copy=False)
    areas = np.bincount(ids.ravel(), minlength=1)
    areas[0] = 0
    keep = np.flatnonzero((areas >= params.min_area) & (areas <= params.max_area))
    keep = keep[np.argsort(-areas[keep], kind="stable")][: params.max_objects]
    if not len(keep):
        return []
    boxes = ndimage.find_objects(ids, max_label=int(keep.max()))
    comps = []
    for inst in keep:
        sy, sx = boxes[inst - 1]
        comps.append((ids[sy, sx] == inst, (sx.start, sy.start, sx.stop - sx.start, sy.stop - sy.start),
                      int(areas[inst])))
    return comps


def _count(counts: dict[str, int], reason: str, n: int = 1) -> None:
    if n:
        counts[reason] = counts.get(reason, 0) + n


def extract_objects(color: np.ndarray, depth: np.ndarray | None, intrinsics: Intrinsics | None,
                    params: SegmentationParams | None = None, instance_mask: np.ndarray | None = None) -> Extraction:
    """Find the objects in one frame and cut their patches (all in one batch)."""
    t0 = time.perf_counter()
    params = params or SegmentationParams()
    check_inputs(color, depth, intrinsics, params, instance_mask)
    result = Extraction()
    # Depth mode segments and measures on every scale-th pixel: only the crop is cut at full size.
    s = grid_scale(params, color.shape[1]) if params.mode == "depth" else 1
    if s != params.scale:
        params = replace(params, scale=s)  # the steps below read the scale this frame runs at
    result.scale = s
    z = depth_to_metres(depth[::s, ::s]) if depth is not None else None
    K = intrinsics
    if intrinsics is not None and s > 1:
        K = Intrinsics(intrinsics.fx / s, intrinsics.fy / s, intrinsics.cx / s, intrinsics.cy / s)
    if params.mode == "full":
        H, W = color.shape[:2]
        comps = [(np.ones((H, W), bool), (0, 0, W, H), H * W)]
    elif params.mode == "mask":
        comps = _mask_instances(instance_mask, params)
    else:
        mask, result.plane, result.warning, height, support, off = _segment_depth(
            np.ascontiguousarray(z), K, params, color[::s, ::s], depth if s > 1 else None)
        comps = _components(mask, params, s * s)
        grid = color[::s, ::s]

        def differ(box: tuple[int, int, int, int], a: np.ndarray, b: np.ndarray) -> bool:
            x, y, w, h = box
            return _colours_differ(grid[y:y + h, x:x + w], a, b, params)
        dropped = 0
        if support is not None:
            # No piece of a segment that lies wholly off the support's outline (and its rim) can
            # stand on it (`stands_on`). Whole blobs off it went before the crease cut
            # (`near_support`); what a crease cut off a blob that touches it goes here, before
            # the vessel join could join it to a vessel.
            near = [c for c in comps if touches_support(c[0], c[1], *support)]
            dropped, comps = off + len(comps) - len(near), near
        if params.split_valleys and height is not None:
            comps, cuts = split_at_valleys(comps, height, -(-params.min_area // (s * s)), s * s, _split_at_cores)
            _count(result.rejected, "valley split", cuts)
        if params.rejoin_openings and result.plane is not None:
            comps, joined = rejoin_openings(comps, z, K, result.plane, differ)
            _count(result.rejected, "opening rejoined", joined)
        if support is not None:
            kept = [c for c in comps if stands_on(c[0], c[1], height, *support)]
            _count(result.rejected, "off support", dropped + len(comps) - len(kept))
            comps = kept
        if params.split_stacks and height is not None:
            comps, cuts = split_stacks(comps, height, z, K, result.plane, differ,
                                       -(-params.min_area // (2 * s * s)), s * s)
            _count(result.rejected, "stack split", cuts)
    # (mask, box, area, base: metres above the support, on: the index here of the segment it rests on, id)
    comps = [(*c, 0.0, None, i) if len(c) == 3 else (*c, i) for i, c in enumerate(comps)]
    comps.sort(key=lambda c: -c[2])  # largest first
    region = basis = None
    H, W = color.shape[:2]
    source = (color, params.padding, params.mask_background)  # each patch is cut when read (`DetectedObject.patch`)
    if s > 1 and comps and result.plane is not None:
        # The full-resolution rule is judged within the region all (upscaled) components lie in,
        # and computed around the kept objects alone (`_rules_around`), once they are all known.
        b = REFINE_BAND + 2
        region = (max(0, min(c[1][0] for c in comps) * s - b), max(0, min(c[1][1] for c in comps) * s - b),
                  min(W, max(c[1][0] + c[1][2] for c in comps) * s + b),
                  min(H, max(c[1][1] + c[1][3] for c in comps) * s + b))
    queue = [(m, bbox, area, 0, tuple(c)) for m, bbox, area, *c in comps]  # 0: cut at no radius yet (SPLIT_RADII)
    found = []  # (mask, box, the segment's id, the rest of its DetectedObject) of each object, in order
    while queue:
        m, bbox, area, splits, (base, on, cid) = queue.pop(0)
        if len(found) == params.max_objects:
            break
        x, y, w, h = bbox
        centroid = extent = area_m2 = pose = section = None
        if z is not None and K is not None:
            pts = K.segment_points(m, bbox, z[y:y + h, x:x + w])
            if len(pts):
                centroid, extent = surface_centroid_extent(pts)
                area_m2 = float(area * centroid[2] ** 2 / (intrinsics.fx * intrinsics.fy))
        if params.mode == "depth" and extent is not None:
            # Metric size: a table, a chair or a patch of wall is no graspable object, however it was cut.
            size = float(np.max(extent))
            parts = []
            while size > params.max_extent and params.split_large and not parts and splits < len(SPLIT_RADII):
                parts = _split_at_necks(m, bbox, float(centroid[2]), K.fx, SPLIT_RADII[splits],
                                        -(-params.min_area // (s * s)))
                splits += 1
            if parts:
                _count(result.rejected, "split")
                # In the queue by size among the others (largest first), each judged by size. Not
                # by the support check again: the segment stood on the support as a whole, and a
                # part alone need not (in the real GraspNet frame, that dropped the cracker box
                # standing at the table's edge beside the robot, its base hidden from the camera).
                queue = sorted(queue + [(pm, pb, pa * s * s, splits, (base, on, cid)) for pm, pb, pa in parts],
                               key=lambda c: -c[2])
                continue
            if size > params.max_extent or size < params.min_extent:
                _count(result.rejected, "too large" if size > params.max_extent else "too small")
                continue
            if result.plane is not None:  # only for a segment kept whole: its pose and section
                basis = plane_basis(result.plane) if basis is None else basis
                # An object on another's top is measured from that top (its own base), not the table.
                plane = result.plane if not base else result.plane - np.array([0, 0, 0, base])
                pose = pose_geometry(pts, plane, basis)
                section = None if pose is None else section_shape(pts, plane, pose[0], basis)
        if s > 1:
            m, bbox = _upscale(m, bbox, s, color.shape[:2])
        top, footprint = pose or (None, None)
        found.append((m, bbox, cid, dict(pixels=area, centroid=centroid, source=source, extent=extent, area_m2=area_m2,
                                          top=top, footprint=footprint, section=section, rests_on=on)))
    if region is not None and found:
        rules = _rules_around([f[1] for f in found], region, depth, intrinsics, result.plane, params)
        found = [(*_refine_edges(m, bbox, *rule), *rest) for (m, bbox, *rest), rule in zip(found, rules)]
    instances: dict[int, int] = {}  # a segment's id (its index before sorting) -> its object's instance
    for m, bbox, cid, fields in found:
        cut = bbox[0] < s or bbox[1] < s or bbox[0] + bbox[2] > W - s or bbox[1] + bbox[3] > H - s
        instances.setdefault(cid, len(result.objects))
        result.objects.append(DetectedObject(len(result.objects), bbox, m, truncated=cut, **fields))
    for obj in result.objects:  # the segment it rests on, as an instance (None where that one was dropped)
        if obj.rests_on is not None:
            obj.rests_on = instances.get(obj.rests_on)
    result.ms = (time.perf_counter() - t0) * 1000
    return result
