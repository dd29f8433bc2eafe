"""The classifier's evidence for every answer the node publishes, paired with its truth: what a
model's scores are fitted on when they must say how often the node's names are right.

A model's own calibration is fitted on out-of-fold crops of its training set, cut around
ground-truth objects: there a class wins only objects of the classes, and a name at 0.98 is
right 98% of the time. The node also names clutter, pieces of merged segments and objects of
no class, which no training crop shows; measured on 60 held-out rendered scenes, the default's
names averaged 0.98 where 90.7% were right, and on 17 real frames 0.96 where 62.5% were. Fitted
on the node's answers instead (a name given to clutter counting as wrong), the same scores mean
what a grasp planner reads them as. Two callers: `robot-classify calibrate` on a team's labelled
bag (`evaluation.recalibrate`) and the default recipe on held-out rendered scenes
(`sim.default_recipe`).

  * every detection, run through the node's own processing (`FrameProcessor`), matched to the
    ground truth as `replay-eval` matches (box IoU >= 0.5, objects at least half visible);
  * a detection whose winning class the size and pose checks rule out is left out: the node
    says `unknown` there whatever its score (fitted with them in, 0.5.0's default on 9 real
    frames saw 49 names, 9 right, where the node published 18, 9 right, and its scores came
    out too low);
  * its truth is the class of the object it matched, or no class (an object of no class of the
    model, or nothing: clutter, a patch of table), which counts as a wrong answer when a class
    wins it (`fit_calibration(clutter_is_wrong=True)`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..learn.calibration import Calibration, Evidence, expected_calibration_error, fit_calibration
from ..learn.model import ClassifierModel, is_negative, negative_indices
from ..runtime.frame_processor import FrameProcessor, FrameResult
from .matching import match_boxes, scored_truth

MIN_ANSWERS = 20  # fewer named answers than this cannot fit a score map
COUNTS = ("frames", "detections", "class_objects", "no_class", "ruled_out")


class AnswerEvidence:
    """Collects, frame by frame, the evidence behind each published answer and its truth (an
    index into the classifier's classes, -1 for no class of the model)."""

    def __init__(self, model: ClassifierModel, processor: FrameProcessor, iou_threshold: float = 0.5) -> None:
        self.model, self.processor, self.iou_threshold = model, processor, iou_threshold
        clf = model.classifier
        self._index = {name: int(np.searchsorted(clf.classes_, c)) for c, name in enumerate(model.class_names)
                       if c in clf.classes_}
        self._parts: list[Evidence] = []
        self._truths: list[int] = []
        self.counts = dict.fromkeys(COUNTS, 0)

    def add(self, result: FrameResult, truth: Sequence) -> None:
        """One processed frame and its ground-truth objects (anything with `label`, `bbox` and
        `visible_fraction`: `GroundTruthObject`, or an `ObjectResult` read from a bag)."""
        preds = result.extraction.objects
        if not preds:
            return
        self.counts["frames"] += 1
        gts = scored_truth(truth)
        matched = {i: gts[j].label for i, j, _ in match_boxes([o.bbox for o in preds], [g.bbox for g in gts],
                                                              self.iou_threshold)}
        model, clf = self.model, self.model.classifier
        allowed = self.processor.size_and_pose(result.extraction, model.class_names, model.resting)
        ev = model.evidence(model.features.transform(result.extraction.patches), self.processor.k, allowed)
        # What the node publishes: a class its size / pose checks rule out is `unknown` whatever it scores.
        winners = [model.class_names[c] for c in clf.classes_[ev.labels]]
        shown = np.array([w not in o.ruled_out for w, o in zip(winners, result.labels.objects)], bool)
        self.counts["ruled_out"] += int((~shown).sum())
        self._parts.append(ev.subset(shown))
        for i in np.flatnonzero(shown):
            name = matched.get(i, "")
            self._truths.append(self._index.get(name, -1))
            self.counts["class_objects" if name in self._index and not is_negative(name) else "no_class"] += 1
        self.counts["detections"] += int(shown.sum())

    def evidence(self) -> tuple[Evidence, np.ndarray] | None:
        """(evidence, truths) of every answer so far; None before the first frame with detections."""
        if not self._parts:
            return None
        return Evidence.concatenate(self._parts), np.asarray(self._truths, np.int64)

    def fit(self, where: str) -> tuple[Calibration, dict[str, int]]:
        """A calibration fitted on the answers (the model is not changed), with the counts and how
        many answers named a class before (`named_before`, `right_before`). `where` names the data in
        errors."""
        got = self.evidence()
        if got is None:
            raise ValueError(f"{where}: no frame with both detections and ground truth")
        ev, y = got
        clf = self.model.classifier
        negative = np.flatnonzero(np.isin(clf.classes_, negative_indices(self.model.class_names)))
        answers = int((~np.isin(ev.labels, negative)).sum())
        if answers < MIN_ANSWERS:
            raise ValueError(f"{where}: the model names only {answers} detections there; at least {MIN_ANSWERS} "
                             "are needed to fit scores (more labelled frames)")
        method = "temperature" if ev.logits is not None else "knn_logistic"
        cal = fit_calibration(ev, y, method, negative, clutter_is_wrong=True)
        named = ~np.isin(ev.labels, negative)
        right = int(((ev.labels == y) & named).sum())
        return cal, {**self.counts, "named_before": answers, "right_before": right,
                     "ece_before": self._ece_before(ev, y, named)}

    def _ece_before(self, ev: Evidence, y: np.ndarray, named: np.ndarray) -> float | None:
        """The model's own scores' ECE on these answers, as the fitted one is measured (every name
        given, clutter named counting as wrong): the figure the fit is to lower. None for a model
        without a calibration, whose raw scores are not comparable."""
        if self.model.calibration is None or not named.any():
            return None
        score, _ = self.model.calibration.winner_scores(ev)
        return float(expected_calibration_error(score[named], (ev.labels == y)[named]))
