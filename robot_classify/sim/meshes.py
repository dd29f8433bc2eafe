"""Boxes and cylinders as OBJ meshes whose texture coordinates show a packaging design the way
the real product carries it.

pybullet's own GEOM_BOX and GEOM_CYLINDER come with texture coordinates of their own: a box face
shows an upside-down quarter of the image, and a cylinder's side one row of it smeared
diagonally around the can (measured with a texture that encodes its own u and v). A soup can's
red top half then rendered as a red left half, and the bands of every design went missing. A
mesh written here maps the design once over each side face of a box, right way up, and around a
cylinder (repeated so that the print keeps its proportions); lids and box tops take plain
colours from a strip below the design (`atlas`).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

STRIP = 32  # rows of plain colour under the design: a cylinder's lids (left half), a box's top and bottom (right)
DESIGN = 256  # the design's rows and columns in the atlas
_V_LID, _V_TOP = (0.25, 0.5 * STRIP / (DESIGN + STRIP)), (0.75, 0.5 * STRIP / (DESIGN + STRIP))
_V0 = STRIP / (DESIGN + STRIP)  # the design's lowest v (OBJ v = 1 is the image's top row)


def wraps(radius: float, height: float) -> int:
    """How many times a design goes around a cylinder: the whole number of repeats nearest the
    circumference over the height, so that a square design keeps roughly its proportions on cans
    (Campbell's 2, Master Chef 2). A thin marker still takes it once, squeezed to half its width."""
    return max(1, round(2 * math.pi * radius / height))


def atlas(design: np.ndarray, lid: tuple[int, int, int], top: tuple[int, int, int], repeats: int = 1) -> np.ndarray:
    """The texture image a mesh of this module reads (BGR, as written to PNG): the design
    (repeated `repeats` times side by side, squeezed back into DESIGN columns) over a strip of
    the lid colour (left) and the top colour (right)."""
    tiled = np.concatenate([design] * repeats, axis=1) if repeats > 1 else design
    body = cv2.resize(tiled, (DESIGN, DESIGN), interpolation=cv2.INTER_AREA)
    strip = np.empty((STRIP, DESIGN, 3), np.uint8)
    strip[:, :DESIGN // 2], strip[:, DESIGN // 2:] = lid, top
    return np.concatenate([body, strip], axis=0)


def _obj(vertices: list, uvs: list, normals: list, faces: list) -> str:
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
    lines += [f"vt {u:.6f} {v:.6f}" for u, v in uvs]
    lines += [f"vn {x:.6f} {y:.6f} {z:.6f}" for x, y, z in normals]
    lines += ["f " + " ".join(f"{v + 1}/{t + 1}/{n + 1}" for v, t, n in face) for face in faces]
    return "\n".join(lines) + "\n"


def cylinder_obj(radius: float, height: float, segments: int = 32) -> str:
    """A closed cylinder centred on its origin, axis z: the design around its side (top of the
    design at the top), the lid colour on both ends."""
    return oval_obj(radius, radius, ((1.0, -height / 2), (1.0, height / 2)), segments)


def oval_obj(half_x: float, half_y: float, profile: Sequence[tuple[float, float]], segments: int = 32) -> str:
    """A closed body of oval section about z, its half-widths scaled along the height by
    `profile` ((scale, z) from the bottom up): a can (one scale), or a squeeze bottle that narrows
    to its shoulders (the mustard bottle, which real cameras see as no box). The design goes
    around the side (top of the design at the top), the lid colour on both ends."""
    rings = len(profile)
    if rings < 2 or any(b[1] <= a[1] for a, b in zip(profile, profile[1:])):
        raise ValueError(f"a profile needs at least two (scale, z) points with z rising, got {list(profile)}")
    v, t, n, f = [], [], [], []
    z0, z1 = profile[0][1], profile[-1][1]
    slopes = [(profile[min(k + 1, rings - 1)][0] - profile[max(k - 1, 0)][0])
              / (profile[min(k + 1, rings - 1)][1] - profile[max(k - 1, 0)][1]) for k in range(rings)]
    for i in range(segments + 1):  # the seam's column twice: u 0 and u 1
        a = 2 * math.pi * i / segments
        x, y = math.cos(a), math.sin(a)
        for (s, z), ds in zip(profile, slopes):
            v.append((half_x * s * x, half_y * s * y, z))
            t.append((i / segments, _V0 + (1.0 - _V0) * (z - z0) / (z1 - z0)))
            # outward normal of (hx s(z) cos a, hy s(z) sin a, z): (hy cos a, hx sin a, -hx hy s'(z))
            nx, ny, nz = half_y * x, half_x * y, -half_x * half_y * ds
            norm = math.sqrt(nx * nx + ny * ny + nz * nz)
            n.append((nx / norm, ny / norm, nz / norm))
    for i in range(segments):
        for k in range(rings - 1):
            b0, t0, b1, t1 = rings * i + k, rings * i + k + 1, rings * (i + 1) + k, rings * (i + 1) + k + 1
            f += [((b0, b0, b0), (b1, b1, b1), (t1, t1, t1)), ((b0, b0, b0), (t1, t1, t1), (t0, t0, t0))]
    lid_uv, up, down = len(t), len(n), len(n) + 1
    t.append(_V_LID)
    n += [(0.0, 0.0, 1.0), (0.0, 0.0, -1.0)]
    centre_top, centre_bottom = len(v), len(v) + 1
    v += [(0.0, 0.0, z1), (0.0, 0.0, z0)]
    for i in range(segments):
        b0, t0, b1, t1 = rings * i, rings * i + rings - 1, rings * (i + 1), rings * (i + 1) + rings - 1
        f.append(((centre_top, lid_uv, up), (t0, lid_uv, up), (t1, lid_uv, up)))
        f.append(((centre_bottom, lid_uv, down), (b1, lid_uv, down), (b0, lid_uv, down)))
    return _obj(v, t, n, f)


def box_obj(size: tuple[float, float, float]) -> str:
    """A box centred on its origin: the design once over each of its four sides (top of the
    design up, along +z), the top colour on the top and the bottom."""
    sx, sy, sz = (s / 2 for s in size)
    v, t, n, f = [], [], [], []
    # (outward normal, the face's right-hand direction as seen from outside) for the four sides
    sides = [((0, -1, 0), (1, 0, 0)), ((1, 0, 0), (0, 1, 0)), ((0, 1, 0), (-1, 0, 0)), ((-1, 0, 0), (0, -1, 0))]
    half = np.array([sx, sy, sz])
    for normal, right in sides:
        c, r, up = np.array(normal) * half, np.array(right) * half, np.array([0.0, 0.0, sz])
        k = len(v)
        v += [tuple(c - r - up), tuple(c + r - up), tuple(c + r + up), tuple(c - r + up)]
        t += [(0.0, _V0), (1.0, _V0), (1.0, 1.0), (0.0, 1.0)]
        n.append(normal)
        m = len(n) - 1
        f += [((k, k, m), (k + 1, k + 1, m), (k + 2, k + 2, m)), ((k, k, m), (k + 2, k + 2, m), (k + 3, k + 3, m))]
    top_uv = len(t)
    t.append(_V_TOP)
    for z in (sz, -sz):
        k, m = len(v), len(n)
        corners = [(-sx, -sy), (sx, -sy), (sx, sy), (-sx, sy)]
        v += [(x, y, z) for x, y in (corners if z > 0 else corners[::-1])]
        n.append((0.0, 0.0, 1.0 if z > 0 else -1.0))
        f += [((k, top_uv, m), (k + 1, top_uv, m), (k + 2, top_uv, m)),
              ((k, top_uv, m), (k + 2, top_uv, m), (k + 3, top_uv, m))]
    return _obj(v, t, n, f)


def lathe_obj(profile: list[tuple[float, float]], segments: int = 32) -> str:
    """A surface of revolution about z from an (r, z) profile walked with the solid on its left
    (so that (dz, -dr) points out of it): bowls and cups. One flat colour (a single texture
    coordinate); each band's normal from its profile segment."""
    v, n, f = [], [], []
    for i in range(segments + 1):
        a = 2 * math.pi * i / segments
        c, s = math.cos(a), math.sin(a)
        v += [(r * c, r * s, z) for r, z in profile]
    rings = len(profile)
    for j in range(rings - 1):
        (r0, z0), (r1, z1) = profile[j], profile[j + 1]
        dr, dz = r1 - r0, z1 - z0
        length = math.hypot(dr, dz) or 1.0
        for i in range(segments):
            a = 2 * math.pi * (i + 0.5) / segments
            n.append((dz / length * math.cos(a), dz / length * math.sin(a), -dr / length))
            m = len(n) - 1
            p, q = i * rings + j, (i + 1) * rings + j  # profile point j at angles i and i + 1
            if r0 > 0:  # on the axis the quad is one triangle (the other has no area)
                f.append(((p, 0, m), (q, 0, m), (q + 1, 0, m)))
            if r1 > 0:
                f.append(((p, 0, m), (q + 1, 0, m), (p + 1, 0, m)))
    return _obj(v, [(0.5, 0.5)], n, f)


def bowl_obj(radius: float, height: float, wall: float = 0.004) -> str:
    """An open bowl standing on its foot at z = 0: beside the products on many lab tables, and
    from above a ring of a product's size."""
    foot = 0.45 * radius
    return lathe_obj([(0.0, 0.0), (foot, 0.0), (radius, height), (radius - wall, height),
                      (foot - wall, wall), (0.0, wall)])
