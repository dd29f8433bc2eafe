"""BOP-format datasets (YCB-V, HOPE, T-LESS, ...) -> `LabelledFrame`s.

A split folder holds scene folders (`000048/`), each with
  scene_camera.json    image id -> {"cam_K": 9 values row-major, "depth_scale": mm per unit}
  scene_gt.json        image id -> [{"obj_id": N, ...}, ...]  (list index = the object's gt index)
  scene_gt_info.json   image id -> [{"bbox_visib": [x, y, w, h], "visib_fract": f}, ...]  (same order)
  rgb/ (or gray/)      NNNNNN.png | .jpg | .tif
  depth/               NNNNNN.png | .tif  (depth_mm = value * depth_scale)
  mask_visib/          NNNNNN_MMMMMM.png  (image id, gt index; non-zero = visible pixel)
Written from the format's description (bop_toolkit's docs and inout.py), not from its code.

With mask_visib/, an object's box is the tight box of its visible mask (the convention of the
node's detections: width = last - first + 1; BOP's bbox_visib is one pixel narrower) and its
centroid comes from the mask and the depth. Without mask_visib/ (hand-labelled data) the box is
bbox_visib and the centroid the box centre at the median depth inside it. Objects that are not
visible at all (empty mask or box) are left out.

An object's instance id is its `obj_id`, as the YCB-Video importer gives it, so that ids persist
across a scene's frames and `replay-eval` can score tracks; the k-th further instance of the same
`obj_id` in an image (T-LESS, HOPE) is `obj_id + k * INSTANCE_STRIDE`, counted in the order
scene_gt.json lists them (BOP lists a scene's instances in the same order in every image).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from .frames import (IGNORE, ClassMap, DatasetError, GroundTruthObject, LabelledFrame, box_centroid, depth_to_mm,
                     find_scene_folders, finite_number, intrinsics_from_matrix, mask_bbox, mask_centroid, pick_scenes,
                     read_file_image, same_size, select, to_rgb, ycbv_class_map)

log = logging.getLogger(__name__)

COLOR_DIRS = ("rgb", "gray")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
SCENE_FILES = ("scene_camera.json", "scene_gt.json", "scene_gt_info.json")
INSTANCE_STRIDE = 1_000_000  # above any obj_id: hand-labelled sets number their distractors 1001, 1002, ...


@dataclass(frozen=True)
class BopFrameRef:
    """One image of one scene, before anything but the scene's JSON is read."""
    scene: Path
    im_id: int
    camera: dict[str, Any]
    gt: list[Any]
    gt_info: list[Any]
    has_masks: bool

    @property
    def name(self) -> str:
        return f"{self.scene.name}/{self.im_id:06d}"


def is_scene(path: Path) -> bool:
    return (path / "scene_camera.json").is_file()


def find_scenes(path: str | Path) -> list[Path]:
    """`path` itself if it is a scene folder, else its scene folders (sorted by name). A scene
    folder that lacks scene_camera.json (it has the other scene files or rgb/) is named, with the
    file it lacks, rather than taken for no scene at all."""
    try:
        return find_scene_folders(path, is_scene, hint="no BOP scene folders (NNNNNN/scene_camera.json); point at "
                                                       "a split folder (e.g. ycbv/test) or at one scene")
    except DatasetError:
        missing = missing_scene_camera(Path(path))
        if missing is None:
            raise
        raise IncompleteScene(f"{missing}: missing: a BOP scene folder needs {', '.join(SCENE_FILES)}") from None


class IncompleteScene(DatasetError):
    """A folder laid out as a BOP scene but for its scene_camera.json (`import-dataset` names it)."""


def missing_scene_camera(path: Path) -> Path | None:
    """scene_camera.json of `path` or of a folder in it that looks like a BOP scene without it."""
    if not path.is_dir():
        return None
    for folder in [path, *sorted(p for p in path.iterdir() if p.is_dir())]:
        looks = any((folder / f).is_file() for f in SCENE_FILES[1:]) or any((folder / d).is_dir() for d in COLOR_DIRS)
        if looks and not is_scene(folder):
            return folder / "scene_camera.json"
    return None


def _load_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(doc, dict):
        raise DatasetError(f"{path}: expected a JSON object keyed by image id")
    return doc


def scene_refs(scene: Path) -> list[BopFrameRef]:
    """A scene's images in id order, with their JSON entries (checked here: a malformed entry
    fails before any bag is written)."""
    docs = [_load_json(scene / f) for f in SCENE_FILES]
    cams, gts, infos = ({_image_id(k, scene / f): v for k, v in d.items()} for d, f in zip(docs, SCENE_FILES))
    has_masks = (scene / "mask_visib").is_dir()
    if not has_masks:
        log.warning("%s: no mask_visib/: boxes from bbox_visib, centroids from the median depth inside them",
                    scene)
    refs = []
    for name, table in (("scene_gt.json", gts), ("scene_gt_info.json", infos)):
        missing = sorted(set(table) - set(cams))
        if missing:  # a frame without its camera would be left out without a word
            raise DatasetError(f"{scene / 'scene_camera.json'}: no entry for image {missing[0]} ({name} has one)")
    for im_id in sorted(cams):
        for name, table in (("scene_gt.json", gts), ("scene_gt_info.json", infos)):
            if im_id not in table:
                raise DatasetError(f"{scene / name}: no entry for image {im_id} (scene_camera.json has one)")
        gt, info, cam = gts[im_id], infos[im_id], cams[im_id]
        where = f"{scene / 'scene_camera.json'}: image {im_id}"
        if not isinstance(cam, dict):
            raise DatasetError(f"{where}: expected an object with cam_K and depth_scale")
        for key in ("cam_K", "depth_scale"):
            if key not in cam:
                raise DatasetError(f"{where}: missing {key!r}")
        if not isinstance(gt, list) or not isinstance(info, list):
            raise DatasetError(f"{scene}: image {im_id}: scene_gt.json and scene_gt_info.json entries must be lists")
        if len(gt) != len(info):
            raise DatasetError(f"{scene}: image {im_id}: scene_gt.json lists {len(gt)} objects, scene_gt_info.json "
                               f"{len(info)}")
        refs.append(BopFrameRef(scene, im_id, cam, gt, info, has_masks))
    return refs


def _image_id(key: str, source: Path) -> int:
    try:
        return int(key)
    except ValueError:
        raise DatasetError(f"{source}: image ids are integers, got {key!r}") from None


def frame_refs(path: str | Path, scenes: Sequence[str] | None = None) -> list[BopFrameRef]:
    """Every image of the chosen scenes (all scenes for None), scene by scene."""
    path = Path(path)
    found = find_scenes(path)
    # A numbered folder beside the scenes that is none (empty, a download cut short) is said, not
    # left out without a word (found from outside).
    others = sorted(p.name for p in path.iterdir() if p.is_dir() and p.name.isdigit() and not is_scene(p)) \
        if found != [path] and scenes is None else []  # --scenes names the ones wanted: no word of others
    if others:
        log.warning("%s: %s skipped: no scene_camera.json", path, ", ".join(others))
    return [r for s in pick_scenes(found, scenes, path) for r in scene_refs(s)]


def _find_image(scene: Path, folders: Sequence[str], im_id: int) -> Path:
    for folder in folders:
        for suffix in IMAGE_SUFFIXES:
            p = scene / folder / f"{im_id:06d}{suffix}"
            if p.is_file():
                return p
    raise DatasetError(f"{scene}: no image {im_id:06d} in {' or '.join(f + '/' for f in folders)}")


def read_frame(ref: BopFrameRef, class_map: ClassMap | None = None) -> LabelledFrame:
    """One image: colour, depth in mm, its intrinsics and its visible objects."""
    class_map = class_map or ycbv_class_map()
    cam_json = ref.scene / "scene_camera.json"
    color_path = _find_image(ref.scene, COLOR_DIRS, ref.im_id)
    depth_path = _find_image(ref.scene, ("depth",), ref.im_id)
    color = to_rgb(read_file_image(color_path, rgb=True), str(color_path))
    scale = finite_number(ref.camera["depth_scale"], f"{cam_json}: image {ref.im_id}", "depth_scale")
    if scale <= 0:  # said of the file that holds it, not of the depth image it would scale
        raise DatasetError(f"{cam_json}: image {ref.im_id}: depth_scale must be > 0, got {scale}")
    depth = depth_to_mm(read_file_image(depth_path, rgb=False), scale, str(depth_path))
    same_size(color.shape, depth, depth_path, color_path)
    K = intrinsics_from_matrix(ref.camera["cam_K"], f"{cam_json}: image {ref.im_id}")
    objects = []
    seen: dict[int, int] = {}  # obj_id -> instances of it listed so far in this image
    for i, (gt, info) in enumerate(zip(ref.gt, ref.gt_info)):
        where = f"{ref.scene}: image {ref.im_id} object {i}"
        if not isinstance(gt, dict) or "obj_id" not in gt:
            raise DatasetError(f"{ref.scene / 'scene_gt.json'}: image {ref.im_id} object {i}: missing 'obj_id'")
        if not isinstance(info, dict) or "bbox_visib" not in info or "visib_fract" not in info:
            raise DatasetError(f"{ref.scene / 'scene_gt_info.json'}: image {ref.im_id} object {i}: needs "
                               f"'bbox_visib' and 'visib_fract'")
        obj_id = int(finite_number(gt["obj_id"], where, "obj_id"))
        instance = obj_id + INSTANCE_STRIDE * seen.get(obj_id, 0)
        seen[obj_id] = seen.get(obj_id, 0) + 1
        label = class_map.label(obj_id)
        if label == IGNORE:  # a segment that is no object: not ground truth (its files are not read)
            continue
        visible = finite_number(info["visib_fract"], where, "visib_fract")
        if not 0 <= visible <= 1:
            raise DatasetError(f"{ref.scene / 'scene_gt_info.json'}: image {ref.im_id} object {i}: visib_fract must "
                               f"be in [0, 1], got {visible}")
        try:
            box = tuple(int(v) for v in info["bbox_visib"])
        except (TypeError, ValueError):
            box = ()
        if len(box) != 4:
            raise DatasetError(f"{ref.scene / 'scene_gt_info.json'}: image {ref.im_id} object {i}: bbox_visib must "
                               f"be [x, y, w, h], got {info['bbox_visib']!r}")
        if ref.has_masks:
            mask_path = ref.scene / "mask_visib" / f"{ref.im_id:06d}_{i:06d}.png"
            if not mask_path.is_file():
                raise DatasetError(f"{mask_path}: missing: the mask of object {i} (obj_id {obj_id}) of image "
                                   f"{ref.im_id}; give it one, or remove its entries from scene_gt.json and "
                                   "scene_gt_info.json (or map its id to 'ignore')")
            mask = read_file_image(mask_path, rgb=False)
            same_size(color.shape, mask, mask_path, color_path)
            mask = (mask > 0) if mask.ndim == 2 else (mask > 0).any(axis=2)
            bbox = mask_bbox(mask)
            if bbox is None:  # not visible in this image
                if visible > 0 and box[2] > 0 and box[3] > 0:  # though scene_gt_info.json says it is
                    log.warning("%s: empty, but scene_gt_info.json gives object %d (obj_id %d) of image %d a visible "
                                "box %s (visib_fract %.2f): left out of the ground truth; a mask written blank?",
                                mask_path, i, obj_id, ref.im_id, list(box), visible)
                continue
            centroid = mask_centroid(mask, depth, K)
        else:
            if box[2] <= 0 or box[3] <= 0:
                continue
            bbox = box
            centroid = box_centroid(bbox, depth, K)
        objects.append(GroundTruthObject(label=label, instance=instance, bbox=bbox,
                                         visible_fraction=visible, centroid=centroid, dataset_id=str(obj_id)))
    return LabelledFrame(color, depth, K, tuple(objects), source=ref.name, sequence=str(ref.scene))


def iter_frames(path: str | Path, class_map: ClassMap | None = None, scenes: Sequence[str] | None = None,
                every: int = 1, max_frames: int | None = None) -> Iterator[LabelledFrame]:
    """The chosen frames of a BOP split or scene folder, read one at a time."""
    for ref in select(frame_refs(path, scenes), every, max_frames):
        yield read_frame(ref, class_map)
