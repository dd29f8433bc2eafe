"""From an RGB-D frame to object patches: tabletop segmentation, 32x32 crops, 3D centroids.

Modes:
  depth  fit the dominant support plane (RANSAC on a sparse grid of back-projected points),
         keep points between min_height and max_height above it, cut the mask at depth
         discontinuities (so touching objects at different depths split), clean it with
         morphology and take connected components. No plane -> depth-range segmentation,
         reported in `Extraction.warning`.
  mask   an instance-id image from another segmenter (0 = background).
  full   the whole image is one patch (pre-cropped, PROPS-style input).

`crop_patch` is the one place a patch is cut and resized: the dataset generator and the
node both call it, so training crops and runtime crops are made the same way.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from .camera import Intrinsics, depth_to_metres, surface_centroid

MODES = ("depth", "mask", "full")
PATCH_SIZE = 32


@dataclass
class SegmentationParams:
    mode: str = "depth"
    min_depth: float = 0.15  # metres
    max_depth: float = 3.0
    min_height: float = 0.012  # above the support plane, metres
    max_height: float = 0.5
    plane_threshold: float = 0.008  # RANSAC inlier distance, metres
    ransac_iterations: int = 96
    depth_jump: float = 0.03  # metres (at 1 m, scaled with depth) between neighbouring samples: another object
    min_area: int = 120  # pixels
    max_area: int = 640 * 480 // 3
    max_objects: int = 20
    scale: int = 1  # segment on every scale-th pixel (2: 320x240 for VGA, ~2.5x faster); boxes come back full size
    padding: float = 0.15  # fraction of the box side added on each side of the square crop
    mask_background: bool = True  # grey out pixels outside the object mask (as the training crops)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"segmentation mode must be one of {MODES}, got {self.mode!r}")
        if not 0 <= self.min_depth < self.max_depth:
            raise ValueError(f"need 0 <= min_depth < max_depth, got {self.min_depth}, {self.max_depth}")
        if not 0 <= self.min_height < self.max_height:
            raise ValueError(f"need 0 <= min_height < max_height, got {self.min_height}, {self.max_height}")
        if self.min_area < 1 or self.max_area < self.min_area:
            raise ValueError(f"need 1 <= min_area <= max_area, got {self.min_area}, {self.max_area}")
        if self.scale not in (1, 2, 4):
            raise ValueError(f"scale must be 1, 2 or 4, got {self.scale}")
        if self.max_objects < 1:
            raise ValueError(f"max_objects must be >= 1, got {self.max_objects}")
        if not 0 <= self.padding <= 2:
            raise ValueError(f"padding must be in [0, 2], got {self.padding}")
        if self.plane_threshold <= 0 or self.depth_jump <= 0 or self.ransac_iterations < 1:
            raise ValueError("plane_threshold, depth_jump and ransac_iterations must be positive")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class DetectedObject:
    instance: int
    bbox: tuple[int, int, int, int]  # x_offset, y_offset, width, height (sensor_msgs/RegionOfInterest)
    mask: np.ndarray  # bool, bbox-local (height, width)
    pixels: int
    centroid: np.ndarray | None  # (x, y, z) metres, camera frame; None without valid depth
    patch: np.ndarray  # (32, 32, 3) uint8 RGB

    def bbox_dict(self) -> dict[str, int]:
        return dict(zip(("x_offset", "y_offset", "width", "height"), map(int, self.bbox)))

    def centroid_dict(self) -> dict[str, float] | None:
        return None if self.centroid is None else dict(zip("xyz", map(float, self.centroid)))


@dataclass
class Extraction:
    objects: list[DetectedObject] = field(default_factory=list)
    plane: np.ndarray | None = None  # (a, b, c, d): a x + b y + c z + d = 0, normal towards the camera
    warning: str | None = None
    ms: float = 0.0

    @property
    def patches(self) -> np.ndarray:
        """All patches of the frame as one (N, 32, 32, 3) batch for the classifier."""
        if not self.objects:
            return np.zeros((0, PATCH_SIZE, PATCH_SIZE, 3), np.uint8)
        return np.stack([o.patch for o in self.objects])


def crop_patch(color: np.ndarray, bbox: tuple[int, int, int, int], padding: float = 0.15,
               mask: np.ndarray | None = None, size: int = PATCH_SIZE) -> np.ndarray:
    """Square crop around bbox (+padding per side), clipped at the border, INTER_AREA to size x size.

    `mask` (bbox-local bool) greys out pixels outside the object when given.
    """
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
    if mask is not None:
        full = np.zeros((y1c - y0c, x1c - x0c), bool)
        mx0, my0 = x - x0c, y - y0c
        sy = slice(max(0, my0), min(full.shape[0], my0 + h))
        sx = slice(max(0, mx0), min(full.shape[1], mx0 + w))
        full[sy, sx] = mask[sy.start - my0:sy.stop - my0, sx.start - mx0:sx.stop - mx0]
        crop = np.where(full[:, :, None], crop, np.uint8(128))
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def check_frame(color: np.ndarray, depth: np.ndarray | None) -> None:
    if color.ndim != 3 or color.shape[2] != 3 or color.dtype != np.uint8:
        raise ValueError(f"colour must be uint8 (H, W, 3) RGB, got {color.dtype} {color.shape}")
    if color.shape[0] == 0 or color.shape[1] == 0:
        raise ValueError(f"empty colour image {color.shape}")
    if depth is not None and depth.shape[:2] != color.shape[:2]:
        raise ValueError(f"depth {depth.shape[:2]} and colour {color.shape[:2]} differ in size; "
                         "the depth image must be aligned to the colour image")


def fit_plane(points: np.ndarray, threshold: float, iterations: int, rng: np.random.Generator
              ) -> tuple[np.ndarray | None, float]:
    """RANSAC plane on (N, 3) points, all hypotheses scored in one vectorised pass, then refined
    by least squares on the inliers. Returns (plane or None, inlier fraction)."""
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
    counts = (np.abs(points @ normals.T.astype(np.float32) + d.astype(np.float32)) < threshold).sum(0)
    best = int(np.argmax(counts))
    inliers = points[np.abs(points @ normals[best] + d[best]) < threshold].astype(np.float64)
    centre = inliers.mean(0)
    normal = np.linalg.svd(inliers - centre, full_matrices=False)[2][-1]
    plane = np.append(normal, -normal @ centre)
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


def _depth_edges(z: np.ndarray, jump: float) -> np.ndarray:
    """Pixels where depth jumps by more than `jump` (scaled with distance) to a valid neighbour.

    Holes (NaN) are not edges: sensors drop pixels on dark or shiny surfaces all the time.
    """
    valid = np.isfinite(z)
    filled = np.where(valid, z, 0.0).astype(np.float32)
    limit = jump * np.maximum(filled, 1.0)
    edge = np.zeros(z.shape, bool)
    for axis in (0, 1):
        d = np.abs(np.diff(filled, axis=axis))
        both = valid[1:, :] & valid[:-1, :] if axis == 0 else valid[:, 1:] & valid[:, :-1]
        cut = both & (d > (limit[1:, :] if axis == 0 else limit[:, 1:]))
        if axis == 0:
            edge[1:, :] |= cut
            edge[:-1, :] |= cut
        else:
            edge[:, 1:] |= cut
            edge[:, :-1] |= cut
    return edge


def _components(mask: np.ndarray, params: SegmentationParams, pixel_area: int = 1
                ) -> list[tuple[np.ndarray, tuple, int]]:
    """Connected components within the area limits (areas in full-resolution pixels).

    A component whose box lies mostly (>= 70%) inside a larger component's box joins it: the
    inside of a mug or a bowl is cut from its rim by the depth jump, and belongs to it.
    """
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    order = sorted(range(1, n), key=lambda i: -stats[i, 4])
    groups: list[list[int]] = []
    boxes: list[list[int]] = []  # x0, y0, x1, y1 per group
    for i in order:
        x, y, w, h, _ = stats[i]
        for g, (gx0, gy0, gx1, gy1) in enumerate(boxes):
            inter = max(0, min(x + w, gx1) - max(x, gx0)) * max(0, min(y + h, gy1) - max(y, gy0))
            if inter >= 0.7 * w * h:
                groups[g].append(i)
                boxes[g] = [min(gx0, x), min(gy0, y), max(gx1, x + w), max(gy1, y + h)]
                break
        else:
            groups.append([i])
            boxes.append([x, y, x + w, y + h])
    out = []
    for members, (x0, y0, x1, y1) in zip(groups, boxes):
        area = int(stats[members, 4].sum()) * pixel_area
        if params.min_area <= area <= params.max_area:
            m = np.isin(labels[y0:y1, x0:x1], members)
            out.append((m, (int(x0), int(y0), int(x1 - x0), int(y1 - y0)), area))
    return out


def _upscale(comps: list, s: int, shape: tuple[int, int]) -> list:
    """Components found on a 1/s grid -> full-resolution boxes and (nearest-neighbour) masks."""
    if s == 1:
        return comps
    H, W = shape
    out = []
    for m, (x, y, w, h), area in comps:
        X, Y = x * s, y * s
        Wf, Hf = min(w * s, W - X), min(h * s, H - Y)
        big = np.repeat(np.repeat(m, s, axis=0), s, axis=1)[:Hf, :Wf]
        out.append((big, (X, Y, Wf, Hf), area))
    return out


def segment_depth(z: np.ndarray, K: Intrinsics, params: SegmentationParams
                  ) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    """Object mask (bool) from metric depth; plus the plane and a warning if it fell back."""
    H, W = z.shape
    in_range = (z >= params.min_depth) & (z <= params.max_depth)  # NaN compares False
    step = max(1, int(round(np.sqrt(H * W / 3000))))
    zs = z[::step, ::step]
    vs, us = np.nonzero((zs >= params.min_depth) & (zs <= params.max_depth))
    pts = K.backproject(us * step, vs * step, zs[vs, us]).astype(np.float32)
    plane, frac = fit_plane(pts, params.plane_threshold, params.ransac_iterations,
                            np.random.default_rng(params.seed))
    warning = None
    if plane is None or frac < 0.15:
        warning = "no support plane found; segmenting by depth range only"
        mask = in_range
        plane = None
    else:
        h = _height_map(z, plane, K)
        mask = in_range & (h > params.min_height) & (h < params.max_height)
    mask &= ~_depth_edges(z, params.depth_jump)
    # Fill sensor holes inside objects: a hole joins the mask when closing reaches it and the
    # valid depths around it agree. Holes along a boundary between two depths (where sensors
    # drop pixels most) have neighbours far apart in depth and stay cuts, so objects don't merge.
    holes = ~np.isfinite(z)
    kernel = np.ones((5, 5), np.uint8)
    hi = cv2.dilate(np.where(holes, 0.0, z).astype(np.float32), kernel)
    lo = cv2.erode(np.where(holes, 1e6, z).astype(np.float32), kernel)
    smooth = (hi - lo) < params.depth_jump * np.maximum(hi, 1.0)
    closed = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, kernel).astype(bool)
    mask |= closed & holes & smooth
    # Remove speckle; at reduced resolution a 3x3 opening would cut real 2-3 pixel bridges.
    if params.scale == 1:
        mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    return mask.astype(bool), plane, warning


def extract_objects(color: np.ndarray, depth: np.ndarray | None, intrinsics: Intrinsics | None,
                    params: SegmentationParams | None = None, instance_mask: np.ndarray | None = None) -> Extraction:
    """Find the objects in one frame and cut their patches (all in one batch)."""
    t0 = time.perf_counter()
    params = params or SegmentationParams()
    check_frame(color, depth)
    z = depth_to_metres(depth) if depth is not None else None
    result = Extraction()
    if params.mode == "full":
        H, W = color.shape[:2]
        comps = [(np.ones((H, W), bool), (0, 0, W, H), H * W)]
    elif params.mode == "mask":
        if instance_mask is None:
            raise ValueError("mask mode needs an instance mask image")
        if instance_mask.shape[:2] != color.shape[:2]:
            raise ValueError(f"mask {instance_mask.shape[:2]} and colour {color.shape[:2]} differ in size")
        comps = []
        for inst in np.unique(instance_mask):
            if inst == 0:
                continue
            vs, us = np.nonzero(instance_mask == inst)
            x, y, w, h = int(us.min()), int(vs.min()), int(np.ptp(us) + 1), int(np.ptp(vs) + 1)
            if params.min_area <= len(us) <= params.max_area:
                comps.append((instance_mask[y:y + h, x:x + w] == inst, (x, y, w, h), len(us)))
    else:
        if z is None or intrinsics is None:
            raise ValueError("depth mode needs a depth image and camera intrinsics")
        s = params.scale
        small_K = Intrinsics(intrinsics.fx / s, intrinsics.fy / s, intrinsics.cx / s, intrinsics.cy / s)
        mask, result.plane, result.warning = segment_depth(np.ascontiguousarray(z[::s, ::s]), small_K, params)
        comps = _upscale(_components(mask, params, s * s), s, color.shape[:2])
    comps.sort(key=lambda c: -c[2])  # largest first
    for i, (m, bbox, area) in enumerate(comps[: params.max_objects]):
        x, y, w, h = bbox
        centroid = None
        if z is not None and intrinsics is not None:
            zz = z[y:y + h, x:x + w]
            vs, us = np.nonzero(m & np.isfinite(zz))
            if len(vs):
                pts = intrinsics.backproject(us + x, vs + y, zz[vs, us]).astype(np.float64)
                centroid = surface_centroid(pts)
        patch = crop_patch(color, bbox, params.padding, m if params.mask_background else None)
        result.objects.append(DetectedObject(i, bbox, m, area, centroid, patch))
    result.ms = (time.perf_counter() - t0) * 1000
    return result
