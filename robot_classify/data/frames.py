"""Labelled RGB-D frames from real datasets (BOP, YCB-Video), before they become a bag.

Every importer reads its format into `LabelledFrame`s: RGB colour, depth in whole millimetres
(what the node's 16UC1 path reads), the frame's own intrinsics and its ground-truth objects with
class names from a `ClassMap`. Centroids are measured the way the node measures a detection's
(`runtime.camera`: the per-axis median of the visible surface points), so a centroid error in
`replay-eval` compares like with like.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import numpy as np

from ..runtime.camera import Intrinsics, depth_to_metres, surface_centroid
from ..learn.model import negative_in_other_case
from ..runtime.results import CLASS_NAME, CLASS_NAME_RULE, RESERVED_LABELS, ObjectResult

DISTRACTOR = "distractor"  # a ground-truth object of no class (learn.model.NEGATIVE_LABELS)
# A class map's word for a labelled segment that is no object (a piece of table, a product's cap on
# its own): left out of the ground truth, so that a detection of it counts as clutter.
IGNORE = "ignore"
CLASS_MAP = "class_map.yaml"  # the class map `draft-labels` writes beside its scenes, `import-dataset` reads from there
DRAFT_HEADER = "# Draft labels by robot-classify draft-labels"  # its first line: a map that lists every segment
MAX_DEPTH_MM = 65535  # uint16 millimetres: 65.5 m

# YCB-Video's 21 objects by their dataset id (1-based, as in -label.png, cls_indexes, BOP's obj_id).
YCBV_OBJECTS = {1: "002_master_chef_can", 2: "003_cracker_box", 3: "004_sugar_box", 4: "005_tomato_soup_can",
                5: "006_mustard_bottle", 6: "007_tuna_fish_can", 7: "008_pudding_box", 8: "009_gelatin_box",
                9: "010_potted_meat_can", 10: "011_banana", 11: "019_pitcher_base", 12: "021_bleach_cleanser",
                13: "024_bowl", 14: "025_mug", 15: "035_power_drill", 16: "036_wood_block", 17: "037_scissors",
                18: "040_large_marker", 19: "051_large_clamp", 20: "052_extra_large_clamp", 21: "061_foam_brick"}
# The package's ten classes among them; every other object is a distractor.
YCBV_CLASS_IDS = (1, 2, 3, 4, 5, 6, 8, 9, 14, 18)


class DatasetError(ValueError):
    """A real dataset that cannot be imported: a missing or unreadable file, a missing key,
    images of different sizes. The message names the file."""


@dataclass(frozen=True)
class GroundTruthObject:
    label: str  # class name from the class map, or `distractor`
    instance: int  # BOP: the object's index in scene_gt.json; YCB-Video: its class index
    bbox: tuple[int, int, int, int]  # visible part: x_offset, y_offset, width, height (pixels)
    visible_fraction: float | None  # BOP's visib_fract; None where the format has none (YCB-Video)
    centroid: tuple[float, float, float] | None  # metres, camera frame; None without valid depth
    dataset_id: str = ""  # the object as the dataset names it ("5", "006_mustard_bottle")

    def to_result(self) -> ObjectResult:
        """As ground truth travels in a bag: an /object_labels object of score 1."""
        return ObjectResult(instance=self.instance, label=self.label, score=1.0, top_k=(), bbox=self.bbox,
                            centroid=self.centroid, visible_fraction=self.visible_fraction)


@dataclass(frozen=True)
class LabelledFrame:
    color: np.ndarray  # (H, W, 3) uint8 RGB
    depth: np.ndarray  # (H, W) uint16 millimetres, 0 = no depth (the node's 16UC1)
    intrinsics: Intrinsics
    objects: tuple[GroundTruthObject, ...]
    source: str = ""  # where it came from, for messages
    # The recording it belongs to (a BOP scene, a YCB-Video video, a rendered sequence); None: no
    # recording of its own (it follows the frame before without a gap). `bags.write_frames` leaves
    # a gap between two recordings, so that a tracker ends every track there: 30 Hz back to back,
    # tracks had run from one scene's objects on to another's (found from outside on an imported
    # BOP split).
    sequence: str | None = None

    def __post_init__(self) -> None:
        c, d = self.color, self.depth
        if c.dtype != np.uint8 or c.ndim != 3 or c.shape[2] != 3:
            raise ValueError(f"{self.source}: colour must be (H, W, 3) uint8, got {c.dtype} {c.shape}")
        if d.dtype != np.uint16 or d.shape != c.shape[:2]:
            raise ValueError(f"{self.source}: depth must be uint16 {c.shape[:2]}, got {d.dtype} {d.shape}")


class ClassMap:
    """Dataset object (id or name) -> class name; an object it does not list is a `distractor`.
    An id is looked up first, then the name (YCB-Video's box.txt names, e.g. 002_master_chef_can)."""

    def __init__(self, mapping: dict[int | str, str]) -> None:
        self.by_id: dict[int, str] = {}
        self.by_name: dict[str, str] = {}
        self.given: set[str] = set()  # the class names some object was given (`unused`)
        self.seen_ids: set[int] = set()  # the ids looked up (`unused_ids`)
        self.seen_names: set[str] = set()  # the names looked up (`unused_names`)
        self._unlisted: set[int] = set()  # ids looked up that neither id nor name listed (`unlisted_ids`)
        self.from_draft = False  # written by draft-labels (`load_class_map`): it lists every segment
        self.draft_settings = ""  # the options the draft was made with ("--scale 1 ..."), from its first line
        for key, name in mapping.items():
            if not isinstance(name, str) or not name.strip():
                raise ValueError(f"class map: {key!r} must map to a class name, got {name!r}")
            if not CLASS_NAME.fullmatch(name.strip()):  # the name a taught class could have
                raise ValueError(f"class map: {key!r} maps to {name.strip()!r}, which is not a class name: use "
                                 f"{CLASS_NAME_RULE}")
            if name.strip() != IGNORE and name.strip().lower() in (IGNORE, "ignored"):
                raise ValueError(f"class map: {key!r} maps to {name.strip()!r}: write {IGNORE!r} (lower case) for a "
                                 "segment that is no object")
            negative = negative_in_other_case(name.strip())
            if negative:
                raise ValueError(f"class map: {key!r} maps to {name.strip()!r}: write {negative!r} (lower case) for "
                                 "objects of no class")
            if name.strip().lower() in RESERVED_LABELS and name.strip() != IGNORE:  # replay-eval's own rows
                raise ValueError(f"class map: {key!r} maps to {name.strip()!r}, a word replay-eval keeps for itself; "
                                 f"write 'distractor' for objects of no class, {IGNORE!r} for a segment that is no "
                                 "object")
            if isinstance(key, bool) or not isinstance(key, (int, str)):
                raise ValueError(f"class map: keys are object ids or names, got {key!r}")
            if isinstance(key, int) or key.strip().isdigit():
                self.by_id[int(key)] = name.strip()
            else:
                self.by_name[key.strip()] = name.strip()

    def label(self, obj_id: int | None = None, name: str | None = None) -> str:
        out = DISTRACTOR
        if obj_id is not None:
            self.seen_ids.add(obj_id)
        if name is not None:
            self.seen_names.add(name)
        if obj_id is not None and obj_id in self.by_id:
            out = self.by_id[obj_id]
        elif name is not None and name in self.by_name:
            out = self.by_name[name]
        elif obj_id is not None:
            self._unlisted.add(obj_id)
        self.given.add(out)
        return out

    def unused(self) -> dict[str, list[int | str]]:
        """Class names no object got so far, each with its entries: an id or name the dataset does
        not have (a typo, another dataset's numbering) quietly makes its objects distractors."""
        out: dict[str, list[int | str]] = {}
        for key, name in [*self.by_id.items(), *self.by_name.items()]:
            if name not in self.given and name != DISTRACTOR:
                out.setdefault(name, []).append(key)
        return out

    def unlisted_ids(self) -> list[int]:
        """Ids looked up that the map lists neither by id nor by name (their objects became
        distractors): for a draft's map, which lists every segment, a map of another draft; for a
        team's own map, an id it forgot or mistyped."""
        return sorted(self._unlisted)

    def unused_ids(self) -> list[int]:
        """Ids the map lists that no object so far had: a mistyped id (1040 for 1004) would
        otherwise turn its object into a distractor without a word."""
        return sorted(set(self.by_id) - self.seen_ids)

    def unused_names(self) -> list[str]:
        """Names the map lists that no object so far had (a name is YCB-Video's object name, such
        as 025_mug; a BOP object has only its obj_id, so a name key never matches one)."""
        return sorted(set(self.by_name) - self.seen_names)

    @property
    def class_names(self) -> list[str]:
        """The class names it gives, `distractor` left out, in first-listed order."""
        seen = dict.fromkeys([*self.by_id.values(), *self.by_name.values()])
        return [n for n in seen if n != DISTRACTOR]


def ycbv_class_map() -> ClassMap:
    """The built-in map: YCB-V ids 1-6, 8, 9, 14, 18 (and their names) are the package's ten
    classes (`master_chef_can`, ...); the other eleven YCB-V objects are distractors."""
    mapping: dict[int | str, str] = {}
    for i in YCBV_CLASS_IDS:
        full = YCBV_OBJECTS[i]
        mapping[i] = mapping[full] = full.split("_", 1)[1]
    return ClassMap(mapping)


def _unique_key_loader():
    """yaml's SafeLoader, refusing a key given twice (it keeps the last one without a word)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def mapping(loader, node, deep=False):
        keys = [loader.construct_object(k, deep=deep) for k, _ in node.value]
        dup = next((i for i, k in enumerate(keys) if k in keys[:i]), None)
        if dup is not None:  # marked at the second one: the line an editor should look at
            raise yaml.constructor.ConstructorError(None, None, f"{keys[dup]!r} is given twice",
                                                    node.value[dup][0].start_mark)
        return yaml.SafeLoader.construct_mapping(loader, node, deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return Loader


def load_class_map(path: str | Path) -> ClassMap:
    """A YAML mapping `object id or name: class name` (unlisted objects are distractors)."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text()
        doc = yaml.load(text, Loader=_unique_key_loader())  # noqa: S506 -- a SafeLoader
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such class map") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        # The line at fault: the problem's, but for a key without its colon, which yaml notices
        # on the line after (its context is where the key began)
        simple_key = getattr(e, "context", None) == "while scanning a simple key"
        mark = getattr(e, "context_mark" if simple_key else "problem_mark", None) or getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        what = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise DatasetError(f"{path}: {where}not a readable YAML class map ({what})") from None
    if not isinstance(doc, dict) or not doc:
        raise DatasetError(f"{path}: a class map is a YAML mapping 'object id or name: class name'")
    try:
        class_map = ClassMap(doc)
    except ValueError as e:
        raise DatasetError(f"{path}: {e}") from None
    class_map.from_draft = text.startswith(DRAFT_HEADER)
    rest = text[len(DRAFT_HEADER):].split("\n", 1)[0] if class_map.from_draft else ""
    if rest.startswith(" (") and "): model " in rest:  # " (OPTIONS): model NAME (SHA)."; a path may hold ")"
        class_map.draft_settings = rest[2:rest.rindex("): model ")]
    return class_map


def depth_to_mm(raw: np.ndarray, mm_per_unit: float | Fraction, source: str) -> np.ndarray:
    """A stored depth image -> uint16 millimetres, rounded to the nearest millimetre (halves up).

    Integer images are converted in exact integer arithmetic: the scale is read as the decimal
    it is written as (0.1 -> 1/10, 1000/10000 -> 1/10), so 1/10 mm data loses only the rounding.
    0 stays 0 (no depth); non-finite or negative values become 0."""
    raw = np.asarray(raw)
    if raw.ndim != 2:
        raise DatasetError(f"{source}: depth must be a single-channel image, got shape {raw.shape}")
    scale = mm_per_unit if isinstance(mm_per_unit, Fraction) else Fraction(str(float(mm_per_unit)))
    if scale <= 0:
        raise DatasetError(f"{source}: depth scale must be > 0, got {float(scale)}")
    if raw.dtype == np.uint8:  # 8-bit: a picture of depth for the eye, not depth (255 steps)
        raise DatasetError(f"{source}: depth is an 8-bit image; depth is stored as 16-bit (or float) values")
    if raw.dtype.kind in "ui":
        v = raw.astype(np.int64)
        mm = (2 * v * scale.numerator + scale.denominator) // (2 * scale.denominator)
        mm[v <= 0] = 0
    elif raw.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            mm = np.floor(raw.astype(np.float64) * float(scale) + 0.5)
        mm[~np.isfinite(mm) | (mm < 0)] = 0
    else:
        raise DatasetError(f"{source}: depth must be an integer or float image, got {raw.dtype}")
    if mm.size and mm.max() > MAX_DEPTH_MM:
        raise DatasetError(f"{source}: depth {float(mm.max()) / 1000:g} m after scaling by {float(scale):g} mm "
                           f"per unit is beyond uint16 millimetres; is the depth scale right?")
    return mm.astype(np.uint16)


def mask_centroid(mask: np.ndarray, depth_mm: np.ndarray, K: Intrinsics) -> tuple[float, float, float] | None:
    """The visible surface's centroid (metres), exactly as `patches.extract_objects` measures a
    detection's: median of the back-projected mask pixels with valid depth."""
    z = depth_to_metres(depth_mm)
    vs, us = np.nonzero(mask & np.isfinite(z))
    c = surface_centroid(K.backproject(us, vs, z[vs, us]).astype(np.float64))
    return None if c is None else (float(c[0]), float(c[1]), float(c[2]))


def box_centroid(bbox: tuple[int, int, int, int], depth_mm: np.ndarray, K: Intrinsics
                 ) -> tuple[float, float, float] | None:
    """Without a mask: the box's centre pixel at the median valid depth inside the box (the
    table around the object pulls this back a little; a mask is better)."""
    x, y, w, h = bbox
    z = depth_to_metres(depth_mm)[max(y, 0):y + h, max(x, 0):x + w]
    z = z[np.isfinite(z)]
    if not z.size:
        return None
    p = K.backproject(np.float64(x + (w - 1) / 2), np.float64(y + (h - 1) / 2), np.float64(np.median(z)))
    return (float(p[0]), float(p[1]), float(p[2]))


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Tight box of a mask's pixels (x, y, w, h), None for an empty mask."""
    vs, us = np.nonzero(mask)
    if not len(vs):
        return None
    return int(us.min()), int(vs.min()), int(us.max() - us.min() + 1), int(vs.max() - vs.min() + 1)


def intrinsics_from_matrix(K: Any, source: str) -> Intrinsics:
    """A 3x3 (or 9-value) camera matrix -> Intrinsics. Skew, if any, is dropped: the node's
    pinhole model has none."""
    try:
        k = np.asarray(K, dtype=np.float64).ravel()
        if k.size != 9:
            raise ValueError(f"a camera matrix has 9 values, got {k.size}")
        return Intrinsics(float(k[0]), float(k[4]), float(k[2]), float(k[5]))
    except (TypeError, ValueError) as e:
        raise DatasetError(f"{source}: bad camera matrix ({e})") from None


def to_rgb(image: np.ndarray, source: str) -> np.ndarray:
    """A decoded colour or grey image (read_image: RGB order) -> (H, W, 3) uint8 RGB."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.dtype != np.uint8:
        raise DatasetError(f"{source}: colour must be 8 or 16 bit, got {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] in (3, 4):
        image = image[:, :, :3]
    elif image.ndim == 3 and image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    else:
        raise DatasetError(f"{source}: not a colour or grey image (shape {image.shape})")
    return np.ascontiguousarray(image)


def read_file_image(path: Path, rgb: bool) -> np.ndarray:
    """An image file, or a DatasetError naming it."""
    from .datasets import read_image, read_image_unchanged

    try:
        return read_image(path) if rgb else read_image_unchanged(path)
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing") from None
    except ValueError as e:
        raise DatasetError(str(e)) from None


def same_size(shape: tuple[int, ...], other: np.ndarray, what: Path, of: Path) -> None:
    if other.shape[:2] != tuple(shape[:2]):
        raise DatasetError(f"{what}: {other.shape[1]}x{other.shape[0]} does not match {of} "
                           f"({shape[1]}x{shape[0]})")


R = TypeVar("R")


def select(refs: Sequence[R], every: int = 1, max_frames: int | None = None) -> list[R]:
    """Every `every`-th frame, first `max_frames` of those."""
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    picked = list(refs[::every])
    return picked if max_frames is None else picked[:max_frames]


def find_scene_folders(path: str | Path, is_scene: Callable[[Path], bool], root: Path | None = None,
                       hint: str = "") -> list[Path]:
    """`path` itself if it is a scene folder, else the scene folders in `root` (default `path`),
    sorted by name; a one-line error naming `hint` (what a scene looks like) when there are none."""
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(f"{path}: no such folder")
    if is_scene(path):
        return [path]
    scenes = sorted(p for p in (root or path).iterdir() if p.is_dir() and is_scene(p))
    if not scenes:
        raise DatasetError(f"{path}: {hint}")
    return scenes


def pick_scenes(found: list[Path], wanted: Sequence[str] | None, root: Path) -> list[Path]:
    """Scene folders by name; '48' selects 000048 or 0048 too. All of them for None."""
    if wanted is None:
        return found

    def same(name: str, w: str) -> bool:
        return name == w or (name.isdigit() and w.isdigit() and int(name) == int(w))

    missing = [w for w in wanted if not any(same(s.name, w) for s in found)]
    if missing:
        names = ", ".join(s.name for s in found[:20]) + (" ..." if len(found) > 20 else "")
        raise DatasetError(f"{root}: no scene {', '.join(missing)} (it has: {names})")
    return [s for s in found if any(same(s.name, w) for w in wanted)]


def finite_number(value: Any, source: str, key: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if not math.isfinite(v):
        raise DatasetError(f"{source}: {key} must be a number, got {value!r}")
    return v
