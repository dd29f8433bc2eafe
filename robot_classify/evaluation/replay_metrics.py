"""replay-eval's per-object records and what they add up to (metrics.json, version 2).

`replay_eval` turns every frame into records, one per ground-truth object and one per
detection left unmatched (`frame_records`); everything else here reduces a list of records to
the numbers a team signs off on: 3D centroid error, box IoU, score thresholds, objects of no
known class, failures, and per-stage timing. Plain dicts and floats: they go straight into
metrics.json (documented in config/replay_eval_metrics.schema.json) and objects.jsonl.

Outcomes of a record (`outcome`):
  correct           matched, truth is one of the model's classes, the label equals it
  misclassified     matched, known truth, labelled another class
  rejected          matched, known truth, labelled `unknown` (score below min_score)
  distractor_named  matched, truth is no class of the model, given a class name (an error)
  distractor_unknown  matched, no-class truth labelled `unknown` (right)
  missed            a ground-truth object no detection matched
  false_positive    a detection no ground-truth object matched
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from ..runtime.frame_processor import UNKNOWN
from ..runtime.results import ObjectResult
from .calibration import coverage_curve, expected_calibration_error, reliability_bins
from ..data.matching import box_iou, match_boxes

SCHEMA = "robot_classify/ReplayEvalMetrics/2"
STAGES = ("conversion", "segmentation", "features", "classifier", "total")
FAILURES = ("misclassified", "distractor_named", "false_positive", "missed", "rejected")
THRESHOLDS = np.round(np.linspace(0.0, 1.0, 21), 2)


def frame_records(frame: int, stamp_ns: int, preds: Sequence[ObjectResult], gts: Sequence[ObjectResult],
                  classes: Sequence[str], iou_threshold: float = 0.5) -> list[dict[str, Any]]:
    """One frame's records: matched pairs (greedy IoU, as before), missed truth, unmatched
    detections. The centroid error is the 3D distance (m) between the detection's centroid and
    the truth's `centroid` when both have one."""
    known = set(classes)
    pairs = match_boxes([o.bbox for o in preds], [g.bbox for g in gts], iou_threshold)
    by_gt = {j: (i, iou) for i, j, iou in pairs}
    matched_pred = {i for i, _, _ in pairs}
    out = []
    for j, g in enumerate(gts):
        rec = {"frame": frame, "stamp_ns": stamp_ns, "truth": g.label, "known": g.label in known, "gt_index": j,
               "gt_instance": g.instance, "truth_bbox": list(g.bbox), "visible_fraction": g.visible_fraction}
        if j not in by_gt:
            out.append({**rec, "outcome": "missed", "label": None, "top": None, "score": None, "iou": None,
                        "centroid_error_m": None, "pred_index": None, "bbox": None, "track_id": None,
                        "fused_label": None})
            continue
        i, iou = by_gt[j]
        p = preds[i]
        err = None
        if p.centroid is not None and g.centroid is not None:
            err = float(np.linalg.norm(np.subtract(p.centroid, g.centroid)))
        if rec["known"]:
            outcome = "correct" if p.label == g.label else "rejected" if p.label == UNKNOWN else "misclassified"
        else:
            outcome = "distractor_unknown" if p.label == UNKNOWN else "distractor_named"
        out.append({**rec, "outcome": outcome, **_prediction(p, i), "iou": float(iou), "centroid_error_m": err})
    for i, p in enumerate(preds):
        if i not in matched_pred:
            best = max((box_iou(p.bbox, g.bbox) for g in gts), default=0.0)
            out.append({"frame": frame, "stamp_ns": stamp_ns, "truth": None, "known": None, "gt_index": None,
                        "gt_instance": None, "truth_bbox": None, "visible_fraction": None, "outcome": "false_positive",
                        **_prediction(p, i), "iou": None, "best_iou": float(best), "centroid_error_m": None})
    return out


def _prediction(p: ObjectResult, i: int) -> dict[str, Any]:
    return {"label": p.label, "top": p.top_k[0][0] if p.top_k else p.label, "score": float(p.score),
            "pred_index": i, "bbox": list(p.bbox), "track_id": None if p.track is None else p.track.id,
            "fused_label": None if p.track is None else p.track.label}


def severity(rec: dict[str, Any]) -> tuple[int, float]:
    """Worst first, as (tier, weight): a wrong class for one of the model's objects (a grasp
    planner acts on it; most confident first), then a class name given to a distractor or to
    nothing, then missed objects of the model's classes (more visible = worse), then known
    objects refused as `unknown`, then missed objects of no class, last detections of nothing
    labelled `unknown`. A missed distractor comes after the model's own objects refused: on a
    cluttered real table they would otherwise fill the gallery (found from outside: 16 of 40).
    (0, 0) is no failure."""
    o = rec["outcome"]
    if o == "misclassified":
        return 6, rec["score"]
    if o == "distractor_named" or (o == "false_positive" and rec["label"] != UNKNOWN):
        return 5, rec["score"]
    if o == "missed":
        return 4 if rec["known"] else 2, 1.0 if rec["visible_fraction"] is None else rec["visible_fraction"]
    if o == "rejected":
        return 3, 1.0 - rec["score"]
    if o == "false_positive":
        return 1, rec["score"]
    return 0, 0.0


def distribution(values: Iterable[float], scale: float = 1.0) -> dict[str, Any]:
    """n, median, p90, max, mean (times `scale`); None for no values."""
    v = np.asarray(list(values), float) * scale
    if not len(v):
        return {"n": 0, "median": None, "p90": None, "max": None, "mean": None}
    return {"n": int(len(v)), "median": float(np.median(v)), "p90": float(np.percentile(v, 90)),
            "max": float(v.max()), "mean": float(v.mean())}


def centroid_summary(records: list[dict], classes: Sequence[str]) -> dict[str, Any]:
    """3D centroid error of matched objects, in millimetres: all, and per ground-truth class
    (objects of no known class included under their own names)."""
    rows = [r for r in records if r["centroid_error_m"] is not None]
    labels = list(classes) + sorted({r["truth"] for r in rows} - set(classes))
    return {"unit": "mm", **distribution((r["centroid_error_m"] for r in rows), 1000.0),
            "matched_without_centroid": sum(1 for r in records
                                            if r["iou"] is not None and r["centroid_error_m"] is None),
            "per_class": {c: distribution((r["centroid_error_m"] for r in rows if r["truth"] == c), 1000.0)
                          for c in labels if any(r["truth"] == c for r in rows)}}


def iou_summary(records: list[dict], threshold: float = 0.5) -> dict[str, Any]:
    ious = np.array([r["iou"] for r in records if r["iou"] is not None], float)
    edges = np.linspace(threshold, 1.0, 11)
    counts = np.histogram(ious, bins=edges)[0] if len(ious) else np.zeros(10, np.int64)
    d = distribution(ious)
    return {**d, "p10": float(np.percentile(ious, 10)) if len(ious) else None,
            "min": float(ious.min()) if len(ious) else None, "match_threshold": threshold,
            "histogram": {"edges": [round(float(e), 3) for e in edges], "counts": [int(c) for c in counts]}}


def threshold_summary(records: list[dict], min_score: float, n_bins: int = 10) -> dict[str, Any]:
    """What `min_score` buys: over matched objects of known classes, the best class's score and
    whether that class is right (whatever min_score said); the reliability bins on those; and
    per threshold, what the node would then keep (coverage, accuracy) and how many objects of
    no known class it would still name. The curves leave out what the node's other checks made
    `unknown` (size, pose, open set: `unknown` although the score passed `min_score`), which
    no threshold brings back."""
    known = [r for r in records if r["known"] and r["iou"] is not None]
    # Clipped: a vote share summed in floating point may come out a hair above 1.
    scores = np.clip(np.array([r["score"] for r in known], float), 0.0, 1.0)
    right = np.array([r["top"] == r["truth"] for r in known], bool)
    others = [r for r in records if r["known"] is False and r["iou"] is not None]
    distractor = np.clip([r["score"] for r in others], 0.0, 1.0)

    def vetoed(rs: list[dict]) -> np.ndarray:
        return np.array([r["label"] == UNKNOWN and r["score"] >= min_score for r in rs], bool)
    keep = ~vetoed(known)
    curve = dict(coverage_curve(scores[keep], right[keep], THRESHOLDS))
    if len(scores):  # the share of all of them, not of those the checks left
        curve["coverage"] = np.asarray(curve["count"]) / len(scores)
    bins = reliability_bins(scores, right, n_bins)
    ece = expected_calibration_error(scores, right, n_bins)
    open_ = ~vetoed(others)
    named = [float(((distractor >= t) & open_).mean()) if len(distractor) else None for t in THRESHOLDS]
    return {
        "min_score": min_score, "n": int(len(scores)), "top1_accuracy": float(right.mean()) if len(right) else None,
        "ece": None if not np.isfinite(ece) else ece,
        "scores": {"right": _hist(scores[right]), "wrong": _hist(scores[~right]), "no_class": _hist(distractor)},
        "coverage": [{"min_score": float(t), "coverage": _num(c), "accuracy": _num(a), "kept": int(k),
                      "no_class_named": n}
                     for t, c, a, k, n in zip(THRESHOLDS, curve["coverage"], curve["accuracy"], curve["count"], named)],
        "reliability": {"edges": [float(e) for e in bins["edges"]], "confidence": [_num(v) for v in bins["confidence"]],
                        "accuracy": [_num(v) for v in bins["accuracy"]], "count": [int(c) for c in bins["count"]]},
    }


def _hist(v: np.ndarray) -> dict[str, Any]:
    return {"n": int(len(v)), "edges": [round(float(e), 2) for e in np.linspace(0, 1, 11)],
            "counts": [int(c) for c in np.histogram(v, bins=np.linspace(0, 1, 11))[0]]}


def _num(v: float) -> float | None:
    return None if not np.isfinite(v) else float(v)


def non_class_summary(records: list[dict]) -> dict[str, Any]:
    """Ground-truth objects that are none of the model's classes: how many, how many the node
    called `unknown` (right), what the others were called."""
    rows = [r for r in records if r["known"] is False]
    matched = [r for r in rows if r["iou"] is not None]
    called: dict[str, int] = {}
    for r in matched:
        called[r["label"]] = called.get(r["label"], 0) + 1
    by_truth: dict[str, int] = {}
    for r in rows:
        by_truth[r["truth"]] = by_truth.get(r["truth"], 0) + 1
    return {"ground_truth": len(rows), "matched": len(matched),
            "labelled_unknown": sum(1 for r in matched if r["label"] == UNKNOWN),
            "named": sum(1 for r in matched if r["label"] != UNKNOWN),
            "called": dict(sorted(called.items(), key=lambda kv: (-kv[1], kv[0]))),
            "what_they_were": dict(sorted(by_truth.items(), key=lambda kv: (-kv[1], kv[0])))}


def named_records(records: list[dict]) -> list[dict]:
    """The detections that carry a class name (not `unknown`), clutter included."""
    return [r for r in records if r["label"] is not None and r["label"] != UNKNOWN]


def named_summary(records: list[dict]) -> dict[str, Any]:
    """What a grasp planner acts on: every detection that carries a class name, clutter included.
    `precision` is the share of them that are right (None when nothing was named). Also the
    detection recall over objects of the model's classes alone (`class_recall`): rejecting
    clutter must not lose them. `mean_score` and `ece` say whether the names' scores mean what
    they say over the same detections: `threshold_summary`'s ECE is over objects of the classes
    alone, where a name given to clutter at 0.95 does not count against it."""
    named = named_records(records)
    right = sum(1 for r in named if r["outcome"] == "correct")
    class_objects = [r for r in records if r["known"]]
    scores = np.clip(np.array([r["score"] for r in named], float), 0.0, 1.0)
    ece = expected_calibration_error(scores, np.array([r["outcome"] == "correct" for r in named], bool))
    return {"named": len(named), "right": right, "precision": right / len(named) if named else None,
            "mean_score": float(scores.mean()) if named else None, "ece": _num(ece) if named else None,
            "wrong_class": sum(1 for r in named if r["outcome"] == "misclassified"),
            "non_class_named": sum(1 for r in named if r["outcome"] == "distractor_named"),
            "clutter_named": sum(1 for r in named if r["outcome"] == "false_positive"),
            "class_objects": len(class_objects),
            "class_recall": (sum(1 for r in class_objects if r["iou"] is not None) / len(class_objects)
                             if class_objects else None)}


def failure_counts(records: list[dict]) -> dict[str, int]:
    out = {k: 0 for k in FAILURES}
    for r in records:
        if r["outcome"] in out:
            out[r["outcome"]] += 1
    return out


def timing_summary(stage_rows: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """p50 / p99 / mean / max milliseconds per stage over the processed frames."""
    out = {}
    for s in STAGES:
        v = np.array([r[s] for r in stage_rows if s in r], float)
        if len(v):
            out[s] = {"p50": float(np.percentile(v, 50)), "p99": float(np.percentile(v, 99)),
                      "mean": float(v.mean()), "max": float(v.max())}
    return out
