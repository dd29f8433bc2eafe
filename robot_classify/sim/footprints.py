"""Footprints on the table, for scenes whose objects touch as they do on a real table.

The default scenes place objects by bounding circles, so boxes stand apart by centimetres and
the segmenter parts them easily (92-96% found). On real tables objects stand in contact and on
each other, and most real objects not found are merged with a neighbour. A crowded layout
(`SceneRenderer.render(layout="crowded")`) moves each object along a direction until its
footprint meets a neighbour's: these are the polygons and the test it uses.
"""
from __future__ import annotations

import math

import numpy as np

from .object_catalog import ObjectSpec

MUG_BODY_RADIUS = 0.045  # pybullet_data's mug.obj at scale 1, its handle left out (it may touch a neighbour)
CIRCLE_SIDES = 20


def circle(rx: float, ry: float | None = None) -> np.ndarray:
    """A circle (or an ellipse with `ry`) as a CIRCLE_SIDES-gon about the origin, (N, 2) metres."""
    t = np.linspace(0, 2 * math.pi, CIRCLE_SIDES, endpoint=False)
    return np.stack([rx * np.cos(t), (rx if ry is None else ry) * np.sin(t)], 1)


def footprint(spec: ObjectSpec, yaw: float, lie: bool) -> np.ndarray:
    """The convex outline a product covers on the table, (N, 2) metres about its centre, turned
    by `yaw` as the renderer turns it."""
    p = spec.parts[0]
    if p.shape == "mesh":
        pts = circle(MUG_BODY_RADIUS * p.size[0])
    elif p.shape == "cylinder" and not lie:
        pts = circle(p.size[0])
    elif p.shape == "bottle" and not lie:
        pts = circle(p.size[0] / 2, p.size[1] / 2)
    else:  # a box, or anything lying: rolled about x, its height runs along y
        hx, hy = (p.size[0], p.size[1] / 2) if p.shape == "cylinder" else \
            (p.size[0] / 2, (p.size[2] if lie else p.size[1]) / 2)
        pts = np.array([[-hx, -hy], [hx, -hy], [hx, hy], [-hx, hy]])
    c, s = math.cos(yaw), math.sin(yaw)
    return pts @ np.array([[c, s], [-s, c]])


def _edge_normals(poly: np.ndarray) -> np.ndarray:
    """Unit normals of a polygon's edges, (N, 2): edge i runs from vertex i to vertex i + 1."""
    edges = np.roll(poly, -1, 0) - poly
    normals = np.stack([-edges[:, 1], edges[:, 0]], 1)
    return normals / np.linalg.norm(normals, axis=1, keepdims=True)


def overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two convex polygons (vertices in order) overlap: no edge normal of either
    separates them (the separating axis theorem)."""
    for poly in (a, b):
        normals = _edge_normals(poly)
        pa, pb = a @ normals.T, b @ normals.T
        if np.any((pa.max(0) < pb.min(0)) | (pb.max(0) < pa.min(0))):
            return False
    return True


def contact_distance(fixed: np.ndarray, moving: np.ndarray, direction: np.ndarray, far: float = 0.5,
                     tolerance: float = 1e-4) -> float:
    """How far from `fixed`'s centre (its vertices' mean) `moving` (about its own centre) must
    stand along the unit `direction` to just touch it, to `tolerance` metres (bisection: the
    footprints are convex, so they part once and for all along a ray)."""
    centre = fixed.mean(0)
    lo, hi = 0.0, far
    while hi - lo > tolerance:
        mid = (lo + hi) / 2
        if overlap(fixed, moving + centre + mid * direction):
            lo = mid
        else:
            hi = mid
    return hi


def fits_on_top(base: np.ndarray, top: np.ndarray) -> bool:
    """Whether `top` (about its centre) can stand centred on `base` with most of it supported:
    its widest reach is at most 1.6x the base's narrowest half-width (a soup can overhangs a
    SPAM tin's lid by a few millimetres each side, as in the real frames). What it overhangs
    onto is the caller's to check."""
    centre = base.mean(0)
    half_width = float(np.abs(((base - centre) * _edge_normals(base)).sum(1)).min())
    return float(np.linalg.norm(top, axis=1).max()) <= 1.6 * half_width
