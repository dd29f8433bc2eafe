"""The labelled patch set every trainer takes, and its validation split.

A learn type: `training` and `tuning` take it, and the data loaders (`data.datasets`), the
renderer's patch sets (`sim`) and the bag tools produce it. It lives in the lower layer so
that learn never imports data (data imports learn for `PATCH_SIZE` and this type).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .features import PATCH_SIZE

PATCH_SHAPE = (PATCH_SIZE, PATCH_SIZE, 3)


@dataclass
class PatchSet:
    images: np.ndarray  # (N, 32, 32, 3) uint8 RGB
    labels: np.ndarray  # (N,) int64 indices into class_names
    class_names: list[str]
    groups: np.ndarray | None = None  # object instance / scene per sample, for group-aware splits

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.shape[1:] != PATCH_SHAPE or self.images.dtype != np.uint8:
            raise ValueError(f"patches must be uint8 (N, {PATCH_SIZE}, {PATCH_SIZE}, 3), got {self.images.dtype} "
                             f"{self.images.shape}")
        if self.labels.shape != (len(self.images),):
            raise ValueError(f"{len(self.images)} patches but labels of shape {self.labels.shape}")
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            raise ValueError(f"labels outside [0, {len(self.class_names)})")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx: np.ndarray) -> "PatchSet":
        return PatchSet(self.images[idx], self.labels[idx], self.class_names,
                        None if self.groups is None else self.groups[idx])


def split_validation(data: PatchSet, fraction: float, seed: int = 0) -> tuple[PatchSet, PatchSet]:
    """Hold out `fraction` for validation: whole groups (instances / scenes) when known, so the
    validation score sees unseen instances like the test set does; else stratified random."""
    if not 0 < fraction < 1:
        raise ValueError(f"val fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    if data.groups is not None and len(np.unique(data.groups)) >= 2:
        # Per class, so no class loses all its training groups.
        ugroups = np.unique(data.groups)
        majority = np.array([np.bincount(data.labels[data.groups == g]).argmax() for g in ugroups])
        held = []
        for c in np.unique(majority):
            gs = rng.permutation(ugroups[majority == c])
            if len(gs) >= 2:
                held.extend(gs[: min(len(gs) - 1, max(1, int(round(fraction * len(gs)))))])
        val_mask = np.isin(data.groups, held)
    else:
        val_mask = np.zeros(len(data), bool)
        for c in np.unique(data.labels):
            idx = rng.permutation(np.flatnonzero(data.labels == c))
            val_mask[idx[: int(round(fraction * len(idx)))]] = True
    return data.subset(np.flatnonzero(~val_mask)), data.subset(np.flatnonzero(val_mask))
