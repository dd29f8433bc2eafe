"""Depth and colour of boxes, cans and mugs on a floor, ray-cast pixel by pixel as a
RealSense-like camera (600 px focal length, VGA) sees them: scenes whose geometry a test knows
exactly (runtime.stacks, runtime.openings)."""
from __future__ import annotations

import numpy as np

from robot_classify.runtime.camera import Intrinsics

K = Intrinsics(600.0, 600.0, 320.0, 240.0)
H, W = 480, 640
FLOOR = (120, 110, 100)


def rays(down: float, K: Intrinsics = K, shape: tuple[int, int] = (H, W)) -> np.ndarray:
    """Each pixel's viewing ray in the world (z up, y away from the camera) of a camera (`K`,
    image `shape`) looking `down` degrees down: camera x right, y down, z forward."""
    v, u = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    camera = np.stack([(u - K.cx) / K.fx, (v - K.cy) / K.fy, np.ones_like(u)], -1)
    c, s = np.cos(np.deg2rad(down)), np.sin(np.deg2rad(down))
    return camera @ np.array([[1, 0, 0], [0, -s, c], [0, -c, -s]]).T


def _cylinder(d: np.ndarray, o: np.ndarray, xc: float, yc: float, r: float) -> tuple[np.ndarray, np.ndarray]:
    """Where each ray meets the vertical cylinder of radius `r` about (xc, yc): the near and the
    far crossing (inf where it misses)."""
    a = d[..., 0] ** 2 + d[..., 1] ** 2
    b = 2 * (d[..., 0] * (o[0] - xc) + d[..., 1] * (o[1] - yc))
    disc = b * b - 4 * a * ((o[0] - xc) ** 2 + (o[1] - yc) ** 2 - r * r)
    root = np.sqrt(np.maximum(disc, 0))
    return (np.where(disc >= 0, (-b - root) / (2 * a), np.inf), np.where(disc >= 0, (-b + root) / (2 * a), np.inf))


def scene(boxes: list = (), cans: list = (), mugs: list = (), height: float = 0.7, down: float = 45.0
          ) -> tuple[np.ndarray, np.ndarray]:
    """(colour, depth uint16 mm) of a camera `height` m above the floor looking `down` degrees
    down (world z up, y away from the camera; x, y of an object measured from where the optical
    axis meets the floor) at axis-aligned `boxes` (centre x, y, z; half sizes; colour), upright
    closed `cans` (x, y, base z, height, radius, colour) and open `mugs` (x, y, height, radius,
    wall, floor height inside, colour[, colour inside]) standing on the floor."""
    d = rays(down)
    o = np.array([0.0, 0.0, height])
    y0 = height / np.tan(np.deg2rad(down))  # where the optical axis meets the floor
    best = np.where(d[..., 2] < 0, -height / np.minimum(d[..., 2], -1e-9), np.inf)
    color = np.empty((H, W, 3), np.uint8)
    color[:] = FLOOR

    def put(t: np.ndarray, hit: np.ndarray, rgb) -> None:
        nonlocal best
        hit = hit & (t > 0) & (t < best)
        best = np.where(hit, t, best)
        color[hit] = rgb

    def disc(z: float, xc: float, yc: float, r_in: float, r_out: float, rgb) -> None:
        t = (z - o[2]) / np.minimum(d[..., 2], -1e-9)
        rr = (o[0] + t * d[..., 0] - xc) ** 2 + (o[1] + t * d[..., 1] - yc) ** 2
        put(t, (rr <= r_out * r_out) & (rr >= r_in * r_in), rgb)

    for centre, half, rgb in boxes:
        lo = o - (np.array(centre) + [0, y0, 0])
        with np.errstate(divide="ignore", invalid="ignore"):
            t1, t2 = (-np.array(half) - lo) / d, (np.array(half) - lo) / d
        tn, tf = np.minimum(t1, t2).max(-1), np.maximum(t1, t2).min(-1)
        put(tn, tn <= tf, rgb)
    for xc, yc, z0, hc, r, rgb in cans:
        near, _ = _cylinder(d, o, xc, yc + y0, r)
        z = o[2] + near * d[..., 2]
        put(near, (z >= z0) & (z <= z0 + hc), rgb)
        disc(z0 + hc, xc, yc + y0, 0.0, r, rgb)
    for xc, yc, hc, r, wall, inside, rgb, *within in mugs:
        rgb_in = within[0] if within else rgb
        near, _ = _cylinder(d, o, xc, yc + y0, r)
        z = o[2] + near * d[..., 2]
        put(near, (z >= 0) & (z <= hc), rgb)  # the outside wall
        _, far = _cylinder(d, o, xc, yc + y0, r - wall)
        z = o[2] + far * d[..., 2]
        put(far, (z >= inside) & (z <= hc), rgb_in)  # the inside wall, seen through the opening
        disc(hc, xc, yc + y0, r - wall, r, rgb)  # the rim
        disc(inside, xc, yc + y0, 0.0, r - wall, rgb_in)  # the floor inside
    return color, np.clip(np.round(best * 1000), 0, 65535).astype(np.uint16)
