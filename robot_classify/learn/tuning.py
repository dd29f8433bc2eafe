"""Hyperparameter selection on a validation split or by k-fold cross-validation.

Never on the test split: callers hand in training data only. For kNN the neighbours are
searched once per (features, metric, fold) with the largest k; every smaller k votes from
the same list, so a grid over k costs one search.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..data.datasets import PatchSet
from .features import FeaturePipeline, feature_config
from .knn import KNNClassifier
from .linear import LinearClassifier


@dataclass
class TuneResult:
    """One row per candidate: params, per-fold accuracies, mean, std; `best` = highest mean."""

    strategy: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def best(self) -> dict[str, Any]:
        # Ties go to the earlier row: grids list simpler settings (smaller k, stronger reg) first.
        return max(self.rows, key=lambda r: (r["mean"], -self.rows.index(r)))

    def add(self, params: dict[str, Any], scores: list[float]) -> None:
        self.rows.append({"params": params, "scores": [float(s) for s in scores],
                          "mean": float(np.mean(scores)), "std": float(np.std(scores))})

    def table(self) -> str:
        lines = [f"{'params':<60} {'mean':>7} {'std':>6}"]
        for r in self.rows:
            p = ", ".join(f"{k}={v}" for k, v in r["params"].items())
            lines.append(f"{p:<60} {r['mean']:7.4f} {r['std']:6.4f}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "rows": self.rows, "best": self.best}


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
    return result


def tune_linear(data: PatchSet, grid: dict[str, list[Any]], features: dict[str, Any], loss: str,
                strategy: str = "cv", folds: int = 5, val: PatchSet | None = None, seed: int = 0,
                device: str = "auto", quiet: bool = False, epochs: int = 20) -> TuneResult:
    result = TuneResult(strategy)
    splits = _splits(data, strategy, folds, val, seed)
    combos = [dict(zip(grid, v)) for v in itertools.product(*grid.values())]
    prepared = []
    for tr, va in splits:
        pipe = FeaturePipeline(**features)
        prepared.append((pipe.fit_transform(tr.images), tr.labels, pipe.transform(va.images), va.labels))
    for params in tqdm(combos, desc="tune linear", disable=quiet):
        scores = []
        for Xtr, ytr, Xva, yva in prepared:
            clf = LinearClassifier(loss=loss, device=device, seed=seed, epochs=epochs, **params).fit(Xtr, ytr)
            scores.append(float((clf.predict(Xva) == yva).mean()))
        result.add(params, scores)
    return result
