"""Draft ground truth for a team's own recordings (`robot-classify draft-labels`).

`calibrate` and `replay-eval` need labelled frames of the team's own table, and labelling real
frames from nothing (masks, boxes, a BOP layout) is hours of work per few frames. The node has
already found most objects: this writes its segments and its guesses as BOP scenes (one per
bag) that `import-dataset` reads, with a class map holding one line per segment. Correcting a
draft is editing names in that one file while looking at the numbered overlays; objects the
node did not find are added by hand (doc/datasets.md).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from ..data.bags import check_frame_topics, refuse_output_inside
from ..data.frames import CLASS_MAP, DISTRACTOR, DRAFT_HEADER, IGNORE, depth_to_mm
from ..learn.model import ClassifierModel, is_negative
from ..runtime.frame_processor import FrameProcessor
from ..runtime.image_conversion import depth_from_msg
from ..runtime.parameters import check_parameters
from ..runtime.results import ObjectResult
from ..runtime.visualize import draw_labels, label_color
from .replay_eval import run_frames

# obj_id = PER_SCENE * scene + PER_IMAGE * (image + 1) + index: up to MAX_IMAGES frames a bag and
# PER_IMAGE segments a frame, so that no two segments of a draft share an id (100,000 a scene had
# given a bag's 101st frame the ids of the next bag's first)
PER_IMAGE, PER_SCENE = 1000, 10_000_000
MAX_IMAGES = PER_SCENE // PER_IMAGE - 1


def object_id(scene: int, image: int, index: int) -> int:
    """The draft's obj_id of one segment: its own id (unique over the bags of one draft), so that
    the class map names each one."""
    if not (0 <= image < MAX_IMAGES and 0 <= index < PER_IMAGE):
        raise ValueError(f"a draft holds at most {MAX_IMAGES} frames a bag and {PER_IMAGE} segments a frame "
                         "(--every N or --max-frames N take fewer)")
    return PER_SCENE * scene + PER_IMAGE * (image + 1) + index


def draft_labels(bags: Sequence[str | Path], model: ClassifierModel, out: str | Path, topics: tuple[str, str, str],
                 parameters: dict[str, Any] | None = None, every: int = 1, max_frames: int | None = None,
                 quiet: bool = False, made_with: str = "") -> dict[str, Any]:
    """Write the draft of `bags` (a scene each) into `out`, a new or empty folder (built beside it
    and renamed at the end: nothing half-written is left). `max_frames` is per bag. Returns counts
    (frames, objects, named) and `skipped` (reason -> frames the node could not process)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} exists and is not an empty folder; choose a new one (draft-labels never writes "
                         "over or among files)")
    if every < 1 or (max_frames is not None and max_frames < 1):
        raise ValueError(f"every and max_frames must be >= 1, got {every}, {max_frames}")
    if not bags:
        raise ValueError("no bag to draft")
    resolved = [Path(b).resolve() for b in bags]
    twice = next((b for i, b in enumerate(bags) if resolved[i] in resolved[:i]), None)
    if twice is not None:  # its frames would be drafted twice, under two scenes' ids
        raise ValueError(f"{twice} is given twice")
    parameters = check_parameters(parameters)
    # The node's segments and its answers, at the robot's settings (its min_score included).
    processor = FrameProcessor.from_parameters(model, parameters)
    for bag in bags:  # every bag's topics before the first is processed: a bad last bag costs no run
        check_frame_topics(bag, topics, need_info=processor.params.mode == "depth")
    refuse_output_inside(out, bags, "the draft")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    if partial.exists():
        raise ValueError(f"{partial} exists (left by an interrupted draft-labels?); remove it or choose another --out")
    counts: dict[str, Any] = {"frames": 0, "objects": 0, "named": 0, "skipped": {}}
    lines: list[str] = []
    try:
        (partial / "overlays").mkdir(parents=True)
        for scene, bag in enumerate(bags):
            _write_scene(bag, scene, processor, partial, topics, parameters, every, max_frames, quiet, counts, lines)
        if not counts["frames"]:
            why = ", ".join(f"{r}: {n}" for r, n in counts["skipped"].items()) or "the bags hold no colour/depth pair"
            raise ValueError(f"{', '.join(map(str, bags))}: no frame could be processed ({why})")
        classes = ", ".join(c for c in model.class_names if not is_negative(c))
        header = [
            f"{DRAFT_HEADER}{(' ' + made_with) if made_with else ''}: model "
            f"{model.meta.get('name', 'model')} ({str(model.meta.get('sha256', ''))[:12]}).",
            "# One line per segment the node found, with its answer. Correct each name while looking at overlays/",
            "# (each outline carries its id); then:",
            f"#   robot-classify import-dataset {out} --out BAG --class-map {out / CLASS_MAP}",
            f"# Names: a class ({classes}); {DISTRACTOR} for an object of no class; {IGNORE} for a segment",
            "# that is no object (a piece of table, a shadow, a part of a product alone): left out of the ground",
            "# truth. (unknown counts as distractor.) Evaluate the draft with the settings it was made with.",
        ]
        (partial / CLASS_MAP).write_text("\n".join(header + lines) + "\n")
        partial.replace(out)
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    return counts


def _answer(ans: ObjectResult) -> str:
    """What the node said of a segment, and why it said `unknown`: the reader correcting the draft
    needs to know whether the model saw nothing of a class, or a class it then ruled out."""
    if not is_negative(ans.label):
        return f"{ans.label} {ans.score:.2f}"
    if not ans.top_k:
        return "unknown (no class's product has this size or resting pose)" if ans.unknown_reason == "size_or_pose" \
            else "unknown (the unknown examples are nearest)"
    best, score = ans.top_k[0]
    if best in ans.ruled_out:
        return f"unknown ({best} {score:.2f} ruled out by size or resting pose)"
    return f"unknown ({best} {score:.2f}: below min_score, or unlike the training data)"


def _write_scene(bag: str | Path, scene_index: int, processor: FrameProcessor, root: Path,
                 topics: tuple[str, str, str], parameters: dict[str, Any], every: int, max_frames: int | None,
                 quiet: bool, counts: dict[str, Any], lines: list[str]) -> None:
    scene = root / f"{scene_index:06d}"
    for d in ("rgb", "depth", "mask_visib"):
        (scene / d).mkdir(parents=True)
    cameras: dict[str, Any] = {}
    gts: dict[str, Any] = {}
    infos: dict[str, Any] = {}
    lines.append(f"\n# ===== scene {scene_index:06d}: {bag}")
    image = 0
    for frame, res, reason, color, _ in run_frames(bag, processor, topics, quiet, slop=parameters["sync_slop"],
                                                   every=every, desc="draft-labels"):
        if res is None:
            counts["skipped"][reason] = counts["skipped"].get(reason, 0) + 1
            continue
        depth = depth_from_msg(frame.depth, None, color.shape[0] * color.shape[1])
        depth_mm = depth_to_mm(depth, 1000 if depth.dtype.kind == "f" else 1, "depth")
        name = f"{image:06d}.png"
        cv2.imwrite(str(scene / "rgb" / name), cv2.cvtColor(color, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(scene / "depth" / name), depth_mm.astype(np.uint16))
        cameras[str(image)] = {"cam_K": [float(v) for v in frame.info.k], "depth_scale": 1.0,
                               "stamp_ns": int(frame.stamp_ns)}
        gt, info, outlines = [], [], []
        lines.append(f"\n# scene {scene_index:06d} image {image} (stamp {frame.stamp_ns} ns): "
                     f"overlays/{scene_index:06d}_{name}")
        for i, (det, ans) in enumerate(zip(res.extraction.objects, res.labels.objects)):
            x, y, w, h = det.bbox
            full = np.zeros(color.shape[:2], np.uint8)
            full[y:y + h, x:x + w][det.mask] = 255
            cv2.imwrite(str(scene / "mask_visib" / f"{image:06d}_{i:06d}.png"), full)
            oid = object_id(scene_index, image, i)
            named = not is_negative(ans.label)
            guess = ans.label if named else DISTRACTOR
            gt.append({"obj_id": oid})
            info.append({"bbox_visib": [int(x), int(y), int(w), int(h)], "visib_fract": 1.0})
            lines.append(f"{oid}: {guess:<24} # node: {_answer(ans)}; box {x} {y} {w} {h}")
            outlines.append((full, (x, y, w, h), f"{oid} {guess}"))
            counts["named"] += named
        counts["objects"] += len(gt)
        gts[str(image)], infos[str(image)] = gt, info
        cv2.imwrite(str(root / "overlays" / f"{scene_index:06d}_{name}"),
                    cv2.cvtColor(_draw(color, outlines), cv2.COLOR_RGB2BGR))
        image += 1
        counts["frames"] += 1
        if max_frames is not None and image >= max_frames:
            break
    if not image:  # a scene folder without images is no BOP scene: leave none behind
        shutil.rmtree(scene)
        lines.append("# (no frame of this bag could be processed)")
        return
    for file, doc in (("scene_camera.json", cameras), ("scene_gt.json", gts), ("scene_gt_info.json", infos)):
        (scene / file).write_text(json.dumps(doc, indent=1))


def _draw(rgb: np.ndarray, outlines: list[tuple[np.ndarray, tuple[int, int, int, int], str]]) -> np.ndarray:
    """Each segment's outline (what the draft's mask holds, merges included), then each one's id
    and guess where `place_labels` puts it: every id readable, which is what the class map is
    corrected by. A new image."""
    out = np.ascontiguousarray(rgb.copy())
    colours = [label_color(text.split()[-1]) for _, _, text in outlines]
    for (mask, _, _), colour in zip(outlines, colours):
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, colour, 2)
    draw_labels(out, [o[1] for o in outlines], [o[2] for o in outlines], colours, scale=0.4)
    return out
