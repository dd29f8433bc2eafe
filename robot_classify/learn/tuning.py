"""Hyperparameter selection on a validation split or by k-fold cross-validation.

Never on the test split: callers hand in training data only. For kNN the neighbours are
searched once per (features, metric, fold) with the largest k; every smaller k votes from
the same list, so a grid over k costs one search.
"""
from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from tqdm.auto import tqdm

from .patch_set import PatchSet
from .calibration import ABSENT_LOGIT, Evidence
from .features import FeaturePipeline, feature_config
from .knn import KNNClassifier
from .linear import LinearClassifier


TIE = 1e-4  # mean accuracies this close are a tie (`TuneResult.best`): under one sample in 10,000


@dataclass
class TuneResult:
    """One row per candidate: params, per-fold accuracies, mean, std; `best` = highest mean."""

    strategy: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # what the choice cannot be trusted for

    @property
    def best(self) -> dict[str, Any]:
        # Ties go to the earlier row: grids list simpler settings (smaller k, stronger reg) first. A tie
        # is a mean within TIE of the best: folds of 199-201 samples had given three settings of 621
        # right in 1,000 means 3e-5 apart, and the last had won (found from outside).
        top = max(r["mean"] for r in self.rows)
        return next(r for r in self.rows if r["mean"] >= top - TIE)

    def add(self, params: dict[str, Any], scores: list[float]) -> None:
        self.rows.append({"params": params, "scores": [float(s) for s in scores],
                          "mean": float(np.mean(scores)), "std": float(np.std(scores))})

    def grid_warnings(self, grid: dict[str, list[Any]]) -> list[str]:
        """A best value at the edge of its grid (of 2+ values) that beats its inner neighbour by
        more than its standard error may have a better one beyond the edge (on a flat plateau
        it has not); an all-zero table chose nothing."""
        out = []
        if self.rows and max(r["mean"] for r in self.rows) <= 0:
            out.append("every candidate scored 0: the validation cannot tell them apart (the first is used)")
            return out
        best = self.best
        se = best["std"] / max(len(best["scores"]), 1) ** 0.5
        for name, values in grid.items():
            ordered = sorted(values)
            value = best["params"][name]
            if len(ordered) < 2 or value not in (ordered[0], ordered[-1]):
                continue
            inner = ordered[1] if value == ordered[0] else ordered[-2]
            neighbour = [r for r in self.rows if r["params"] == {**best["params"], name: inner}]
            if neighbour and best["mean"] - neighbour[0]["mean"] > se:
                out.append(f"best {name}={value} is at the edge of the grid [{ordered[0]}, {ordered[-1]}] and "
                           f"still improving ({best['mean']:.4f} vs {neighbour[0]['mean']:.4f} at {name}={inner}): "
                           f"widen it (--{name} a,b,c)")
        return out

    def table(self) -> str:
        lines = [f"{'params':<60} {'mean':>7} {'std':>6}"]
        for r in self.rows:
            p = ", ".join(f"{k}={v}" for k, v in r["params"].items())
            lines.append(f"{p:<60} {r['mean']:7.4f} {r['std']:6.4f}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "rows": self.rows, "best": self.best, "warnings": self.warnings}


def fold_indices(data: PatchSet, n_folds: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, val) index pairs; stratified by class, and whole groups per fold when groups exist."""
    if n_folds < 2:
        raise ValueError(f"folds must be >= 2, got {n_folds}")
    rng = np.random.default_rng(seed)
    fold = np.empty(len(data), np.int64)
    if data.groups is not None and len(np.unique(data.groups)) >= n_folds:
        for i, g in enumerate(rng.permutation(np.unique(data.groups))):
            fold[data.groups == g] = i % n_folds
    else:
        for c in np.unique(data.labels):
            idx = rng.permutation(np.flatnonzero(data.labels == c))
            fold[idx] = (np.arange(len(idx)) + rng.integers(n_folds)) % n_folds
    return [(np.flatnonzero(fold != f), np.flatnonzero(fold == f)) for f in range(n_folds)]


def _splits(data: PatchSet, strategy: str, folds: int, val: PatchSet | None, seed: int
            ) -> list[tuple[PatchSet, PatchSet]]:
    if strategy == "val":
        if val is None or not len(val):
            raise ValueError("validation tuning needs a non-empty validation split")
        return [(data, val)]
    return [(data.subset(tr), data.subset(va)) for tr, va in fold_indices(data, folds, seed)]


def tune_knn(data: PatchSet, ks: list[int], metrics: list[str], feature_kinds: list[str], pca_dims: int = 0,
             strategy: str = "cv", folds: int = 5, val: PatchSet | None = None, seed: int = 0,
             device: str = "auto", quiet: bool = False) -> TuneResult:
    result = TuneResult(strategy)
    splits = _splits(data, strategy, folds, val, seed)
    result.warnings += unvalidated_classes(splits, data.class_names)
    kmax = max(ks)
    for kind, metric in tqdm(list(itertools.product(feature_kinds, metrics)), desc="tune knn", disable=quiet):
        feat = feature_config(kind, "knn", metric, pca_dims)
        scores = {k: [] for k in ks}
        for tr, va in splits:
            pipe = FeaturePipeline(**feat)
            clf = KNNClassifier(min(kmax, len(tr)), metric, device=device).fit(pipe.fit_transform(tr.images), tr.labels)
            dist, idx = clf.kneighbors(pipe.transform(va.images))
            for k in ks:
                pred, _ = clf.predict_from_neighbors(dist, idx, min(k, clf.k))
                scores[k].append(float((pred == va.labels).mean()))
        for k in ks:
            result.add({"k": k, "metric": metric, "features": kind, "pca_dims": pca_dims}, scores[k])
    result.warnings += result.grid_warnings({})
    return result


def out_of_fold_evidence(data: PatchSet, make: Callable[[], Any], features: dict[str, Any],
                         splits: list[tuple[PatchSet, PatchSet]]) -> tuple[Evidence, np.ndarray]:
    """Evidence of the chosen setting on data it was not fitted on (each validation split),
    in the class numbering of `data`: what calibration and the open-set threshold are fitted on."""
    n_classes = len(data.class_names)
    parts, ys = [], []
    for tr, va in splits:
        pipe = FeaturePipeline(**features)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf = make().fit(pipe.fit_transform(tr.images), tr.labels)
        ev = clf.evidence(pipe.transform(va.images))
        proba = np.zeros((len(va), n_classes))
        proba[:, clf.classes_] = ev.proba
        logits = None
        if ev.logits is not None:  # a class missing from this fold's training part can never win
            logits = np.full((len(va), n_classes), ABSENT_LOGIT)
            logits[:, clf.classes_] = ev.logits
        parts.append(Evidence(clf.classes_[ev.labels], proba, logits, ev.win_distance, ev.nearest))
        ys.append(va.labels)
    return Evidence.concatenate(parts), np.concatenate(ys)


def tune_linear(data: PatchSet, grid: dict[str, list[Any]], features: dict[str, Any], loss: str,
                strategy: str = "cv", folds: int = 5, val: PatchSet | None = None, seed: int = 0,
                device: str = "auto", quiet: bool = False, max_steps: int = 5000, solver: str = "auto"
                ) -> TuneResult:
    """Accuracy of each (reg, lr) candidate; a candidate whose training diverges scores 0 and
    is named in `result.warnings`."""
    result = TuneResult(strategy)
    splits = _splits(data, strategy, folds, val, seed)
    result.warnings += unvalidated_classes(splits, data.class_names)
    combos = [dict(zip(grid, v)) for v in itertools.product(*grid.values())]
    prepared = []
    for tr, va in splits:
        pipe = FeaturePipeline(**features)
        prepared.append((pipe.fit_transform(tr.images), tr.labels, pipe.transform(va.images), va.labels))
    for params in tqdm(combos, desc="tune linear", disable=quiet):
        scores = []
        for Xtr, ytr, Xva, yva in prepared:
            clf = LinearClassifier(loss=loss, device=device, seed=seed, max_steps=max_steps, solver=solver, **params)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    scores.append(float((clf.fit(Xtr, ytr).predict(Xva) == yva).mean()))
            except FloatingPointError:
                result.warnings.append(f"training diverged at {params}; scored 0")
                scores.append(0.0)
        result.add(params, scores)
    result.warnings += result.grid_warnings(grid)
    return result


def unvalidated_classes(splits: list[tuple[PatchSet, PatchSet]], class_names: list[str]) -> list[str]:
    """Classes the validation cannot judge: never in a validation split, or only in validation
    splits whose training part lacks them (grouped CV with a class in a single scene group)."""
    present = {int(c) for _, va in splits for c in np.unique(va.labels)}
    learnable = {int(c) for tr, va in splits for c in np.intersect1d(np.unique(tr.labels), np.unique(va.labels))}
    out = []
    for c in sorted({int(c) for tr, _ in splits for c in np.unique(tr.labels)} | present):
        name = class_names[c] if c < len(class_names) else str(c)
        if c not in present:
            out.append(f"class {name!r} is in no validation split: its accuracy is not validated")
        elif c not in learnable:
            out.append(f"class {name!r} is only validated on splits whose training part lacks it (all its samples "
                       "in one group?): every candidate gets it wrong; add scenes with it or use --tune val")
    return out
