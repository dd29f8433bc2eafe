"""Draft ground truth for a team's own recording (`robot-classify draft-labels`).

`calibrate` and `replay-eval` need labelled frames of the team's own table, and labelling real
frames from nothing (masks, boxes, a BOP layout) is hours of work per few frames. The node has
already found most objects: this writes its segments and its guesses as a BOP scene that
`import-dataset` reads, with a class map holding one line per segment. Correcting a draft is
editing class names in that one file while looking at the numbered overlays; objects the node
did not find are added with a mask file and a line in each JSON file (doc/datasets.md).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..data.bags import opened_bag
from ..data.frames import DISTRACTOR, depth_to_mm
from ..learn.model import ClassifierModel, is_negative
from ..runtime.frame_processor import FrameProcessor
from ..runtime.image_conversion import depth_from_msg
from ..runtime.parameters import check_parameters
from ..runtime.visualize import draw_objects
from .replay_eval import run_frames

SCENE = "000000"
CLASS_MAP = "class_map.yaml"
OBJECTS_PER_FRAME = 1000  # obj_id = OBJECTS_PER_FRAME * (image id + 1) + object index: one id per segment


def object_id(image: int, index: int) -> int:
    """The draft's obj_id of one segment: its own id, so that the class map names each one."""
    return OBJECTS_PER_FRAME * (image + 1) + index


def draft_labels(bag: str | Path, model: ClassifierModel, out: str | Path, topics: tuple[str, str, str],
                 parameters: dict[str, Any] | None = None, every: int = 1, max_frames: int | None = None,
                 quiet: bool = False) -> dict[str, int]:
    """Write the draft into the new folder `out` (built beside it and renamed at the end: nothing
    half-written is left). Returns counts: frames, objects, named (given a class name)."""
    out = Path(out)
    if out.exists():
        raise ValueError(f"{out} exists; choose a new folder (draft-labels never writes over or among files)")
    if every < 1 or (max_frames is not None and max_frames < 1):
        raise ValueError(f"every and max_frames must be >= 1, got {every}, {max_frames}")
    if not out.parent.is_dir():
        raise ValueError(f"{out.parent}: no such folder")
    parameters = check_parameters(parameters)
    # The node's segments and its answers, at the robot's settings (its min_score included).
    processor = FrameProcessor.from_parameters(model, parameters)
    partial = out.with_name(f".{out.name}.partial")
    if partial.exists():
        raise ValueError(f"{partial} exists (left by an interrupted draft-labels?); remove it or choose another --out")
    try:
        counts = _write(bag, processor, partial, out, topics, parameters, every, max_frames, quiet)
        if not counts["frames"]:
            raise ValueError(f"{bag}: no frame could be processed (see the warnings above)")
        partial.replace(out)
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    return counts


def _write(bag: str | Path, processor: FrameProcessor, root: Path, out: Path, topics: tuple[str, str, str],
           parameters: dict[str, Any], every: int, max_frames: int | None, quiet: bool) -> dict[str, int]:
    scene = root / SCENE
    for d in ("rgb", "depth", "mask_visib"):
        (scene / d).mkdir(parents=True)
    (root / "overlays").mkdir()
    cameras: dict[str, Any] = {}
    gts: dict[str, Any] = {}
    infos: dict[str, Any] = {}
    lines: list[str] = []
    counts = {"frames": 0, "objects": 0, "named": 0, "skipped": 0}
    with opened_bag(bag) as reader:
        for n, (frame, res, reason, color, _) in enumerate(run_frames(bag, processor, topics, quiet,
                                                                      slop=parameters["sync_slop"],
                                                                      reader=reader)):
            if n % every:
                continue
            if res is None:
                counts["skipped"] += 1
                continue
            image = counts["frames"]
            depth = depth_from_msg(frame.depth, None, color.shape[0] * color.shape[1])
            depth_mm = depth_to_mm(depth, 1000 if depth.dtype.kind == "f" else 1, "depth")
            name = f"{image:06d}.png"
            cv2.imwrite(str(scene / "rgb" / name), cv2.cvtColor(color, cv2.COLOR_RGB2BGR))
            cv2.imwrite(str(scene / "depth" / name), depth_mm.astype(np.uint16))
            cameras[str(image)] = {"cam_K": [float(v) for v in frame.info.k], "depth_scale": 1.0,
                                   "stamp_ns": int(frame.stamp_ns)}
            gt, info, drawn = [], [], []
            lines.append(f"\n# image {image} (stamp {frame.stamp_ns} ns): overlays/{name}")
            for i, (det, ans) in enumerate(zip(res.extraction.objects, res.labels.objects)):
                x, y, w, h = det.bbox
                full = np.zeros(color.shape[:2], np.uint8)
                full[y:y + h, x:x + w][det.mask] = 255
                cv2.imwrite(str(scene / "mask_visib" / f"{image:06d}_{i:06d}.png"), full)
                oid = object_id(image, i)
                named = not is_negative(ans.label)
                guess = ans.label if named else DISTRACTOR
                gt.append({"obj_id": oid})
                info.append({"bbox_visib": [int(x), int(y), int(w), int(h)], "visib_fract": 1.0})
                lines.append(f"{oid}: {guess:<24} # node: {ans.label} {ans.score:.2f}, box {x} {y} {w} {h}")
                drawn.append(((x, y, w, h), str(oid), None))
                counts["named"] += named
            counts["objects"] += len(gt)
            gts[str(image)], infos[str(image)] = gt, info
            cv2.imwrite(str(root / "overlays" / name), cv2.cvtColor(draw_objects(color, drawn), cv2.COLOR_RGB2BGR))
            counts["frames"] += 1
            if max_frames is not None and counts["frames"] >= max_frames:
                break
    for file, doc in (("scene_camera.json", cameras), ("scene_gt.json", gts), ("scene_gt_info.json", infos)):
        (scene / file).write_text(json.dumps(doc, indent=1))
    classes = ", ".join(c for c in processor.model.class_names if not is_negative(c))
    header = [
        f"# Draft labels from {Path(bag).name} by robot-classify draft-labels: one line per segment the node found,",
        "# with the node's guess. Correct each class name while looking at overlays/ (each box carries its id),",
        f"# then: robot-classify import-dataset {out} --out BAG --class-map {out / CLASS_MAP}",
        f"# Class names of this model: {classes}. Objects of no class, and segments that are no object: "
        f"{DISTRACTOR}.",
    ]
    (root / CLASS_MAP).write_text("\n".join(header + lines) + "\n")
    return counts
