"""Render RGB-D tabletop scenes with pybullet's CPU TinyRenderer, like a structured-light camera.

One `SceneRenderer` owns one pybullet DIRECT client (no GPU, no display). `render(seed)`
is deterministic in the seed: same seed, same scene, whatever process renders it.
Ground truth per object: class, instance id, visible fraction, bbox and the camera-frame
centroid of its visible surface (from noise-free depth) plus the centre of its volume.
"""
from __future__ import annotations

import importlib
import json
import math
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np
import pybullet_data

from ..runtime.camera import Intrinsics, surface_centroid
from .footprints import MUG_BODY_RADIUS, circle, contact_distance, fits_on_top, footprint, overlap
from .meshes import bowl_obj, box_obj, cylinder_obj, oval_obj
from .object_catalog import CATALOG, ObjectSpec, lying_height, table_texture, upright_height, write_textures



def _import_quietly(name: str):
    """`import name` with what its C code writes to stderr on import thrown away: pybullet prints
    its build time there, a line in the middle of `demo`'s and `make-bag`'s output that reads like
    a warning. Python's own errors still arrive as exceptions. Where no descriptor 2 can be saved,
    a plain import."""
    if name in sys.modules:
        return sys.modules[name]
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, AttributeError, ValueError):
        return importlib.import_module(name)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            return importlib.import_module(name)
    finally:
        os.dup2(saved, 2)
        os.close(saved)


pb = _import_quietly("pybullet")
WIDTH, HEIGHT = 640, 480
NEAR, FAR = 0.05, 4.0
GENERATOR_VERSION = 5  # bump when scenes change: it keys the cached default model
# 2: packaging textures mapped as printed (`meshes`), designs nearer the real products, household distractors
# 3: the Campbell's script on the soup can's red half (2 drew it white on the white half); scenes unchanged
# 4: Master Chef's plastic lid translucent white, as the real can's (3 drew it navy); scenes unchanged
# 5: the mustard bottle a squeeze bottle narrowing to a centred cap (4: a box, the cap to one side)
LAYOUTS = ("apart", "crowded")
CROWDED_OBJECTS = (4, 8)  # objects per crowded scene unless `render` is told otherwise: few objects seldom touch
P_CONTACT = 0.7  # crowded layout: share of objects put in contact with one placed before...
P_STACK = 0.3  # ...and of the small products put on a box's top where one fits
DISTRACTOR_HEIGHT = 0.1  # taken as in the way of any overhang (random shapes reach 10 cm, mugs 12)
STACKABLE = ("tomato_soup_can", "tuna_fish_can", "potted_meat_can", "gelatin_box", "mug", "master_chef_can")
HOUSEHOLD_SHARE = 0.4  # of the distractors: a mug or a bowl rather than one of pybullet's random shapes
HOUSEHOLD = ("mug", "bowl")
# RGB 0-1: white, off-white, navy, black, teal, green, sky blue, yellow, grey, orange; no red (the YCB mug's)
HOUSEHOLD_COLOURS = ((0.95, 0.95, 0.95), (0.9, 0.88, 0.8), (0.1, 0.12, 0.35), (0.08, 0.08, 0.08),
                     (0.2, 0.65, 0.6), (0.3, 0.6, 0.25), (0.45, 0.7, 0.95), (0.95, 0.8, 0.2), (0.55, 0.55, 0.55),
                     (0.95, 0.5, 0.1))


@dataclass(frozen=True)
class Distractor:
    """A distractor as drawn (`SceneRenderer._draw_distractor`), before it is built."""
    shape: int  # pybullet's random URDF (0-999), or 1000 + 100 * household kind + colour
    size: tuple[float, ...]  # URDF: its largest extent (m); mug: the mesh's scale; bowl: radius, height (m)
    rgba: tuple[float, ...]

    @property
    def household(self) -> str | None:
        return HOUSEHOLD[(self.shape - 1000) // 100] if self.shape >= 1000 else None

    @property
    def radius(self) -> float:
        """The circle it covers on the table, metres (a crowded scene stands neighbours at its
        edge): a bowl's rim, a mug's body (its handle left out, as the YCB mug's), and for a
        random shape 0.6 of its largest extent, which is often its height."""
        if self.household == "bowl":
            return self.size[0]
        if self.household == "mug":
            return MUG_BODY_RADIUS * self.size[0]
        return 0.6 * self.size[0]


@dataclass
class RenderedScene:
    color: np.ndarray  # (H, W, 3) uint8 RGB
    depth: np.ndarray  # (H, W) uint16 millimetres, 0 = no return
    mask: np.ndarray  # (H, W) uint16 instance ids, 0 = table / background
    meta: dict[str, Any]


def _draw_lie(spec: ObjectSpec, rng: np.random.Generator) -> bool:
    """Whether the product lies: the marker always, a box 30% of the time (a draw only then)."""
    return spec.lies_down or (spec.can_lie_down and rng.random() < 0.3)


def _entry(spec: ObjectSpec | None, bodies: list[int], centre: np.ndarray | None, shape: int | None,
           placed: tuple[float, float, float], resting_on: int | None = None) -> dict[str, Any]:
    """A placed object as `_capture` reads it (`placed`: x, y and footprint radius for `_move_one`)."""
    return {"class_name": "distractor" if spec is None else spec.name, "bodies": bodies, "centre_world": centre,
            "shape": shape, "placed": placed, "resting_on": resting_on}


def _quat_from_yaw_and_tilt(yaw: float, lie: bool) -> tuple[float, ...]:
    roll = math.pi / 2 if lie else 0.0
    return pb.getQuaternionFromEuler([roll, 0.0, yaw])


class SceneRenderer:
    def __init__(self, width: int = WIDTH, height: int = HEIGHT, fx: float = 615.0) -> None:
        self.width, self.height = width, height
        self.intrinsics = Intrinsics(fx, fx, width / 2.0, height / 2.0)
        self.client = pb.connect(pb.DIRECT)
        self._tmp = tempfile.TemporaryDirectory(prefix="robot_classify_render_")
        self._tex_files = write_textures(Path(self._tmp.name))
        self._meshes: dict[tuple, str] = {}
        rng = np.random.default_rng(12345)
        self._table_files = []
        for i in range(8):
            f = Path(self._tmp.name) / f"table_{i}.png"
            cv2.imwrite(str(f), table_texture(rng))
            self._table_files.append(f)
        self._distractors = sorted((Path(pybullet_data.getDataPath()) / "random_urdfs").glob("*/*.urdf"))
        self._mug = str(Path(pybullet_data.getDataPath()) / "objects" / "mug.obj")

    def close(self) -> None:
        if self.client is not None:
            pb.disconnect(self.client)
            self.client = None
            self._tmp.cleanup()

    def __enter__(self) -> "SceneRenderer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------- building
    def _mesh_file(self, key: tuple, make) -> str:
        """The OBJ file of mesh `key` (`make()` gives its text), written once per renderer."""
        if key not in self._meshes:
            f = Path(self._tmp.name) / f"mesh_{len(self._meshes)}.obj"
            f.write_text(make())
            self._meshes[key] = str(f)
        return self._meshes[key]

    def _part_mesh(self, part) -> str:
        """The OBJ file of a textured box, cylinder or bottle of this size."""
        def make() -> str:
            if part.shape == "cylinder":
                return cylinder_obj(*part.size)
            if part.shape == "bottle":
                sx, sy, sz = part.size
                return oval_obj(sx / 2, sy / 2, [(s, (z - 0.5) * sz) for s, z in part.profile])
            return box_obj(part.size)
        return self._mesh_file((part.shape, *part.size, *part.profile), make)

    def _visual(self, part, rgba) -> int:
        c = self.client
        if part.texture is not None and part.shape in ("box", "cylinder", "bottle"):  # meshes that show the design right
            return pb.createVisualShape(pb.GEOM_MESH, fileName=self._part_mesh(part), rgbaColor=rgba,
                                        physicsClientId=c)
        if part.shape == "box":
            return pb.createVisualShape(pb.GEOM_BOX, halfExtents=[s / 2 for s in part.size], rgbaColor=rgba,
                                        physicsClientId=c)
        if part.shape == "cylinder":
            return pb.createVisualShape(pb.GEOM_CYLINDER, radius=part.size[0], length=part.size[1], rgbaColor=rgba,
                                        physicsClientId=c)
        return pb.createVisualShape(pb.GEOM_MESH, fileName=self._mug, meshScale=[part.size[0]] * 3, rgbaColor=rgba,
                                    physicsClientId=c)

    def _add_object(self, spec: ObjectSpec, x: float, y: float, yaw: float, lie: bool,
                    textures: dict[str, int], base: float = 0.0) -> tuple[list[int], np.ndarray]:
        """Bodies for each part of the object, standing `base` metres above the table (on another
        object); returns their ids and the volume centre (world)."""
        c = self.client
        bodies = []
        main = spec.parts[0]
        # Upright height H and the height of the volume centre above the table, upright or lying.
        H = upright_height(main)
        extent_z = lying_height(main) if lie else H
        orn = _quat_from_yaw_and_tilt(yaw, lie)
        rot = np.array(pb.getMatrixFromQuaternion(orn)).reshape(3, 3)
        centre_local = np.array([0.0, 0.0, H / 2])
        centre_world = np.array([x, y, base + extent_z / 2])
        for part in spec.parts:
            vs = self._visual(part, list(part.rgba))
            # Boxes and cylinders are centred on their origin; the mug mesh starts at z = 0.
            lift = 0.0 if part.shape == "mesh" else (part.size[1] if part.shape == "cylinder" else part.size[2]) / 2
            local = np.array(part.offset) + np.array([0.0, 0.0, lift])
            pos = centre_world + rot @ (local - centre_local)
            body = pb.createMultiBody(baseMass=0, baseVisualShapeIndex=vs, basePosition=pos.tolist(),
                                      baseOrientation=orn, physicsClientId=c)
            if part.texture is not None:
                pb.changeVisualShape(body, -1, textureUniqueId=textures[part.texture], rgbaColor=[1, 1, 1, 1],
                                     physicsClientId=c)
            bodies.append(body)
        return bodies, centre_world

    def _add_distractor(self, rng: np.random.Generator, x: float, y: float, yaw: float) -> tuple[list[int], int]:
        """The body and its shape: the index of pybullet's random URDF (0-999), or of a household
        object (1000 and up, `_draw_distractor`), so that training and evaluation can use disjoint
        shapes (even / odd, `scene_dataset.distractor_patches`)."""
        return self._build_distractor(self._draw_distractor(rng), x, y, yaw)

    def _draw_distractor(self, rng: np.random.Generator) -> Distractor:
        """Which distractor, its size and colour, drawn before it is built, so that a crowded
        scene can place it by its size. A household object is a mug of another colour than the
        YCB mug's red, or a bowl: on 17 real frames, mugs, cups and cans of a product's size took
        most of the class names given to objects of no class. Shape 1000 + 100 * kind + colour:
        the colour's parity decides even / odd."""
        if rng.random() < HOUSEHOLD_SHARE:
            kind = int(rng.integers(len(HOUSEHOLD)))
            colour = int(rng.integers(len(HOUSEHOLD_COLOURS)))
            rgba = (*(np.array(HOUSEHOLD_COLOURS[colour]) * rng.uniform(0.85, 1.05, 3)).clip(0, 1), 1.0)
            size = (float(rng.uniform(0.85, 1.2)),) if HOUSEHOLD[kind] == "mug" else \
                (round(rng.uniform(0.06, 0.09), 3), round(rng.uniform(0.04, 0.06), 3))
            return Distractor(1000 + 100 * kind + colour, size, rgba)
        shape = int(rng.integers(len(self._distractors)))
        extent = float(rng.uniform(0.05, 0.1))
        return Distractor(shape, (extent,), (*rng.uniform(0.1, 0.9, 3), 1.0))

    def _build_distractor(self, d: Distractor, x: float, y: float, yaw: float) -> tuple[list[int], int]:
        c = self.client
        orn = pb.getQuaternionFromEuler([0, 0, yaw])
        if d.household is not None:
            if d.household == "mug":
                vs = pb.createVisualShape(pb.GEOM_MESH, fileName=self._mug, meshScale=[d.size[0]] * 3,
                                          rgbaColor=list(d.rgba), physicsClientId=c)
            else:
                radius, height = d.size
                bowl = self._mesh_file(("bowl", radius, height), lambda: bowl_obj(radius, height))
                vs = pb.createVisualShape(pb.GEOM_MESH, fileName=bowl, rgbaColor=list(d.rgba), physicsClientId=c)
            body = pb.createMultiBody(baseMass=0, baseVisualShapeIndex=vs, basePosition=[x, y, 0.0],
                                      baseOrientation=orn, physicsClientId=c)
            return [body], d.shape
        urdf = str(self._distractors[d.shape])
        body = pb.loadURDF(urdf, physicsClientId=c)
        lo, hi = (np.array(v) for v in pb.getAABB(body, physicsClientId=c))
        pb.removeBody(body, physicsClientId=c)
        scale = d.size[0] / max(float((hi - lo).max()), 1e-3)
        body = pb.loadURDF(urdf, basePosition=[x, y, 0.0], baseOrientation=orn, globalScaling=scale,
                           useFixedBase=True, physicsClientId=c)
        lo, _ = pb.getAABB(body, physicsClientId=c)
        pb.resetBasePositionAndOrientation(body, [x, y, -lo[2] + 0.001], orn, physicsClientId=c)
        pb.changeVisualShape(body, -1, rgbaColor=list(d.rgba), physicsClientId=c)
        return [body], d.shape

    # -------------------------------------------------------------- camera
    def _camera(self, rng: np.random.Generator, target: np.ndarray) -> tuple[list, list, np.ndarray, np.ndarray]:
        dist = rng.uniform(0.5, 1.5)
        elev = math.radians(rng.uniform(30, 70))
        az = rng.uniform(0, 2 * math.pi)
        return self._camera_at(target, dist, elev, az)

    def _camera_at(self, target: np.ndarray, dist: float, elev: float, az: float
                   ) -> tuple[list, list, np.ndarray, np.ndarray]:
        eye = target + dist * np.array([math.cos(elev) * math.cos(az), math.cos(elev) * math.sin(az), math.sin(elev)])
        view = pb.computeViewMatrix(eye.tolist(), target.tolist(), [0, 0, 1], physicsClientId=self.client)
        fov = math.degrees(2 * math.atan(self.height / 2 / self.intrinsics.fy))
        proj = pb.computeProjectionMatrixFOV(fov, self.width / self.height, NEAR, FAR, physicsClientId=self.client)
        # World -> camera optical frame (x right, y down, z forward) from the OpenGL view matrix.
        V = np.array(view).reshape(4, 4).T
        gl_to_optical = np.diag([1.0, -1.0, -1.0, 1.0])
        return view, proj, gl_to_optical @ V, eye

    def _image(self, view, proj, light: dict[str, Any], width: int, height: int) -> tuple[np.ndarray, ...]:
        _, _, rgba, depth, seg = pb.getCameraImage(width, height, view, proj, renderer=pb.ER_TINY_RENDERER,
                                                   physicsClientId=self.client, **light)
        rgba = np.asarray(rgba, np.uint8).reshape(height, width, 4)
        depth = np.asarray(depth, np.float32).reshape(height, width)
        seg = np.asarray(seg, np.int32).reshape(height, width)
        return rgba, depth, seg

    # -------------------------------------------------------------- scene
    def render(self, seed: int, n_objects: tuple[int, int] | None = None, max_distractors: int = 2,
               catalog: dict[str, ObjectSpec] | None = None, layout: str = "apart") -> RenderedScene:
        """One scene; `catalog` replaces the default classes (e.g. `NOVEL_CATALOG`: objects to teach).
        `layout` "crowded" stands objects in contact and on each other (`_place_crowded`).
        `n_objects` (least, most) defaults to (1, 8), or CROWDED_OBJECTS for a crowded table."""
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        if n_objects is None:
            n_objects = CROWDED_OBJECTS if layout == "crowded" else (1, 8)
        rng, objects = self._build(seed, n_objects, max_distractors, catalog, layout)
        target = np.array([*rng.normal(0, 0.05, 2), 0.0])
        view, proj, world_to_cam, eye = self._camera(rng, target)
        return self._capture(rng, seed, objects, view, proj, world_to_cam, eye, target, self._light(rng))

    def render_sequence(self, seed: int, frames: int, arc_deg: float = 60.0, stretches: int = 1,
                        n_objects: tuple[int, int] = (3, 8), max_distractors: int = 2,
                        catalog: dict[str, ObjectSpec] | None = None) -> Iterator[RenderedScene]:
        """`frames` views of one static scene from a camera moving along an arc of `arc_deg`
        degrees around the table at fixed distance and elevation (a robot's wrist camera
        sweeping at 30 Hz: 60 degrees over 150 frames is 12 degrees/s). With `stretches` > 1,
        between stretches one object is picked up and put down elsewhere (a cut: no frames of
        the hand). Ground-truth `instance` ids persist across the frames (a moved object keeps
        its id). Deterministic in the seed."""
        if frames < 1 or stretches < 1:
            raise ValueError(f"frames and stretches must be >= 1, got {frames}, {stretches}")
        rng, objects = self._build(seed, n_objects, max_distractors, catalog)
        target = np.array([*rng.normal(0, 0.05, 2), 0.0])
        dist, elev, az0 = rng.uniform(0.5, 1.2), math.radians(rng.uniform(30, 65)), rng.uniform(0, 2 * math.pi)
        light = self._light(rng)
        step = math.radians(arc_deg) / max(frames - 1, 1) * (1 if rng.random() < 0.5 else -1)
        per_stretch = math.ceil(frames / stretches)
        for i in range(frames):
            if i and i % per_stretch == 0:
                self._move_one(rng, objects)
            view, proj, world_to_cam, eye = self._camera_at(target, dist, elev, az0 + step * i)
            yield self._capture(rng, seed, objects, view, proj, world_to_cam, eye, target, light, frame=i)

    def _build(self, seed: int, n_objects: tuple[int, int], max_distractors: int,
               catalog: dict[str, ObjectSpec] | None, layout: str = "apart"
               ) -> tuple[np.random.Generator, list[dict[str, Any]]]:
        """The table and its objects (nothing rendered yet); the generator continues from here."""
        catalog = CATALOG if catalog is None else catalog
        rng = np.random.default_rng(seed)
        c = self.client
        pb.resetSimulation(physicsClientId=c)
        textures = {k: pb.loadTexture(str(v), physicsClientId=c) for k, v in self._tex_files.items()}
        table_tex = pb.loadTexture(str(self._table_files[rng.integers(len(self._table_files))]), physicsClientId=c)
        table_vs = pb.createVisualShape(pb.GEOM_BOX, halfExtents=[1.5, 1.5, 0.01], physicsClientId=c)
        table = pb.createMultiBody(baseMass=0, baseVisualShapeIndex=table_vs, basePosition=[0, 0, -0.01],
                                   physicsClientId=c)
        pb.changeVisualShape(table, -1, textureUniqueId=table_tex, rgbaColor=[*rng.uniform(0.6, 1.0, 3), 1],
                             physicsClientId=c)

        n = int(rng.integers(n_objects[0], n_objects[1] + 1))
        n_distract = int(min(rng.integers(0, max_distractors + 1), max(n - 1, 0)))
        classes = list(rng.choice(list(catalog), size=min(n - n_distract, len(catalog)), replace=False))
        if layout == "crowded":
            return rng, self._place_crowded(rng, [None if i >= len(classes) else catalog[classes[i]]
                                                  for i in range(n)], textures)
        placed: list[tuple[float, float, float]] = []  # x, y, footprint radius
        objects = []
        for i in range(n):
            is_distractor = i >= len(classes)
            spec = None if is_distractor else catalog[classes[i]]
            radius = 0.05 if spec is None else spec.footprint
            pos = self._place(rng, placed, radius)
            if pos is None:
                continue
            placed.append((*pos, radius))
            yaw = rng.uniform(0, 2 * math.pi)
            shape = None
            if spec is None:
                (bodies, shape), centre = self._add_distractor(rng, pos[0], pos[1], yaw), None
            else:
                bodies, centre = self._add_object(spec, pos[0], pos[1], yaw, _draw_lie(spec, rng), textures)
            objects.append(_entry(spec, bodies, centre, shape, (*pos, radius)))
        return rng, objects

    def _place_crowded(self, rng: np.random.Generator, specs: list[ObjectSpec | None],
                       textures: dict[str, int]) -> list[dict[str, Any]]:
        """Objects as a real table holds them. Most stand in contact with one placed before
        (`P_CONTACT`): moved along a random direction until the footprints meet, then 0-3 mm
        apart. A small product may stand on a box (`STACKABLE`, `P_STACK`), as the soup can on
        the SPAM tin of the real frames, where no neighbour reaching above the box's top stands in
        the way of its overhang. The rest stand anywhere on the table's middle where they overlap
        nothing."""
        objects: list[dict[str, Any]] = []
        outlines: list[tuple[np.ndarray, float]] = []  # what stands in the way: footprint (world), top height
        tops: list[tuple[np.ndarray, float, int]] = []  # free box tops: footprint, height, instance
        for spec in specs:
            yaw = rng.uniform(0, 2 * math.pi)
            if spec is None:
                drawn = self._draw_distractor(rng)
                shape = circle(drawn.radius)
            else:
                lie = _draw_lie(spec, rng)
                shape = footprint(spec, yaw, lie)
            base, pos, below = 0.0, None, None
            if spec is not None and spec.name in STACKABLE and rng.random() < P_STACK:
                fits = [k for k, (top, _, _) in enumerate(tops) if fits_on_top(top, shape)]
                if fits:
                    k = fits[int(rng.integers(len(fits)))]
                    top, height, instance = tops[k]
                    cand = top.mean(0) + rng.normal(0.0, 0.004, 2)
                    if not any(overlap(o, shape + cand) for o, h in outlines if o is not top and h > height):
                        pos, base, below = cand, height, instance
                        del tops[k]
            if pos is None:
                for _ in range(60):
                    if outlines and rng.random() < P_CONTACT:
                        other = outlines[int(rng.integers(len(outlines)))][0]
                        ang = rng.uniform(0, 2 * math.pi)
                        u = np.array([math.cos(ang), math.sin(ang)])
                        cand = other.mean(0) + (contact_distance(other, shape, u) + rng.uniform(0.0, 0.003)) * u
                    else:
                        cand = rng.uniform(-0.22, 0.22, 2)
                    if np.abs(cand).max() <= 0.3 and not any(overlap(o, shape + cand) for o, _ in outlines):
                        pos = cand
                        break
                if pos is None:
                    continue
            outline = shape + pos
            x, y = float(pos[0]), float(pos[1])
            kind = None
            if spec is None:
                (bodies, kind), centre = self._build_distractor(drawn, x, y, yaw), None
                height = DISTRACTOR_HEIGHT
            else:
                bodies, centre = self._add_object(spec, x, y, yaw, lie, textures, base=base)
                main = spec.parts[0]
                height = base + (lying_height(main) if lie else upright_height(main))
                if main.shape == "box" and base == 0.0:
                    tops.append((outline, height, len(objects) + 1))
            outlines.append((outline, height))  # a raised product's overhang is in the way too
            objects.append(_entry(spec, bodies, centre, kind, (x, y, float(np.linalg.norm(shape, axis=1).max())),
                                  resting_on=below))
        return objects

    def _move_one(self, rng: np.random.Generator, objects: list[dict[str, Any]]) -> None:
        """One object picked up and put down at a free spot (same yaw), its bodies shifted alike."""
        if not objects:
            return
        k = int(rng.integers(len(objects)))
        obj = objects[k]
        others = [o["placed"] for o in objects if o is not obj]
        pos = self._place(rng, others, obj["placed"][2])
        if pos is None:
            return
        shift = np.array([pos[0] - obj["placed"][0], pos[1] - obj["placed"][1], 0.0])
        for b in obj["bodies"]:
            p, o = pb.getBasePositionAndOrientation(b, physicsClientId=self.client)
            pb.resetBasePositionAndOrientation(b, (np.array(p) + shift).tolist(), o, physicsClientId=self.client)
        obj["placed"] = (*pos, obj["placed"][2])
        if obj["centre_world"] is not None:
            obj["centre_world"] = obj["centre_world"] + shift

    @staticmethod
    def _light(rng: np.random.Generator) -> dict[str, Any]:
        return {"lightDirection": [*rng.uniform(-1, 1, 2), rng.uniform(0.5, 1.5)],
                "lightColor": list(rng.uniform(0.8, 1.0, 3)), "lightDistance": 2.0, "shadow": 1,
                "lightAmbientCoeff": rng.uniform(0.35, 0.65), "lightDiffuseCoeff": rng.uniform(0.35, 0.7),
                "lightSpecularCoeff": rng.uniform(0.0, 0.2)}

    def _capture(self, rng: np.random.Generator, seed: int, objects: list[dict[str, Any]], view, proj,
                 world_to_cam: np.ndarray, eye: np.ndarray, target: np.ndarray, light: dict[str, Any],
                 frame: int | None = None) -> RenderedScene:
        """Render the built scene from one camera pose: sensor noise, instance mask, ground truth."""
        rgba, dbuf, seg = self._image(view, proj, light, self.width, self.height)
        z_true = (FAR * NEAR / (FAR - (FAR - NEAR) * dbuf)).astype(np.float32)
        z_true[dbuf >= 1.0] = np.nan

        mask = np.zeros(seg.shape, np.uint16)
        for inst, obj in enumerate(objects, start=1):
            mask[np.isin(seg, obj["bodies"])] = inst
        color = self._sensor_color(rgba[:, :, :3], rng)
        depth = self._sensor_depth(z_true, color, rng)
        meta_objects = []
        for inst, obj in enumerate(objects, start=1):
            pix = mask == inst
            count = int(pix.sum())
            if count == 0:
                continue
            vs, us = np.nonzero(pix)
            valid = np.isfinite(z_true[vs, us])
            cen = surface_centroid(self.intrinsics.backproject(us[valid].astype(np.float64), vs[valid].astype(np.float64),
                                                               z_true[vs, us][valid].astype(np.float64)))
            entry = {"class_name": obj["class_name"], "instance": inst, "pixels": count,
                     "visible_fraction": round(self._visible_fraction(obj, objects, mask, inst, view), 4),
                     "bbox": {"x_offset": int(us.min()), "y_offset": int(vs.min()),
                              "width": int(us.max() - us.min() + 1), "height": int(vs.max() - vs.min() + 1)},
                     "centroid": None if cen is None else dict(zip("xyz", map(float, cen)))}
            if obj["shape"] is not None:
                entry["shape"] = obj["shape"]
            if obj["resting_on"] is not None:  # crowded layout: the instance it stands on
                entry["resting_on"] = obj["resting_on"]
            if obj["centre_world"] is not None:
                entry["volume_centre"] = dict(zip("xyz", map(float, (world_to_cam @ [*obj["centre_world"], 1.0])[:3])))
            meta_objects.append(entry)
        meta = {"seed": int(seed), "generator_version": GENERATOR_VERSION, "width": self.width, "height": self.height,
                "intrinsics": {"fx": self.intrinsics.fx, "fy": self.intrinsics.fy, "cx": self.intrinsics.cx,
                               "cy": self.intrinsics.cy},
                "camera_pose": {"eye": eye.tolist(), "target": target.tolist(),
                                "world_to_camera": world_to_cam.tolist()},
                "objects": meta_objects}
        if frame is not None:
            meta["sequence_frame"] = frame
        return RenderedScene(color, depth, mask, meta)

    @staticmethod
    def _place(rng: np.random.Generator, placed: list, radius: float) -> tuple[float, float] | None:
        """Random spot on the table; some objects deliberately touch a neighbour."""
        for _ in range(50):
            if placed and rng.random() < 0.35:
                ox, oy, orad = placed[rng.integers(len(placed))]
                ang = rng.uniform(0, 2 * math.pi)
                d = orad + radius + rng.uniform(0.0, 0.01)
                x, y = ox + d * math.cos(ang), oy + d * math.sin(ang)
            else:
                x, y = rng.uniform(-0.22, 0.22, 2)
            if all(math.hypot(x - px, y - py) >= pr + radius - 0.002 for px, py, pr in placed):
                return float(x), float(y)
        return None

    def _visible_fraction(self, obj: dict, objects: list, mask: np.ndarray, inst: int, view) -> float:
        """Visible pixels / pixels of the object rendered alone on a canvas twice the image size
        (quarter resolution), so both occlusion and cropping at the image border count.

        Objects that touch neither another object nor the border are fully visible: no render.
        """
        pix = mask == inst
        ring = cv2.dilate(pix.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & ~pix
        touches_border = pix[0].any() or pix[-1].any() or pix[:, 0].any() or pix[:, -1].any()
        if not touches_border and not np.any(mask[ring] != 0):
            return 1.0
        c = self.client
        others = [b for o in objects if o is not obj for b in o["bodies"]]
        saved = {b: pb.getBasePositionAndOrientation(b, physicsClientId=c) for b in others}
        for b in others:
            pb.resetBasePositionAndOrientation(b, [0, 0, -50], [0, 0, 0, 1], physicsClientId=c)
        fov = math.degrees(2 * math.atan(self.height / self.intrinsics.fy))  # twice the half-height
        proj = pb.computeProjectionMatrixFOV(fov, self.width / self.height, NEAR, FAR, physicsClientId=c)
        _, _, seg = self._image(view, proj, {}, self.width // 2, self.height // 2)
        for b, (p, o) in saved.items():
            pb.resetBasePositionAndOrientation(b, p, o, physicsClientId=c)
        alone = int(np.isin(seg, obj["bodies"]).sum()) * 16  # each pixel stands for 4x4 image pixels
        return float(min(1.0, pix.sum() / alone)) if alone else 0.0

    # -------------------------------------------------------------- sensor model
    @staticmethod
    def _sensor_color(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """White balance and exposure differ per scene; pixel noise like a consumer sensor."""
        gains = rng.uniform(0.85, 1.15, 3) * rng.uniform(0.85, 1.15)
        noisy = rgb.astype(np.float32) * gains + rng.normal(0, 2.5, rgb.shape)
        return np.clip(noisy, 0, 255).astype(np.uint8)

    @staticmethod
    def _sensor_depth(z: np.ndarray, color: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Structured-light model: noise ~ z^2, holes at depth edges, on dark surfaces, speckle."""
        valid = np.isfinite(z)
        zf = np.where(valid, z, 0.0).astype(np.float32)
        noisy = zf + rng.normal(0, 1, z.shape) * (0.0008 + 0.0018 * zf**2)
        grad = np.hypot(cv2.Sobel(zf, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(zf, cv2.CV_32F, 0, 1, ksize=3))
        edge = cv2.dilate((grad > 0.08).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        dark = cv2.cvtColor(color, cv2.COLOR_RGB2GRAY) < 35
        drop = (edge & (rng.random(z.shape) < 0.6)) | (dark & (rng.random(z.shape) < 0.5)) \
            | (rng.random(z.shape) < 0.003) | ~valid | (zf > FAR - 0.1)
        mm = np.clip(np.round(noisy * 1000.0), 0, 65535).astype(np.uint16)
        mm[drop] = 0
        return mm


def write_scene(scene: RenderedScene, folder: str | Path) -> Path:
    """color.png (rgb8 content), depth.png (16-bit mm), mask.png (instance ids), scene.json."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / "color.png"), cv2.cvtColor(scene.color, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(folder / "depth.png"), scene.depth)
    cv2.imwrite(str(folder / "mask.png"), scene.mask)
    (folder / "scene.json").write_text(json.dumps(scene.meta, indent=1))
    return folder


def read_scene(folder: str | Path) -> RenderedScene:
    folder = Path(folder)
    color = cv2.imread(str(folder / "color.png"), cv2.IMREAD_COLOR)
    depth = cv2.imread(str(folder / "depth.png"), cv2.IMREAD_UNCHANGED)
    mask = cv2.imread(str(folder / "mask.png"), cv2.IMREAD_UNCHANGED)
    if color is None or depth is None or mask is None:
        raise ValueError(f"{folder}: missing or unreadable color.png / depth.png / mask.png")
    return RenderedScene(cv2.cvtColor(color, cv2.COLOR_BGR2RGB), depth, mask,
                         json.loads((folder / "scene.json").read_text()))

