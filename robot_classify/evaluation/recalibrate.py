"""Scores that mean what they say on a team's own camera: refit a model's calibration on a
labelled bag of real frames.

A model's calibration (`learn.calibration`) is fitted on its training data's out-of-fold
crops: for the embedded default, renders. On real crops the same scores are too confident
(README "On real frames"), because nothing in the renders said how a real carton looks. A
team that has a few labelled frames of its own table (`import-dataset` from BOP / YCB-Video
folders, or its own bag with ground truth) refits the calibration on what the node actually
answers there (`data.answer_evidence`: every detection through the node's own processing,
clutter named counting as wrong); the model's features, index and weights are unchanged, only
the score map, the default `min_score` and the novelty threshold are refitted.

Measure on frames the calibration did not see (README: a split by source).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..data.answer_evidence import AnswerEvidence
from ..data.bags import BagError, read_ground_truth
from ..learn.calibration import Calibration, Evidence
from ..learn.model import ClassifierModel
from ..runtime.frame_processor import FrameProcessor
from ..runtime.parameters import check_parameters
from .replay_eval import run_frames


def _answers(bag: str | Path, model: ClassifierModel, topics: tuple[str, str, str],
             parameters: dict[str, Any] | None, gt_topic: str | None, sidecar: str | Path | None,
             iou_threshold: float, quiet: bool) -> AnswerEvidence:
    gt = read_ground_truth(bag, sidecar, gt_topic)
    if not gt:
        raise BagError(f"{bag}: no ground truth to calibrate on (topic {gt_topic or '/ground_truth/object_labels'}, "
                       "--ground-truth-topic TOPIC or --ground-truth FILE.jsonl)")
    processor = FrameProcessor.from_parameters(model, check_parameters(parameters))
    answers = AnswerEvidence(model, processor, iou_threshold)
    for frame, res, _, _, _ in run_frames(bag, processor, topics, quiet):
        truth = gt.get(frame.stamp_ns)
        if res is not None and truth is not None:
            answers.add(res, truth.objects)
    return answers


def collect_evidence(bag: str | Path, model: ClassifierModel, topics: tuple[str, str, str],
                     parameters: dict[str, Any] | None = None, gt_topic: str | None = None,
                     sidecar: str | Path | None = None, iou_threshold: float = 0.5, quiet: bool = True
                     ) -> tuple[Evidence, np.ndarray, dict[str, int]]:
    """The classifier's evidence for every detection the node makes on the bag's frames, and
    its truth as an index into the classifier's classes (-1: no class of the model)."""
    answers = _answers(bag, model, topics, parameters, gt_topic, sidecar, iou_threshold, quiet)
    got = answers.evidence()
    if got is None:
        raise BagError(f"{bag}: no frame with both detections and ground truth")
    return (*got, answers.counts)


def recalibrate(bag: str | Path, model: ClassifierModel, topics: tuple[str, str, str],
                parameters: dict[str, Any] | None = None, gt_topic: str | None = None,
                sidecar: str | Path | None = None, quiet: bool = True) -> tuple[Calibration, dict[str, Any]]:
    """A new calibration for `model` from the bag's labelled frames (the model is not changed)."""
    cal, counts = _answers(bag, model, topics, parameters, gt_topic, sidecar, 0.5, quiet).fit(str(bag))
    return cal, {**counts, "bag": str(bag)}
