"""Generated data sets: scenes on disk, and 32x32 patch sets in the PROPS layout.

Scene i of a run with seed S is rendered from seed S * 1_000_003 + i, so a data set is the
same whatever the number of worker processes. Patches are cut from the ground-truth boxes
with jitter like a real detector's, through `patches.crop_patch` (the node's own crop). Whole
scenes are held out for the test split: the scene shift that makes PROPS hard.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import pickle
from pathlib import Path
from typing import Iterator

import numpy as np
from tqdm.auto import tqdm

from ..data.datasets import PROPS_CLASSES, PatchSet
from ..runtime.camera import Intrinsics
from ..data.matching import bbox_tuple, match_boxes
from ..runtime.patches import SegmentationParams, crop_patch, extract_objects, jittered_crop
from .scene_render import LAYOUTS, RenderedScene, SceneRenderer, write_scene

_worker: SceneRenderer | None = None


def scene_seed(seed: int, index: int) -> int:
    return seed * 1_000_003 + index


def _init_worker() -> None:
    global _worker
    _worker = SceneRenderer()


def _render(args: tuple[int, int, int, str]) -> RenderedScene:
    seed, index, max_distractors, layout = args
    return _worker.render(scene_seed(seed, index), max_distractors=max_distractors, layout=layout)


def render_scenes(n: int, seed: int, workers: int = 2, quiet: bool = False,
                  max_distractors: int = 2, layout: str = "apart") -> Iterator[RenderedScene]:
    """Scenes 0..n-1 of `seed`, in order, rendered by `workers` processes (one pybullet client each).
    `max_distractors` (objects of no class per scene) other than 2 gives other scenes for a seed.
    `layout` "crowded": 4-8 objects in contact and stacked (`SceneRenderer.render`)."""
    if n < 1:
        raise ValueError(f"scenes must be >= 1, got {n}")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    jobs = [(seed, i, max_distractors, layout) for i in range(n)]
    bar = tqdm(total=n, desc="render scenes", unit="scene", disable=quiet)
    if workers <= 1:
        with SceneRenderer() as r:
            for s, i, _, _ in jobs:
                yield r.render(scene_seed(s, i), max_distractors=max_distractors, layout=layout)
                bar.update()
    else:
        with mp.get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
            for scene in pool.imap(_render, jobs, chunksize=4):
                yield scene
                bar.update()
    bar.close()


SEQUENCE_IDS = 100  # ground-truth ids of sequence k are k * SEQUENCE_IDS + the object's number (1..)


def render_sequences(n: int, frames: int, seed: int, arc_deg: float = 60.0, stretches: int = 1,
                     quiet: bool = False, max_distractors: int = 2) -> Iterator[RenderedScene]:
    """Sequences 0..n-1 of `seed` (`SceneRenderer.render_sequence`, scene seed as for
    `render_scenes`), frame after frame. Instance ids (meta and mask) are offset by
    k * SEQUENCE_IDS, so that an id names one object in the whole run: a tracker evaluated on
    the bag must not carry an object of one sequence into the next."""
    if n < 1 or frames < 1:
        raise ValueError(f"sequences and frames must be >= 1, got {n}, {frames}")
    if n * SEQUENCE_IDS >= 65535:
        raise ValueError(f"at most {65535 // SEQUENCE_IDS - 1} sequences per run (uint16 instance masks)")
    bar = tqdm(total=n * frames, desc="render sequences", unit="frame", disable=quiet)
    with SceneRenderer() as r:
        for k in range(n):
            offset = k * SEQUENCE_IDS
            for scene in r.render_sequence(scene_seed(seed, k), frames, arc_deg, stretches,
                                           max_distractors=max_distractors):
                scene.mask = np.where(scene.mask > 0, scene.mask + offset, 0).astype(np.uint16)
                for o in scene.meta["objects"]:
                    o["instance"] += offset
                scene.meta["sequence"] = k
                yield scene
                bar.update()
    bar.close()


def patches_from_scene(scene: RenderedScene, rng: np.random.Generator, jitters: int = 2, padding: float = 0.15,
                       mask_background: bool = True, min_visible: float = 0.3, min_pixels: int = 120,
                       detector_crops: bool = True) -> list[tuple[np.ndarray, int]]:
    """Crops of each visible object of the 10 classes: (patch, class index) pairs.

    The first crop uses the exact ground-truth box and mask; the others jitter both like a
    real segmenter would: boxes shifted by up to 10% and 10% smaller to 15% larger, masks
    eroded or dilated by a pixel or two.
    """
    out = []
    for obj in scene.meta["objects"]:
        if obj["class_name"] not in PROPS_CLASSES or obj["visible_fraction"] < min_visible \
                or obj["pixels"] < min_pixels or jitters < 1:
            continue
        b = obj["bbox"]
        x, y, w, h = b["x_offset"], b["y_offset"], b["width"], b["height"]
        full_mask = (scene.mask == obj["instance"]).astype(np.uint8)
        label = PROPS_CLASSES.index(obj["class_name"])
        local = full_mask[y:y + h, x:x + w].astype(bool) if mask_background else None
        out.append((crop_patch(scene.color, (x, y, w, h), padding, local), label))
        for _ in range(jitters - 1):
            out.append((jittered_crop(scene.color, (x, y, w, h), full_mask, rng, padding, mask_background), label))
    if detector_crops:
        out += detector_patches(scene, padding, mask_background, min_visible)
    return out


SHAPES = ("all", "even", "odd")


def distractor_patches(scenes: int, seed: int, padding: float = 0.15, mask_background: bool = True,
                       min_visible: float = 0.3, min_pixels: int = 120, workers: int = 2,
                       quiet: bool = True, shapes: str = "all", jitters: int = 1, detector_crops: bool = False,
                       max_distractors: int = 2, return_scenes: bool = False
                       ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Crops of the objects of no known class (pybullet's random URDFs, household mugs and bowls)
    in `scenes` scenes of `seed`: open-set negatives, from scenes that are not the test scenes.

    `shapes` "even" / "odd" keeps the distractors of even / odd shape index only, so that
    negatives a model is trained on (outlier exposure, `learn.model.NEGATIVE_LABELS`) and the
    ones it is evaluated on are different URDF shapes; a household mug or bowl is split by its
    colour (`SceneRenderer._add_household`), so its geometry is seen on both sides. As for the
    classes (`patches_from_scene`): the ground-truth crop,
    `jitters - 1` jittered ones, and with `detector_crops` the segmenter's crops matched to them.
    `return_scenes` also returns each crop's scene index (to keep a scene's crops in one CV fold)."""
    if shapes not in SHAPES:
        raise ValueError(f"shapes must be one of {SHAPES}, got {shapes!r}")
    rng = np.random.default_rng(seed)
    seg = SegmentationParams(padding=padding, mask_background=mask_background)
    out, where = [], []
    for index, scene in enumerate(render_scenes(scenes, seed, workers, quiet, max_distractors)):
        where += [index - 1] * (len(out) - len(where))  # the crops of the scene before
        wanted = {}
        for obj in scene.meta["objects"]:
            if obj["class_name"] != "distractor" or obj["visible_fraction"] < min_visible \
                    or obj["pixels"] < min_pixels or (shapes != "all" and obj["shape"] % 2 != (shapes == "odd")):
                continue
            wanted[obj["instance"]] = obj
            b = obj["bbox"]
            box = (b["x_offset"], b["y_offset"], b["width"], b["height"])
            full_mask = (scene.mask == obj["instance"]).astype(np.uint8)
            m = full_mask[box[1]:box[1] + box[3], box[0]:box[0] + box[2]].astype(bool)
            out.append(crop_patch(scene.color, box, padding, m if mask_background else None))
            for _ in range(jitters - 1):
                out.append(jittered_crop(scene.color, box, full_mask, rng, padding, mask_background))
        if detector_crops and wanted:
            ex = extract_objects(scene.color, scene.depth, Intrinsics(**scene.meta["intrinsics"]), seg)
            gts = scene.meta["objects"]
            for i, j, _ in match_boxes([o.bbox for o in ex.objects], [bbox_tuple(g["bbox"]) for g in gts]):
                if gts[j]["instance"] in wanted:
                    out.append(ex.objects[i].patch)
    where += [scenes - 1] * (len(out) - len(where))
    X = np.stack(out) if out else np.zeros((0, 32, 32, 3), np.uint8)
    return (X, np.array(where, np.int64)) if return_scenes else X


def detector_patches(scene: RenderedScene, padding: float = 0.15, mask_background: bool = True,
                     min_visible: float = 0.3) -> list[tuple[np.ndarray, int]]:
    """The node's own crops (depth segmentation) of objects it finds, labelled by IoU >= 0.5 with
    ground truth: training on them closes the gap between ground-truth and segmenter crops."""
    params = SegmentationParams(padding=padding, mask_background=mask_background)
    ex = extract_objects(scene.color, scene.depth, Intrinsics(**scene.meta["intrinsics"]), params)
    gts = scene.meta["objects"]
    out = []
    for i, j, _ in match_boxes([o.bbox for o in ex.objects], [bbox_tuple(g["bbox"]) for g in gts]):
        g = gts[j]
        if g["class_name"] in PROPS_CLASSES and g["visible_fraction"] >= min_visible:
            out.append((ex.objects[i].patch, PROPS_CLASSES.index(g["class_name"])))
    return out


def write_props(root: Path, images: np.ndarray, labels: np.ndarray, chunks: np.ndarray, test_chunks: set[int]) -> Path:
    """PROPS layout: meta.pkl + <class>_<chunk>.pkl; chunks are groups of whole scenes."""
    root = Path(root) / "Progress-Objects-Sample"
    root.mkdir(parents=True, exist_ok=True)
    test_names = []
    for c, name in enumerate(PROPS_CLASSES):
        for chunk in np.unique(chunks):
            sel = (labels == c) & (chunks == chunk)
            if not sel.any():
                continue
            stem = f"{name}_{int(chunk)}"
            with open(root / f"{stem}.pkl", "wb") as f:
                pickle.dump({"data": images[sel], "labels": labels[sel].tolist()}, f, protocol=4)
            if int(chunk) in test_chunks:
                test_names.append(stem)
    with open(root / "meta.pkl", "wb") as f:
        pickle.dump({"test_split": sorted(test_names), "class_names": list(PROPS_CLASSES)}, f, protocol=4)
    return root.parent


def generate(out: str | Path, scenes: int, seed: int, with_patches: bool = False, write_scenes: bool = True,
             workers: int = 2, test_fraction: float = 0.2, jitters: int = 3, scenes_per_chunk: int = 10,
             mask_background: bool = True, quiet: bool = False) -> dict[str, PatchSet]:
    """Render `scenes` scenes; optionally write them and/or a PROPS-layout patch set.

    Returns the patch splits ({} without patches). The last `test_fraction` of chunks is test.
    """
    if not 0 <= test_fraction < 1:
        raise ValueError(f"test fraction must be in [0, 1), got {test_fraction}")
    out = Path(out)
    rng = np.random.default_rng(seed)
    images, labels, chunks = [], [], []
    for i, scene in enumerate(render_scenes(scenes, seed, workers, quiet)):
        if write_scenes:
            write_scene(scene, out / "scenes" / f"{i:06d}")
        if with_patches:
            for patch, label in patches_from_scene(scene, rng, jitters, mask_background=mask_background):
                images.append(patch)
                labels.append(label)
                chunks.append(i // scenes_per_chunk)
    if not with_patches:
        return {}
    if not images:
        raise ValueError("no visible objects in the generated scenes; render more scenes")
    X, y, ch = np.stack(images), np.array(labels, np.int64), np.array(chunks, np.int64)
    n_chunks = int(ch.max()) + 1
    n_test = int(round(test_fraction * n_chunks))
    test_chunks = set(range(n_chunks - n_test, n_chunks))
    write_props(out / "patches", X, y, ch, test_chunks)
    (out / "patches" / "generator.json").write_text(json.dumps(
        {"scenes": scenes, "seed": seed, "jitters": jitters, "scenes_per_chunk": scenes_per_chunk,
         "mask_background": mask_background,
         "test_chunks": sorted(test_chunks)}, indent=1))
    test = np.isin(ch, list(test_chunks))
    return {"train": PatchSet(X[~test], y[~test], list(PROPS_CLASSES), ch[~test]),
            "test": PatchSet(X[test], y[test], list(PROPS_CLASSES), ch[test])}
