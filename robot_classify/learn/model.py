"""A trained patch classifier: feature pipeline + kNN or linear classifier + class names.

This is what the CLI trains, what a model file holds and what the node runs per frame.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .features import PATCH_SIZE, FeaturePipeline, check_patches
from .knn import KNNClassifier
from .linear import LinearClassifier


@dataclass
class ClassifierModel:
    features: FeaturePipeline
    classifier: KNNClassifier | LinearClassifier
    class_names: list[str]
    patch_size: int = PATCH_SIZE
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "knn" if isinstance(self.classifier, KNNClassifier) else "linear"

    def fit(self, images: np.ndarray, labels: np.ndarray) -> "ClassifierModel":
        labels = np.asarray(labels)
        if labels.size and (labels.min() < 0 or labels.max() >= len(self.class_names)):
            raise ValueError(f"labels must be in [0, {len(self.class_names)}), got range "
                             f"[{labels.min()}, {labels.max()}]")
        self.classifier.fit(self.features.fit_transform(images), labels)
        return self

    def predict(self, images: np.ndarray, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(label indices, scores) per patch; the score is the winner's probability / vote share.

        `k` overrides a kNN model's neighbour count for this call only (the tuned k is kept)."""
        images = check_patches(images)
        if not len(images):
            return np.zeros(0, np.int64), np.zeros((0, len(self.class_names)))
        X = self.features.transform(images)
        proba = np.zeros((len(images), len(self.class_names)))
        if isinstance(self.classifier, KNNClassifier):
            labels, shares = self.classifier.predict_from_neighbors(*self.classifier.kneighbors(X, k), k)
            proba[:, self.classifier.classes_] = shares
        else:
            proba[:, self.classifier.classes_] = self.classifier.predict_proba(X)
            labels = self.classifier.classes_[proba[:, self.classifier.classes_].argmax(1)]
        return labels.astype(np.int64), proba
