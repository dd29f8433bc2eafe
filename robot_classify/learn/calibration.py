"""How far to trust a score: reliability bins, expected calibration error, accuracy/coverage.

Pure numpy, and in `learn` (not `evaluation`) because training measures the calibration it
stores in the model file and `learn` may not import the workshop; `evaluation.calibration`
re-exports these so reports and training compute the same numbers.

`scores` is the confidence of each prediction (the winner's probability, in [0, 1]) and
`correct` says whether that prediction was right. Bins are equal-width on [0, 1], closed on the
right ((0.9, 1.0] holds a score of 1.0; a score of 0 falls in the first bin).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, TypedDict

import numpy as np


class ReliabilityBins(TypedDict):
    """Per bin: edges, mean confidence, accuracy and count (confidence/accuracy NaN when empty)."""
    edges: np.ndarray       # (n_bins + 1,)
    confidence: np.ndarray  # (n_bins,)
    accuracy: np.ndarray    # (n_bins,)
    count: np.ndarray       # (n_bins,) int


class CoverageCurve(TypedDict):
    """Per threshold t: the share of predictions kept (score >= t) and the accuracy among them."""
    thresholds: np.ndarray
    coverage: np.ndarray    # kept / all
    accuracy: np.ndarray    # correct among kept / kept (NaN where nothing is kept)
    count: np.ndarray       # kept, int


def _check(scores: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    c = np.asarray(correct).ravel()
    if s.shape != c.shape:
        raise ValueError(f"scores and correct must have the same length, got {s.shape[0]} and {c.shape[0]}")
    if not np.isfinite(s).all() or (s < 0).any() or (s > 1).any():
        raise ValueError("scores must be finite and in [0, 1]")
    return s, c.astype(bool)


def reliability_bins(scores: np.ndarray, correct: np.ndarray, n_bins: int = 10) -> ReliabilityBins:
    """Mean confidence vs accuracy in `n_bins` equal-width bins: the reliability diagram's data."""
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    s, c = _check(scores, correct)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Right-closed bins: ceil(s * n) - 1, with 0 put in the first bin.
    which = np.clip(np.ceil(s * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(which, weights=s, minlength=n_bins) / count
        accuracy = np.bincount(which, weights=c.astype(np.float64), minlength=n_bins) / count
    return {"edges": edges, "confidence": confidence, "accuracy": accuracy, "count": count}


def expected_calibration_error(scores: np.ndarray, correct: np.ndarray, n_bins: int = 10) -> float:
    """Count-weighted mean |accuracy - confidence| over the bins (0 = perfectly calibrated).

    NaN for no predictions: an empty set has no calibration, and 0 would claim a perfect one."""
    b = reliability_bins(scores, correct, n_bins)
    n = b["count"].sum()
    if n == 0:
        return float("nan")
    used = b["count"] > 0
    gap = np.abs(b["accuracy"][used] - b["confidence"][used])
    return float((gap * b["count"][used]).sum() / n)


def coverage_curve(scores: np.ndarray, correct: np.ndarray, thresholds: np.ndarray) -> CoverageCurve:
    """Accuracy and coverage when predictions scoring below each threshold become `unknown`.

    A prediction is kept when score >= threshold, the same rule as the node's `min_score`."""
    s, c = _check(scores, correct)
    t = np.asarray(thresholds, dtype=np.float64).ravel()
    if not np.isfinite(t).all():
        raise ValueError("thresholds must be finite")
    order = np.argsort(s)
    s_sorted = s[order]
    correct_from = np.concatenate([np.cumsum(c[order][::-1])[::-1], [0]])  # correct among s_sorted[i:]
    first_kept = np.searchsorted(s_sorted, t, side="left")
    count = len(s) - first_kept
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = correct_from[first_kept] / count
        coverage = count / len(s) if len(s) else np.full(len(t), np.nan)
    return {"thresholds": t, "coverage": np.asarray(coverage, np.float64),
            "accuracy": np.asarray(accuracy, np.float64), "count": count.astype(np.int64)}


# --------------------------------------------------------------------------- what models store

@dataclass
class Evidence:
    """What a classifier says about each query, before calibration (the classifier protocol).

    `labels` index the classifier's `classes_`; `proba` (n, len(classes_)) are its own scores
    (vote shares, softmax); `logits` the linear scores; `win_distance` (kNN) the distance to the
    nearest training sample of the winning class among the k; `nearest` (kNN) to the nearest
    training sample of any class; `taught_won` (a taught kNN) whether taught samples alone made
    the winning class's votes.
    """
    labels: np.ndarray
    proba: np.ndarray
    logits: np.ndarray | None = None
    win_distance: np.ndarray | None = None
    nearest: np.ndarray | None = None
    taught_won: np.ndarray | None = None

    @classmethod
    def concatenate(cls, parts: list["Evidence"]) -> "Evidence":
        """One Evidence of the queries of `parts` in order (out-of-fold splits, a bag's frames)."""
        def cat(name: str) -> np.ndarray | None:
            values = [getattr(p, name) for p in parts]
            if name == "taught_won" and any(v is None for v in values):  # frames before any teaching
                return None
            return None if values[0] is None else np.concatenate(values)

        return cls(**{f.name: cat(f.name) for f in fields(cls)})

    def subset(self, rows: np.ndarray) -> "Evidence":
        """The evidence of the queries `rows` selects (a bool mask or indices), in order."""
        return Evidence(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[rows]
                           for f in fields(self)})


METHODS = ("temperature", "knn_logistic")
_PARAMS = {"temperature": ("temperature",), "knn_logistic": ("bias", "share_weight", "distance_weight",
                                                             "distance_scale")}
MIN_SCORE_GRID = np.round(np.arange(0.0, 0.51, 0.05), 2)  # never above 0.5: see choose_min_score
KNOWN_LOSS = 0.02  # share of right validation answers the novelty threshold may reject (the issue: <= 2 points)


@dataclass
class Calibration:
    """How a model turns evidence into trustworthy scores and `unknown`; stored in the model file.

    method "temperature" (linear): proba = softmax(logits / temperature); novelty = the distance
    to the nearest class mean in standardised features (`LinearClassifier.novelty`; on held-out
    scenes it finds 4x more distractors than the free energy -T logsumexp(logits / T), which
    is the fallback for format-2 files without class means).
    method "knn_logistic": the winner's score is sigmoid(bias + share_weight * logit(share) +
    distance_weight * log(win_distance / distance_scale)), the other classes keep their vote
    shares scaled to fit under 1 - score; novelty = nearest / distance_scale. Both novelty
    scores only grow when a query moves away from the training data, and a kNN's stay valid when
    samples are appended (live teaching): more samples only bring neighbours nearer.

    `min_score` is the default threshold (node parameter `min_score` < 0 uses it);
    `novelty_threshold`: objects whose novelty exceeds it are `unknown` (None: off, as for models
    trained with negatives, which say `unknown` themselves: `fit_calibration`). Both
    were chosen on out-of-fold predictions of the training data, as were `ece` and `n_validation`.
    """
    method: str
    params: dict[str, float]
    min_score: float
    novelty_threshold: float | None
    ece: float
    n_validation: int

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"calibration method must be one of {METHODS}, got {self.method!r}")
        if not isinstance(self.params, dict) or set(self.params) != set(_PARAMS[self.method]):
            raise ValueError(f"calibration params for {self.method} must be exactly {_PARAMS[self.method]}")
        for name, value in self.params.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not -1e6 <= value <= 1e6:
                raise ValueError(f"calibration param {name} must be a finite number in [-1e6, 1e6], got {value!r}")
        for name in ("temperature", "distance_scale"):
            if name in self.params and not self.params[name] > 0:
                raise ValueError(f"calibration param {name} must be > 0, got {self.params[name]!r}")
        if isinstance(self.min_score, bool) or not isinstance(self.min_score, (int, float)) \
                or not 0 <= self.min_score <= 1:
            raise ValueError(f"calibration min_score must be in [0, 1], got {self.min_score!r}")
        t = self.novelty_threshold
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or not -1e12 <= t <= 1e12):
            raise ValueError(f"calibration novelty_threshold must be a finite number or null, got {t!r}")
        if isinstance(self.ece, bool) or not isinstance(self.ece, (int, float)) or not 0 <= self.ece <= 1:
            raise ValueError(f"calibration ece must be in [0, 1], got {self.ece!r}")
        if isinstance(self.n_validation, bool) or not isinstance(self.n_validation, int) or self.n_validation < 0:
            raise ValueError(f"calibration n_validation must be an integer >= 0, got {self.n_validation!r}")

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "params": {k: float(v) for k, v in self.params.items()},
                "min_score": float(self.min_score),
                "novelty_threshold": None if self.novelty_threshold is None else float(self.novelty_threshold),
                "ece": float(self.ece), "n_validation": int(self.n_validation)}

    @classmethod
    def from_json(cls, obj: Any) -> "Calibration":
        """Strict: exactly the fields `to_json` writes (model files are untrusted)."""
        fields = {"method", "params", "min_score", "novelty_threshold", "ece", "n_validation"}
        if not isinstance(obj, dict) or set(obj) != fields:
            raise ValueError(f"calibration must be an object with exactly the fields {sorted(fields)}")
        return cls(**obj)

    def winner_scores(self, ev: Evidence) -> tuple[np.ndarray, np.ndarray]:
        """(each answer's calibrated score for the class that won it, its novelty)."""
        proba, novelty = self.apply(ev)
        return proba[np.arange(len(proba)), ev.labels], novelty

    def apply(self, ev: Evidence) -> tuple[np.ndarray, np.ndarray]:
        """(calibrated proba (n, C) over the classifier's classes, novelty (n,))."""
        if self.method == "temperature":
            if ev.logits is None:
                raise ValueError("temperature calibration needs logits (a linear classifier)")
            z = ev.logits / self.params["temperature"]
            m = z.max(1, keepdims=True)
            lse = m[:, 0] + np.log(np.exp(z - m).sum(1))
            novelty = -self.params["temperature"] * lse if ev.nearest is None else ev.nearest
            return np.exp(z - lse[:, None]), novelty
        if ev.win_distance is None or ev.nearest is None:
            raise ValueError("knn_logistic calibration needs neighbour distances (a kNN classifier)")
        p = self.params
        rows = np.arange(len(ev.labels))
        share = ev.proba[rows, ev.labels]
        score = _sigmoid(p["bias"] + p["share_weight"] * _logit(share)
                         + p["distance_weight"] * np.log(_ratio(ev.win_distance, p["distance_scale"])))
        others = ev.proba.copy()
        others[rows, ev.labels] = 0.0
        rest = others.sum(1)
        scale = np.divide(1.0 - score, rest, out=np.ones_like(rest), where=rest > 0)
        proba = others * np.minimum(scale, 1.0)[:, None]
        proba[rows, ev.labels] = score
        return proba, ev.nearest / p["distance_scale"]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def _ratio(d: np.ndarray, scale: float) -> np.ndarray:
    """d / scale, floored so that log() of an exact match (distance 0) stays finite."""
    return np.maximum(np.asarray(d, np.float64), 1e-3 * scale) / scale


# The temperature is searched within exp(+-5). At the upper bound the softmax is flat: the answers
# were no better than a guess, and every score is about 1 / classes (`training` warns).
MAX_LOG_TEMPERATURE = 5.0
# The logit `tuning.out_of_fold_evidence` gives a class its fold's classifier was not fitted on.
ABSENT_LOGIT = -1e9


def fit_calibration(ev: Evidence, y: np.ndarray, method: str, negative: np.ndarray | None = None,
                    clutter_is_wrong: bool = False) -> Calibration:
    """Calibration fitted on out-of-fold evidence `ev` with true labels `y` (indices into the
    classifier's classes): temperature by minimum negative log-likelihood, the kNN logistic by
    maximum likelihood of 'the winner is right'; then the default `min_score` and the novelty
    threshold (see `Calibration`).

    `negative`: class indices of negative labels (`learn.model.NEGATIVE_LABELS`). The temperature
    is fitted on every answer (a softmax over all classes); the kNN logistic, ECE and `min_score`
    on the answers a user sees: real objects that a real class won. With negatives there is no
    novelty threshold (they say `unknown`).

    `clutter_is_wrong`: the answers a user sees are every query a real class won, whatever it
    was: a query whose truth is a negative label (a thing of no class, a patch of clutter; or
    -1, no index at all) counts as a wrong answer. On a real camera's frames that is what a
    grasp planner acts on (`evaluation.recalibrate`); on a training set's out-of-fold crops the
    negatives are the model's own and stay out."""
    from scipy.optimize import minimize, minimize_scalar

    y = np.asarray(y, np.int64)
    rows = np.arange(len(y))
    # The answers a user sees: a real object, won by a real class (a negative class's wins are
    # never published, and mixing them in skews the scores of the rest).
    has_negatives = negative is not None and len(negative) > 0
    won_by_class = ~np.isin(ev.labels, negative) if has_negatives else np.ones(len(y), bool)
    named = won_by_class if clutter_is_wrong else won_by_class & ~np.isin(y, negative) if has_negatives \
        else np.ones(len(y), bool)
    # A crop of a class its fold never trained on is wrong for want of the class, not for its score:
    # it is left out of every fit. In the temperature's it had pushed the temperature to its bound,
    # every score to 1/classes, though 73% of the answers were right (found from outside).
    absent = np.zeros(len(y), bool) if ev.logits is None else \
        (y >= 0) & (ev.logits[rows, np.maximum(y, 0)] <= ABSENT_LOGIT)
    named &= ~absent
    if method == "temperature":
        has_class = (y >= 0) & ~absent  # clutter (-1) has no class whose likelihood a softmax could raise
        z, yc = ev.logits[has_class], y[has_class]

        def nll(log_t: float) -> float:
            zt = z / np.exp(log_t)
            m = zt.max(1)
            return float((m + np.log(np.exp(zt - m[:, None]).sum(1)) - zt[np.arange(len(yc)), yc]).mean())

        params = {"temperature": float(np.exp(minimize_scalar(nll, bounds=(-MAX_LOG_TEMPERATURE, MAX_LOG_TEMPERATURE),
                                                              method="bounded").x)) if len(yc) else 1.0}
    else:
        fit = np.flatnonzero(named) if named.sum() >= 20 else rows
        correct = (ev.labels[fit] == y[fit]).astype(np.float64)
        win = ev.win_distance[fit]
        finite = np.isfinite(win)
        scale = float(np.median(win[finite])) if finite.any() else 1.0
        scale = scale if scale > 0 else max(float(win[finite].max(initial=0.0)), 1.0)
        A = np.stack([np.ones(len(fit)), _logit(ev.proba[fit, ev.labels[fit]]),
                      np.log(_ratio(np.where(finite, win, scale), scale))], 1)

        def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
            p = np.clip(_sigmoid(A @ w), 1e-12, 1 - 1e-12)
            reg = 1e-3 * (w[1:] ** 2).sum()  # keeps the fit finite when the validation set is all right
            g = A.T @ (p - correct) / len(fit)
            g[1:] += 2e-3 * w[1:]
            return float(-(correct * np.log(p) + (1 - correct) * np.log(1 - p)).mean() + reg), g

        w = minimize(loss, np.array([0.0, 1.0, 0.0]), jac=True, method="L-BFGS-B").x
        params = {"bias": float(w[0]), "share_weight": float(w[1]), "distance_weight": float(w[2]),
                  "distance_scale": scale}
    draft = Calibration(method, params, 0.5, None, 0.0, len(y))
    score, novelty = draft.winner_scores(ev)
    score, correct, novelty = score[named], (ev.labels == y)[named], novelty[named]
    draft.ece = min(max(expected_calibration_error(score, correct), 0.0), 1.0) if len(score) else 0.0
    draft.min_score = choose_min_score(score, correct)
    # Unknown beyond what the validation data reaches: reject at most KNOWN_LOSS of the right answers.
    # Trained negatives say `unknown` instead: on held-out scenes the distance threshold rejected no
    # distractor they let through and cost 0.7 (kNN) / 2.2 (linear) points of known-object accuracy
    # on top of theirs (bench/open_set_bench.py), so with negatives it is off.
    draft.novelty_threshold = float(np.quantile(novelty[correct], 1 - KNOWN_LOSS)) \
        if correct.sum() >= 20 and not has_negatives else None
    return draft


def choose_min_score(score: np.ndarray, correct: np.ndarray) -> float:
    """The threshold on the grid 0, 0.05, ..., 0.5 that maximises (right answers kept - wrong
    answers kept) on validation data: for a grasp planner a wrong label costs as much as a missed
    right one. For calibrated scores the ideal is 0.5 (above it an answer is more often right than
    wrong), so the grid stops there, and at the highest validation score: no model's default labels
    everything `unknown`, however poor its validation. (Found from outside: a 1-NN whose distances
    said nothing scored every answer 0.44, and 0.45 had rejected them all.)"""
    grid = MIN_SCORE_GRID[MIN_SCORE_GRID <= score.max()] if len(score) else MIN_SCORE_GRID[:1]
    gain = [((score >= t) & correct).sum() - ((score >= t) & ~correct).sum() for t in grid]
    best = int(np.argmax(gain))  # the lowest threshold among equals
    return float(grid[best])
