"""Measure patch extraction (and optionally the full chain) against generated ground truth."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..runtime.camera import Intrinsics
from ..data.datasets import PROPS_CLASSES
from ..data.matching import bbox_tuple, match_boxes
from ..learn.model import ClassifierModel
from ..runtime.patches import SegmentationParams, extract_objects
from ..sim.scene_render import RenderedScene, read_scene


def evaluate_scene(scene: RenderedScene, params: SegmentationParams, model: ClassifierModel | None = None,
                   min_visible: float = 0.5) -> dict[str, Any]:
    K = Intrinsics(**scene.meta["intrinsics"])
    ex = extract_objects(scene.color, scene.depth, K, params, instance_mask=scene.mask)
    gts = scene.meta["objects"]
    pairs = match_boxes([o.bbox for o in ex.objects], [bbox_tuple(g["bbox"]) for g in gts])
    matched_gt = {j: i for i, j, _ in pairs}
    labels = model.predict(ex.patches)[0] if model is not None and ex.objects else []
    out = {"ms": ex.ms, "detections": len(ex.objects), "true_positives": len(pairs), "relevant": 0, "found": 0,
           "centroid_errors": [], "chain_total": 0, "chain_correct": 0, "classified": 0, "classified_correct": 0,
           "fallback": ex.warning is not None}
    for j, g in enumerate(gts):
        relevant = g["visible_fraction"] >= min_visible
        out["relevant"] += relevant
        i = matched_gt.get(j)
        if relevant and i is not None:
            out["found"] += 1
        if i is not None and g["centroid"] is not None and ex.objects[i].centroid is not None:
            out["centroid_errors"].append(float(np.linalg.norm(ex.objects[i].centroid - np.array(
                [g["centroid"][a] for a in "xyz"]))))
        if model is not None and relevant and g["class_name"] in PROPS_CLASSES:
            out["chain_total"] += 1
            if i is not None:
                out["classified"] += 1
                ok = model.class_names[labels[i]] == g["class_name"]
                out["classified_correct"] += ok
                out["chain_correct"] += ok
    return out


def evaluate_scenes(folders: list[Path], params: SegmentationParams, model: ClassifierModel | None = None,
                    quiet: bool = False) -> dict[str, Any]:
    rows = [evaluate_scene(read_scene(f), params, model) for f in tqdm(folders, desc="eval patches", disable=quiet)]
    if not rows:
        raise ValueError("no scenes to evaluate")
    tot = {k: sum(r[k] for r in rows) for k in rows[0] if k not in ("ms", "centroid_errors", "fallback")}
    errs = np.array([e for r in rows for e in r["centroid_errors"]])
    ms = np.array([r["ms"] for r in rows])
    report = {
        "scenes": len(rows),
        "recall": tot["found"] / max(tot["relevant"], 1),
        "precision": tot["true_positives"] / max(tot["detections"], 1),
        "centroid_error_median_m": float(np.median(errs)) if len(errs) else None,
        "centroid_error_p90_m": float(np.percentile(errs, 90)) if len(errs) else None,
        "ms_median": float(np.median(ms)), "ms_p90": float(np.percentile(ms, 90)),
        "plane_fallbacks": int(sum(r["fallback"] for r in rows)),
        "counts": tot,
    }
    if model is not None:
        report["object_accuracy"] = tot["classified_correct"] / max(tot["classified"], 1)
        report["end_to_end_accuracy"] = tot["chain_correct"] / max(tot["chain_total"], 1)
    return report
