"""A trained patch classifier: feature pipeline + kNN or linear classifier + class names.

This is what the CLI trains, what a model file holds and what the node runs per frame.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .calibration import Calibration
from .features import PATCH_SIZE, FeaturePipeline, check_patches
from .knn import KNNClassifier
from .linear import LinearClassifier


@dataclass
class Prediction:
    """Per patch: label index, calibrated scores over all classes, and the open-set verdict."""
    labels: np.ndarray
    proba: np.ndarray
    known: np.ndarray


@dataclass
class ClassifierModel:
    features: FeaturePipeline
    classifier: KNNClassifier | LinearClassifier
    class_names: list[str]
    patch_size: int = PATCH_SIZE
    meta: dict[str, Any] = field(default_factory=dict)
    calibration: Calibration | None = None  # scores and 'unknown' (learn.calibration); None: raw scores

    @property
    def kind(self) -> str:
        return self.classifier.kind  # the protocol's name for it (learn.protocol)

    def fit(self, images: np.ndarray, labels: np.ndarray) -> "ClassifierModel":
        labels = np.asarray(labels)
        if labels.size and (labels.min() < 0 or labels.max() >= len(self.class_names)):
            raise ValueError(f"labels must be in [0, {len(self.class_names)}), got range "
                             f"[{labels.min()}, {labels.max()}]")
        self.classifier.fit(self.features.fit_transform(images), labels)
        return self

    # ------------------------------------------------------------------ teaching (kNN)
    def _taught_classifier(self) -> KNNClassifier:
        if not isinstance(self.classifier, KNNClassifier):
            raise ValueError("this model is linear: it cannot learn new examples without retraining "
                             "(`robot-classify train`); teaching needs a kNN model")
        return self.classifier

    def add_features(self, X: np.ndarray, label: str) -> int:
        """Append feature rows (from `self.features`) as examples of `label`, a new class if it is not
        one yet; returns that class's number of samples. A kNN learns by memorising."""
        clf = self._taught_classifier()
        if label not in self.class_names:
            self.class_names.append(label)
        c = self.class_names.index(label)
        clf.add_samples(X, np.full(len(X), c, np.int64))
        return self.class_count(label)

    def add_examples(self, images: np.ndarray, label: str) -> int:
        """`add_features` on patches, through the model's own feature pipeline."""
        return self.add_features(self.features.transform(check_patches(images)), label)

    def forget(self, label: str) -> None:
        """Remove every example of `label` and the class itself (later classes move down one index)."""
        clf = self._taught_classifier()
        if label not in self.class_names:
            raise ValueError(f"{label!r} is not a class of this model")
        c = self.class_names.index(label)
        if len(self.class_names) == 1:
            raise ValueError(f"{label!r} is the model's only class; a model needs at least one")
        clf.remove_samples(np.flatnonzero(clf.classes_[clf.y_] == c))
        self.class_names.pop(c)
        clf.classes_ = np.where(clf.classes_ > c, clf.classes_ - 1, clf.classes_)

    def class_count(self, label: str) -> int:
        """Training samples the model holds for `label` (0 for a linear model or an unknown label)."""
        if label not in self.class_names or not isinstance(self.classifier, KNNClassifier):
            return 0
        clf = self.classifier
        return int((clf.classes_[clf.y_] == self.class_names.index(label)).sum())

    def predict(self, images: np.ndarray, k: int | None = None, stage_ms: dict[str, float] | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """(label indices, scores) per patch; scores are calibrated probabilities when the model
        has a calibration (format 3), else the classifier's own (vote share / softmax).

        `k` overrides a kNN model's neighbour count for this call only (the tuned k is kept).
        `stage_ms`, when given, receives the milliseconds spent on "features" (one clock read:
        the node's per-stage timing, `FrameResult.stages_ms`)."""
        pred = self.classify(images, k, stage_ms)
        return pred.labels, pred.proba

    def classify(self, images: np.ndarray, k: int | None = None, stage_ms: dict[str, float] | None = None
                 ) -> Prediction:
        """`predict` plus the open-set verdict: `known` is False for a patch farther from the
        training data (kNN: distance; linear: energy) than the model's validation data warrants."""
        images = check_patches(images)
        if not len(images):
            return Prediction(np.zeros(0, np.int64), np.zeros((0, len(self.class_names))), np.ones(0, bool))
        t0 = time.perf_counter()
        X = self.features.transform(images)
        if stage_ms is not None:
            stage_ms["features"] = (time.perf_counter() - t0) * 1000
        return self.classify_features(X, k)

    def classify_features(self, X: np.ndarray, k: int | None = None) -> Prediction:
        """One path for every classifier (the protocol: `evidence`), then the stored calibration."""
        ev = self.classifier.evidence(X, k)
        classes = self.classifier.classes_
        scores, novelty = (ev.proba, None) if self.calibration is None else self.calibration.apply(ev)
        proba = np.zeros((len(X), len(self.class_names)))
        proba[:, classes] = scores
        threshold = None if self.calibration is None else self.calibration.novelty_threshold
        known = np.ones(len(X), bool) if threshold is None else novelty <= threshold
        return Prediction(classes[ev.labels].astype(np.int64), proba, known)

    @property
    def default_min_score(self) -> float:
        """The model's own min_score (chosen on its validation data); 0.5 for files without calibration."""
        return 0.5 if self.calibration is None else float(self.calibration.min_score)
