"""A mug, a cup or a bowl seen from above comes apart at its own rim: join it again.

Seen from above, the front rim of an open vessel stands nearer the camera than the inside wall
just behind it in the image, and the depth-jump cut (`patches._far_side_of_jumps`), which parts
an object from whatever stands behind it, parts the vessel's front wall from its own inside and
back rim. Both pieces then come out as objects: on a real YCB-Video desk the red mug was two
detections, both named `mug`, one of them counted a false name; in the rendered crowded scenes
most mugs were two pieces and neither matched the mug.

Two pieces are one vessel when their shapes on the support say so:
  * the near piece's points lie on a circle of a vessel's radius (`RADIUS`) whose centre is
    beyond them, seen from the camera: the outside of a round wall;
  * the far piece's points lie on a circle whose centre is before them: the inside of one;
  * most of the far piece lies within the near one's circle (`INSIDE` of its points within
    `REACH` radii of its centre), where a second can standing behind the first lies beyond it;
  * the two show one object's colours (as crease-cut pieces must, `patches._one_objects_colours`):
    a marker standing in the mug stays a marker.
They need not touch in the image: the floor inside, too low to be an object's, lies between them.
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from .camera import Intrinsics
from .support import fit_circle, plane_basis

RADIUS = (0.015, 0.12)  # metres: a vessel's radius, an espresso cup's to a mixing bowl's
CIRCLE_RMS = 0.3  # of the radius: the points' RMS distance from the circle (a mug's handle and rim are in it)
REACH = 1.3  # radii from the near piece's centre...
INSIDE = 0.7  # ...that hold this share of the far piece's points
MAX_POINTS = 400  # points per piece for the circles: an even stride over it

Component = tuple  # (mask local to its box on the grid, (x, y, w, h), area in full-resolution pixels)


def _arc(component: Component, z: np.ndarray, K: Intrinsics, basis: np.ndarray
         ) -> tuple[np.ndarray, np.ndarray, float, int] | None:
    """The piece's points on the support (camera below the origin), the circle through them
    (centre, radius) and which side of them that centre lies, seen from the camera: +1 beyond
    (the outside of a round wall), -1 before (its inside), 0 for no round wall."""
    m, (x, y, w, h), _ = component
    points = K.segment_points(m, component[1], z[y:y + h, x:x + w], most=MAX_POINTS)
    if len(points) < 20:
        return None
    flat = points.astype(np.float64) @ basis[:, 1:]
    centre, radius, rms = fit_circle(flat)
    if not RADIUS[0] <= radius <= RADIUS[1] or rms > CIRCLE_RMS * radius:
        return flat, centre, radius, 0
    side = np.sign(np.linalg.norm(centre) - np.median(np.linalg.norm(flat, axis=1)))
    return flat, centre, radius, int(side)


def _in_box(c: Component, box: tuple[int, int, int, int]) -> np.ndarray:
    """`c`'s mask within `box`, which holds its own."""
    m, (x, y, w, h), _ = c
    out = np.zeros((box[3], box[2]), bool)
    out[y - box[1]:y - box[1] + h, x - box[0]:x - box[0] + w] = m
    return out


def _joint_box(a: Component, b: Component) -> tuple[int, int, int, int]:
    (xa, ya, wa, ha), (xb, yb, wb, hb) = a[1], b[1]
    x0, y0 = min(xa, xb), min(ya, yb)
    return x0, y0, max(xa + wa, xb + wb) - x0, max(ya + ha, yb + hb) - y0


def _union(a: Component, b: Component) -> Component:
    box = _joint_box(a, b)
    return _in_box(a, box) | _in_box(b, box), box, a[2] + b[2]


def rejoin_openings(comps: list[Component], z: np.ndarray, K: Intrinsics, plane: np.ndarray,
                    differ: Callable[[tuple[int, int, int, int], np.ndarray, np.ndarray], bool]
                    ) -> tuple[list[Component], int]:
    """`comps` with each vessel's inside joined to its front wall, and how many were joined.
    `z`: metres on the segmentation grid, `K` its intrinsics; `differ(box, a, b)`: whether the
    pieces `a` and `b` (masks within `box`) show different objects' colours."""
    if len(comps) < 2:
        return comps, 0
    basis = plane_basis(plane).astype(np.float64)
    arcs = [_arc(c, z, K, basis) for c in comps]
    near = [i for i, a in enumerate(arcs) if a is not None and a[3] > 0]
    far = [i for i, a in enumerate(arcs) if a is not None and a[3] < 0]
    into: dict[int, int] = {}  # far piece -> the near piece it joins
    for f in far:
        flat = arcs[f][0]
        for n in near:
            _, centre, radius, _ = arcs[n]
            if (np.linalg.norm(flat - centre, axis=1) < REACH * radius).mean() < INSIDE:
                continue
            box = _joint_box(comps[f], comps[n])
            if differ(box, _in_box(comps[f], box), _in_box(comps[n], box)):
                continue
            into[f] = n
            break
    if not into:
        return comps, 0
    out = list(comps)
    for f, n in into.items():
        out[n] = _union(out[n], comps[f])
    return [c for i, c in enumerate(out) if i not in into], len(into)
