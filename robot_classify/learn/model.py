"""A trained patch classifier: feature pipeline + kNN or linear classifier + class names.

This is what the CLI trains, what a model file holds and what the node runs per frame.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from collections.abc import Sequence
from typing import Any

import numpy as np

from .calibration import KNOWN_LOSS, Calibration, Evidence
from .distances import compute_distances
from .features import PATCH_SIZE, FeaturePipeline, check_patches
from .knn import KNNClassifier
from .linear import LinearClassifier


TAUGHT_K = 10  # the fewest neighbours a taught kNN votes with (see `ClassifierModel.add_features`)
SMALL_CLASS = 0.5  # an existing class taught below this share of the median class's size switches the vote

NEGATIVE_LABELS = frozenset({"unknown", "distractor"})
"""Training labels that mean "none of the classes" (outlier exposure, as R-CNN's background class):
their examples are learned like a class, so a query that resembles them more than any class is
`unknown`, but the name itself is never predicted. `unknown` is the convention for image folders
and npz files; `distractor` is what `bag-to-dataset` writes for ground-truth objects of no class."""


def is_negative(name: str) -> bool:
    return name in NEGATIVE_LABELS


def derived_name(name: str | None, change: str) -> str:
    """The name of a model made from another (`taught`, `calibrated`): `/object_labels` and
    `replay-eval --compare` show names, and a taught copy of the default under the default's own
    name was told apart by its sha256 alone. A change already in the name is not repeated."""
    name = name or "model"
    return name if name.endswith(f"+{change}") else f"{name}+{change}"


def negative_in_other_case(name: str) -> str | None:
    """The negative label `name` spells in another case (`Unknown` -> `unknown`), else None: as
    a class it would be published as a name a consumer filtering `unknown` takes for an object."""
    folded = name.lower()
    return folded if folded in NEGATIVE_LABELS and name not in NEGATIVE_LABELS else None


def negative_indices(class_names: list[str]) -> np.ndarray:
    """Indices of the negative labels among `class_names` (int64, possibly empty)."""
    return np.array([i for i, n in enumerate(class_names) if is_negative(n)], np.int64)


MAX_RESTING_HEIGHTS = 3  # a product rests on one of its three sizes


def is_resting_height(h: Any) -> bool:
    """A height `resting` may list: a number (no bool, NaN or infinity) in (0, 10] metres."""
    return isinstance(h, (int, float, np.floating)) and not isinstance(h, bool) and bool(0 < h <= 10)


@dataclass
class Prediction:
    """Per patch: label index, calibrated scores over all classes, and the open-set verdict.
    `winner`: the class that won, a negative one (`unknown`, `distractor`) included, where
    `labels` gives the best real class beside a negative win."""
    labels: np.ndarray
    proba: np.ndarray
    known: np.ndarray
    winner: np.ndarray


@dataclass
class ClassifierModel:
    features: FeaturePipeline
    classifier: KNNClassifier | LinearClassifier
    class_names: list[str]
    patch_size: int = PATCH_SIZE
    meta: dict[str, Any] = field(default_factory=dict)
    calibration: Calibration | None = None  # scores and 'unknown' (learn.calibration); None: raw scores
    # The heights (metres) at which the training views showed each listed class resting: the node
    # names it only in a resting pose of such a height (runtime.object_sizes). The default's
    # renders stand every can upright, so it has never seen one lying; a standing mug is as high as
    # a Master Chef can on its side. The default also lists a box's narrow side, which its renders
    # never show (sim.object_catalog.resting_heights). None, or a class not listed: any pose.
    resting: dict[str, tuple[float, ...]] | None = None
    # The vote before teaching switched it to balanced weights (`add_features`), and the classes
    # whose teaching did: forgetting the last of them restores the vote (in this process; a saved
    # taught model keeps the balanced vote). Found from outside: after teaching a new class and
    # forgetting it, a Cheez-It box the untaught default had named stayed `unknown`.
    _vote_before_teaching: tuple[Any, ...] | None = field(default=None, repr=False, compare=False)
    _switched_by: set[str] = field(default_factory=set, repr=False, compare=False)

    @property
    def negative_classes(self) -> np.ndarray:
        """Class indices whose name is a negative label (`NEGATIVE_LABELS`): never a prediction."""
        return negative_indices(self.class_names)

    @property
    def known_class_names(self) -> list[str]:
        """The classes the model can name (its class names less the negative labels)."""
        return [n for n in self.class_names if not is_negative(n)]

    @property
    def kind(self) -> str:
        return self.classifier.kind  # the protocol's name for it (learn.protocol)

    def fit(self, images: np.ndarray, labels: np.ndarray) -> "ClassifierModel":
        labels = np.asarray(labels)
        if labels.size and (labels.min() < 0 or labels.max() >= len(self.class_names)):
            raise ValueError(f"labels must be in [0, {len(self.class_names)}), got range "
                             f"[{labels.min()}, {labels.max()}]")
        if labels.size and all(is_negative(self.class_names[c]) for c in np.unique(labels)):
            raise ValueError(f"the training labels are all negative ({', '.join(sorted(NEGATIVE_LABELS))}): "
                             "a model needs examples of at least one class it can name")
        self.classifier.fit(self.features.fit_transform(images), labels)
        return self

    # ------------------------------------------------------------------ teaching (kNN)
    def _taught_classifier(self) -> KNNClassifier:
        if not isinstance(self.classifier, KNNClassifier):
            raise ValueError("this model is linear: it cannot learn new examples without retraining "
                             "(`robot-classify train`); teaching needs a kNN model")
        return self.classifier

    def add_features(self, X: np.ndarray, label: str, scale: float = 1.0,
                     heights: Sequence[float | None] | None = None) -> int:
        """Append feature rows (from `self.features`) as examples of `label`, a new class if it is not
        one yet; returns that class's number of samples. A kNN learns by memorising.

        A kNN taught a new class, or a small one (under `SMALL_CLASS` of the median class's
        examples), votes from then on with balanced class weights over at least `TAUGHT_K`
        neighbours: a class of ten views beside classes of hundreds of examples is otherwise
        outvoted by their sheer number.
        Balanced votes trade the trained classes for the taught ones; over 10 neighbours both do
        better than over 20 (bench/teach_bench.py, doc/teaching.md). Views added to a class that is
        not small (a real view of a product the default learnt from renders) leave the vote as it
        was: there is no imbalance to make up, and the switch changed every other class's answers
        (on real frames it cost more right names than the views bought, bench/teach_real_bench.py).
        `scale`: the novelty scale of the new samples (`novelty_scale`). `heights`: how high above
        the support each taught view's object stood (`DetectedObject.top`): a class restricted to
        the poses its training views showed (`resting`) may then also be named resting so; without
        them (or one unmeasured) the restriction is lifted, as the views may show any pose."""
        clf = self._taught_classifier()
        new = label not in self.class_names
        if new:
            self.class_names.append(label)
        c = self.class_names.index(label)
        try:
            clf.add_samples(X, np.full(len(X), c, np.int64), scale, taught=True)
        except Exception:
            if new:
                self.class_names.pop()
            raise
        self._taught_resting(label, heights, new)
        small = new or self.class_count(label) < SMALL_CLASS * np.median(np.bincount(clf.y_))
        if small and (clf.class_weight is None or clf.n_neighbors_ < TAUGHT_K):
            if self._vote_before_teaching is None:
                self._vote_before_teaching = (clf.k, clf.n_neighbors, clf.n_neighbors_, clf.class_weight)
            clf.class_weight = "balanced"
            clf.k = clf.n_neighbors_ = max(clf.n_neighbors_, min(TAUGHT_K, clf.index_.ntotal))
            clf.n_neighbors = None
        if small and self._vote_before_teaching is not None:
            self._switched_by.add(label)
        return self.class_count(label)

    def reserve(self, n: int) -> None:
        """Room in the index for `n` more examples (`ExactIndex.reserve`): the copy that growing
        takes happens here, under a read lock, not in `add_features` under the write lock."""
        self._taught_classifier().index_.reserve(n)

    def novelty_scale(self, X: np.ndarray, label: str, groups: np.ndarray) -> float:
        """How much farther than the trained classes' samples a query may lie from these new
        samples of `label` before it is `unknown` (>= 1).

        The stored novelty threshold was chosen on classes of hundreds of examples; a class taught
        from ten views is sparser, and its own views, each held out from the others (`groups`: the
        view each row came from), show how far a new view of it lies from the rest. The scale lets
        the same share of them through as the threshold lets through of the trained classes'
        validation answers (learn.calibration.KNOWN_LOSS). 1 without a kNN calibration or with a
        single view."""
        cal, clf = self.calibration, self._taught_classifier()
        groups = np.asarray(groups)
        if cal is None or cal.method != "knn_logistic" or cal.novelty_threshold is None or len(groups) != len(X):
            return 1.0
        old = clf.index_.data[clf.classes_[clf.y_] == self.class_names.index(label)] \
            if label in self.class_names else np.zeros((0, X.shape[1]), X.dtype)
        if len(np.unique(groups)) < 2 and not len(old):
            return 1.0
        Y = np.concatenate([X, old]) if len(old) else X
        held_out = np.empty(len(X))
        for i in range(0, len(X), 64):  # chunks: an L1 matrix is built as (rows, samples, features)
            D = compute_distances(X[i:i + 64], Y, clf.metric)
            D[:, :len(X)][groups[i:i + 64, None] == groups[None, :]] = np.inf  # never a copy of the same view
            held_out[i:i + 64] = D.min(1)
        reach = float(np.quantile(held_out, 1 - KNOWN_LOSS)) / (cal.novelty_threshold * cal.params["distance_scale"])
        return float(min(max(reach, 1.0), 1e6)) if np.isfinite(reach) else 1.0

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
        if not is_negative(label) and not any(not is_negative(n) for n in self.class_names if n != label):
            # found from outside: with only examples of no class left, every frame failed
            raise ValueError(f"{label!r} is the model's last class of objects (the rest are examples of no class): "
                             "teach another class first")
        left = clf.index_.ntotal - self.class_count(label)
        if self.forget_floor <= left < clf.n_neighbors_:
            clf.k = clf.n_neighbors_ = left
        clf.remove_samples(np.flatnonzero(clf.classes_[clf.y_] == c))
        self.class_names.pop(c)
        self._any_pose(label)  # taught again later, it starts from its new views
        clf.classes_ = np.where(clf.classes_ > c, clf.classes_ - 1, clf.classes_)
        self._switched_by.discard(label)
        if self._vote_before_teaching is not None and not self._switched_by:  # the vote as before teaching
            k, n_neighbors, in_force, weight = self._vote_before_teaching
            clf.k, clf.n_neighbors, clf.class_weight = k, n_neighbors, weight
            clf.n_neighbors_ = min(in_force, clf.index_.ntotal)
            self._vote_before_teaching = None

    def _any_pose(self, label: str) -> None:
        if self.resting and label in self.resting:  # ({}: the model still records the poses of new classes)
            self.resting = {k: v for k, v in self.resting.items() if k != label}

    def _taught_resting(self, label: str, heights: Sequence[float | None] | None, new: bool) -> None:
        """A model that keeps to its training poses (`resting` not None) learns the taught views'
        poses too: a listed class gains their heights, a new class starts from them; a height within
        10% of one listed is that pose again (the nearest pose decides,
        `runtime.object_sizes.resting_poses`). An unmeasured view, or more than
        MAX_RESTING_HEIGHTS: any pose. A class already named in any pose stays so."""
        if self.resting is None or (label not in self.resting and not new):
            return
        known = list(self.resting.get(label, ()))
        for h in heights or [None]:
            if not is_resting_height(h):
                return self._any_pose(label)
            if all(abs(h - k) > 0.1 * k for k in known):
                known.append(float(h))
        if not known or len(known) > MAX_RESTING_HEIGHTS:
            return self._any_pose(label)
        self.resting = {**self.resting, label: tuple(known)}

    @property
    def forget_floor(self) -> int:
        """The fewest examples a forget must leave: k, except in a taught kNN, whose k was raised
        for teaching (TAUGHT_K), not tuned, and shrinks to what remains instead."""
        clf = self._taught_classifier()
        return 1 if clf.class_weight == "balanced" else clf.n_neighbors_

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

    def classify(self, images: np.ndarray, k: int | None = None, stage_ms: dict[str, float] | None = None,
                 allowed: np.ndarray | None = None) -> Prediction:
        """`predict` plus the open-set verdict: `known` is False for a patch farther from the
        training data (kNN: distance; linear: energy) than the model's validation data warrants.
        `allowed`: see `classify_features`."""
        images = check_patches(images)
        if not len(images):
            return Prediction(np.zeros(0, np.int64), np.zeros((0, len(self.class_names))), np.ones(0, bool),
                              np.zeros(0, np.int64))
        t0 = time.perf_counter()
        X = self.features.transform(images)
        if stage_ms is not None:
            stage_ms["features"] = (time.perf_counter() - t0) * 1000
        return self.classify_features(X, k, allowed)

    def classify_features(self, X: np.ndarray, k: int | None = None, allowed: np.ndarray | None = None
                          ) -> Prediction:
        """One path for every classifier (the protocol: `evidence`), then the stored calibration.

        `allowed` ((queries, classes) bool, the node's size and pose check): where taught views
        alone won a class that the segment cannot be, the answer is the trained samples' vote
        (`evidence`). A real view of a product says nothing of a segment that cannot be that
        product; without this the segment was `unknown` where the untaught model had named it
        (on real frames, one real frame per class taught into the default then changed nothing on
        average: 77.7% of the other objects right, as untaught; doc/teaching.md)."""
        return self._prediction(self.evidence(X, k, allowed), len(X))

    def evidence(self, X: np.ndarray, k: int | None = None, allowed: np.ndarray | None = None) -> Evidence:
        """The classifier's evidence (`learn.protocol`), where taught samples alone won a class
        that `allowed` rules out replaced by the trained samples' (`classify_features`): what the
        node's answers rest on, and what `calibrate` fits their scores to."""
        ev = self.classifier.evidence(X, k)
        if allowed is None or ev.taught_won is None or self.classifier.taught_.all():  # all taught: no other answer
            return ev
        won = self.classifier.classes_[ev.labels]
        rows = np.flatnonzero(ev.taught_won & ~np.isin(won, self.negative_classes)
                              & ~allowed[np.arange(len(X)), won])
        if not len(rows):
            return ev
        again = self.classifier.evidence(X[rows], k, untaught=True)
        out = {}
        for f in fields(ev):
            value = getattr(ev, f.name)
            if value is not None:
                value = value.copy()
                value[rows] = False if f.name == "taught_won" else getattr(again, f.name)
            out[f.name] = value
        return Evidence(**out)

    def _prediction(self, ev: Evidence, n: int) -> Prediction:
        """The classifier's evidence of `n` queries calibrated, over all class names."""
        classes = self.classifier.classes_
        scores, novelty = (ev.proba, None) if self.calibration is None else self.calibration.apply(ev)
        proba = np.zeros((n, len(self.class_names)))
        proba[:, classes] = scores
        threshold = None if self.calibration is None else self.calibration.novelty_threshold
        known = np.ones(n, bool) if threshold is None else novelty <= threshold
        winner = classes[ev.labels].astype(np.int64)
        labels = winner.copy()
        negative = self.negative_classes
        if len(negative):
            # Outlier exposure: a query won by a negative class is `unknown`; the label reported
            # beside it is the best real class, and negative columns score 0 (never a name).
            won_by_negative = np.isin(labels, negative)
            known &= ~won_by_negative
            proba[:, negative] = 0.0
            real = proba.copy()
            real[:, negative] = -1.0
            labels = np.where(won_by_negative, real.argmax(1), labels)
        return Prediction(labels, proba, known, winner)

    @property
    def default_min_score(self) -> float:
        """The model's own min_score (chosen on its validation data); 0.5 for files without calibration."""
        return 0.5 if self.calibration is None else float(self.calibration.min_score)
