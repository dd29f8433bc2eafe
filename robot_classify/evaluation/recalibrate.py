"""Scores that mean what they say on a team's own camera: refit a model's calibration on a
labelled bag of real frames.

A model's calibration (`learn.calibration`) is fitted on its training data's out-of-fold
crops: for the embedded default, renders. On real crops the same scores are far too
confident (measured on real frames: ECE 0.5-0.7, wrong names at 0.9+; README "On real
frames"), because nothing in the renders said how a real carton looks. A team that has a
few labelled frames of its own table (`import-dataset` from BOP / YCB-Video folders, or its
own bag with ground truth) refits the calibration on what the node actually answers there:

  * every detection the node makes, run through the node's own processing (`FrameProcessor`,
    the node's parameters), matched to the ground truth like `replay-eval` does; a detection
    whose winning class the size and pose checks rule out is left out: the node says `unknown`
    there whatever its score (fitted with them in, 0.5.0's default on 9 real frames saw 49
    names, 9 right, where the node published 18, 9 right, and its scores came out too low);
  * its truth is the class of the object it matched, or no class (a ground-truth object of no
    class of the model, or nothing: clutter, a patch of table), which counts as a wrong answer
    when a class wins it (`fit_calibration(clutter_is_wrong=True)`);
  * the model's features, index and weights are unchanged; only the score map, the default
    `min_score` and the novelty threshold are refitted.

Measure on frames the calibration did not see (README: a split by source).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..data.bags import BagError, read_ground_truth
from ..learn.calibration import Calibration, Evidence, fit_calibration
from ..learn.model import ClassifierModel, is_negative, negative_indices
from ..runtime.frame_processor import FrameProcessor
from ..runtime.parameters import check_parameters
from .matching import match_boxes
from .replay_eval import run_frames

MIN_ANSWERS = 20  # fewer named answers than this cannot fit a score map


def collect_evidence(bag: str | Path, model: ClassifierModel, topics: tuple[str, str, str],
                     parameters: dict[str, Any] | None = None, gt_topic: str | None = None,
                     sidecar: str | Path | None = None, iou_threshold: float = 0.5, quiet: bool = True) -> tuple[Evidence, np.ndarray, dict[str, int]]:
    """The classifier's evidence for every detection the node makes on the bag's frames, and
    its truth as an index into the classifier's classes (-1: no class of the model)."""
    gt = read_ground_truth(bag, sidecar, gt_topic)
    if not gt:
        raise BagError(f"{bag}: no ground truth to calibrate on (topic {gt_topic or '/ground_truth/object_labels'}, "
                       "--ground-truth-topic TOPIC or --ground-truth FILE.jsonl)")
    processor = FrameProcessor.from_parameters(model, check_parameters(parameters))
    clf = model.classifier
    index = {name: int(np.searchsorted(clf.classes_, c)) for c, name in enumerate(model.class_names)
             if c in clf.classes_}
    parts, truths = [], []
    counts = {"frames": 0, "detections": 0, "class_objects": 0, "no_class": 0, "ruled_out": 0}
    for frame, res, _, _, _ in run_frames(bag, processor, topics, quiet):
        truth = gt.get(frame.stamp_ns)
        if res is None or truth is None or not res.extraction.objects:
            continue
        counts["frames"] += 1
        gts = [g for g in truth.objects if g.visible_fraction is None or g.visible_fraction >= 0.5]
        preds = res.extraction.objects
        matched = {i: gts[j].label for i, j, _ in match_boxes([o.bbox for o in preds], [g.bbox for g in gts],
                                                              iou_threshold)}
        X = model.features.transform(res.extraction.patches)
        ev = clf.evidence(X, processor.k)
        # What the node publishes: a class its size / pose checks rule out is `unknown` whatever it scores.
        winners = [model.class_names[c] for c in clf.classes_[ev.labels]]
        shown = np.array([w not in o.ruled_out for w, o in zip(winners, res.labels.objects)], bool)
        counts["ruled_out"] += int((~shown).sum())
        parts.append(ev.subset(shown))
        for i in np.flatnonzero(shown):
            name = matched.get(i, "")
            truths.append(index.get(name, -1))
            counts["class_objects" if name in index and not is_negative(name) else "no_class"] += 1
        counts["detections"] += int(shown.sum())
    if not parts:
        raise BagError(f"{bag}: no frame with both detections and ground truth")
    return Evidence.concatenate(parts), np.asarray(truths, np.int64), counts


def recalibrate(bag: str | Path, model: ClassifierModel, topics: tuple[str, str, str],
                parameters: dict[str, Any] | None = None, gt_topic: str | None = None,
                sidecar: str | Path | None = None, quiet: bool = True) -> tuple[Calibration, dict[str, Any]]:
    """A new calibration for `model` from the bag's labelled frames (the model is not changed)."""
    ev, y, counts = collect_evidence(bag, model, topics, parameters, gt_topic, sidecar, quiet=quiet)
    clf = model.classifier
    negative = np.flatnonzero(np.isin(clf.classes_, negative_indices(model.class_names)))
    answers = int((~np.isin(ev.labels, negative)).sum())
    if answers < MIN_ANSWERS:
        raise ValueError(f"{bag}: the model names only {answers} detections there; at least {MIN_ANSWERS} "
                         "are needed to fit scores (more labelled frames)")
    method = "temperature" if ev.logits is not None else "knn_logistic"
    cal = fit_calibration(ev, y, method, negative, clutter_is_wrong=True)
    right = int(((ev.labels == y) & ~np.isin(ev.labels, negative)).sum())
    return cal, {**counts, "named_before": answers, "right_before": right, "bag": str(bag)}
