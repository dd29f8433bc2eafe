"""Pinhole intrinsics and depth back-projection (camera optical frame: x right, y down, z forward)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Bounds on intrinsics read from messages: far beyond any real camera (a 100-megapixel sensor
# behind a 1,000 mm lens has fx ~ 3e5), small enough that back-projection cannot overflow.
MAX_PIXELS = 1e6
# The least focal length, as a share of the image's side, of a camera that could have taken it:
# 0.1 is a field of view of 157 degrees (a fisheye's equidistant fx is about a third of its width).
MIN_FOCAL = 0.1


@dataclass(frozen=True)
class Intrinsics:
    fx: float
    fy: float
    cx: float
    cy: float

    def __post_init__(self) -> None:
        for name in ("fx", "fy", "cx", "cy"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"intrinsics {name} is not finite: {getattr(self, name)}")
        if not (0 < self.fx <= MAX_PIXELS and 0 < self.fy <= MAX_PIXELS):
            raise ValueError(f"focal lengths must be > 0 and <= {MAX_PIXELS:g} pixels, got fx={self.fx}, fy={self.fy}")
        if not (abs(self.cx) <= MAX_PIXELS and abs(self.cy) <= MAX_PIXELS):
            raise ValueError(f"principal point must be within {MAX_PIXELS:g} pixels, got cx={self.cx}, cy={self.cy}")

    @classmethod
    def from_k(cls, k: "list[float] | np.ndarray") -> "Intrinsics":
        """From sensor_msgs/CameraInfo.k (row-major 3x3)."""
        k = np.asarray(k, dtype=np.float64).ravel()
        if k.size != 9:
            raise ValueError(f"camera matrix K must have 9 values, got {k.size}")
        return cls(float(k[0]), float(k[4]), float(k[2]), float(k[5]))

    def check_image(self, width: int, height: int) -> str | None:
        """ValueError where these cannot be the intrinsics of a `width` x `height` image; a warning
        where they are unlikely to be. Found from outside: camera_info with cx = 1e5, or fx = 1,
        gave empty frames without a word, and K of a camera at twice the resolution changed the
        labels quietly (a camera_info whose width and height are 0 is not checked against the image)."""
        size = f"the {width}x{height} image"
        if not (0 < self.cx < width and 0 < self.cy < height):
            raise ValueError(f"principal point ({self.cx:g}, {self.cy:g}) is outside {size}: is camera_info's K "
                             "for this image's size?")
        if self.fx < MIN_FOCAL * width or self.fy < MIN_FOCAL * height:
            raise ValueError(f"focal lengths fx={self.fx:g}, fy={self.fy:g} px would give {size} a field of view of "
                             f"over {2 * math.degrees(math.atan(0.5 / MIN_FOCAL)):.0f} degrees: is camera_info's K in "
                             "pixels of this image?")
        if not (width / 4 <= self.cx <= 3 * width / 4 and height / 4 <= self.cy <= 3 * height / 4):
            return (f"principal point ({self.cx:g}, {self.cy:g}) is far from the centre of {size}: is camera_info's "
                    "K for this image's size?")
        return None

    @classmethod
    def parse(cls, text: str) -> "Intrinsics":
        """'FX,FY,CX,CY' as given on the command line."""
        try:
            values = [float(v) for v in text.split(",")]
        except ValueError:
            raise ValueError(f"intrinsics must be FX,FY,CX,CY numbers, got {text!r}") from None
        if len(values) != 4:
            raise ValueError(f"intrinsics must be FX,FY,CX,CY, got {text!r}")
        return cls(*values)

    def backproject(self, u: np.ndarray, v: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Pixels (u, v) at depth z (metres) -> (N, 3) points in the camera frame."""
        return np.stack([(u - self.cx) * z / self.fx, (v - self.cy) * z / self.fy, z], axis=-1)

    def segment_points(self, mask: np.ndarray, box: tuple[int, int, int, int], z: np.ndarray,
                       most: int | None = None) -> np.ndarray:
        """A segment's (N, 3) points in the camera frame, in scan order: `mask` and `z` (metres,
        NaN where unknown) are its box (x, y, w, h) of this camera's image, pixels without depth
        left out. `most`: every (N // most)-th of them only, the stride picked before they are
        computed (a shape fitted to a few hundred points needs no more)."""
        vs, us = np.nonzero(mask & np.isfinite(z))
        if most is not None and len(vs) >= 2 * most:
            stride = len(vs) // most
            vs, us = vs[::stride], us[::stride]
        return self.backproject(us + box[0], vs + box[1], z[vs, us])


def check_depth_image(depth: np.ndarray) -> None:
    """What `depth_to_metres` takes: a 2-D image of uint16 millimetres or float metres."""
    if depth.ndim != 2:
        raise ValueError(f"depth must be a 2-D image (uint16 millimetres or float metres), got shape {depth.shape}")
    if depth.dtype != np.uint16 and depth.dtype.kind != "f":
        raise ValueError(f"depth must be uint16 millimetres or float metres, got dtype {depth.dtype}")


def depth_to_metres(depth: np.ndarray) -> np.ndarray:
    """uint16 millimetres or float metres -> float32 metres with NaN where invalid (0, NaN, inf)."""
    depth = np.asarray(depth)
    check_depth_image(depth)
    if depth.dtype == np.uint16:  # always finite: only 0 is invalid (one pass less per frame)
        z = depth.astype(np.float32)
        z *= np.float32(1e-3)
        z[depth == 0] = np.nan
        return z
    z = depth.astype(np.float32, copy=True)
    z[~np.isfinite(z) | (z <= 0)] = np.nan
    return z


def surface_centroid(points: np.ndarray) -> np.ndarray | None:
    """Per-axis median of an object's visible surface points: robust to depth noise and to
    mask pixels that bleed onto the background. None when there are no points."""
    return surface_centroid_extent(points)[0]


EXTENT_PERCENTILES = (2.0, 98.0)


def surface_extent(points: np.ndarray, percentiles: tuple[float, float] = EXTENT_PERCENTILES) -> np.ndarray | None:
    """Per-axis size of an object's visible surface points (metres, camera optical frame): the
    98th minus the 2nd percentile, so that the few mask pixels that bleed onto the table or the
    background do not stretch the box, as a min/max would. The camera sees only the front of an
    object: the z size is the depth range of that surface, less than the object's true depth.
    None when there are no points."""
    return surface_centroid_extent(points, percentiles)[1]


def surface_centroid_extent(points: np.ndarray, percentiles: tuple[float, float] = EXTENT_PERCENTILES
                            ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(`surface_centroid`, `surface_extent`) of (N, 3) points from one partial sort per axis.

    The same numbers as `np.median` and `np.percentile` (linear interpolation, numpy's own
    arithmetic), without their generic machinery and second partition: the segmenter asks
    for both for every object of every frame, and there they cost ~3 ms per 10-object frame
    on a 2-core CPU (bench/pipeline_bench.py)."""
    points = np.asarray(points)
    n = len(points)
    if n == 0:
        return None, None
    cols = np.array(points.T, dtype=np.result_type(points.dtype, np.float64), order="C")  # a copy: sorted in place
    virtual = (n - 1) * (np.asarray(percentiles, np.float64) / 100)
    lo = np.floor(virtual)
    gamma = virtual - lo
    lo = lo.astype(np.intp)
    hi = np.minimum(lo + 1, n - 1)
    middle = [n // 2 - 1, n // 2] if n % 2 == 0 else [n // 2]
    cols.partition(np.unique(np.concatenate([lo, hi, middle])), axis=1)
    a, b = cols[:, lo], cols[:, hi]
    diff = b - a
    # numpy's _lerp: from the nearer end, so that gamma 0 and 1 give the samples themselves
    q = np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)
    return cols[:, middle].mean(1), q[:, 1] - q[:, 0]
