"""Patch features: raw pixels, PCA, and HOG + colour histograms (better than pixels for kNN).

Every extractor maps uint8 patches (N, 32, 32, 3) RGB to a 2-D feature array, is fitted on
training patches only, and round-trips through `state()` / `from_state()` (plain arrays and
JSON) so a model file can carry it without pickle.
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from skimage.feature import hog

# The checks and colour parts live in feature_parts (cnn uses them too, without importing this module);
# their names stay importable from here.
from .feature_parts import (GRID, HUE_BINS, MAX_WEIGHT, SAT_BINS, check_int, check_number,  # noqa: F401
                            check_patches, color_dim, color_parts)

PATCH_SIZE = 32  # side of the square RGB patches every model takes: data sets, training and runtime crops
FEATURE_KINDS = ("pixels", "hog_color", "cnn", "cnn_color")
# Bounds on HOG + colour settings. They come from model files too, so every size is bounded:
# 180 hue bins is one per OpenCV hue value, 256 saturation bins one per value, and a grid
# finer than the patch only repeats pixels.
MAX_HUE_BINS, MAX_SAT_BINS, MAX_GRID = 180, 256, PATCH_SIZE


def with_mirror_images(images: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`images` (N, H, W, 3) then each mirrored left-right; `groups` repeated, so that a mirror
    stays in its original's group (a CV fold, a taught view). Objects turn on a table: a mirror
    image is a plausible view of most of them (not of digits: `training.mirror_keeps_class`)."""
    return np.concatenate([images, images[:, :, ::-1]]), np.concatenate([groups, groups])


class PixelFeatures:
    """Flattened pixels. `center=True`: zero-centred by the training mean image, divided by the
    training std (one scalar). For L1/L2 kNN centring and a global scale do not change which
    neighbours are nearest, so kNN keeps `center=False` and stores exact uint8 (4x smaller)."""

    kind = "pixels"

    def __init__(self, center: bool = True) -> None:
        if not isinstance(center, (bool, np.bool_)):
            raise ValueError(f"center must be true or false, got {center!r}")
        self.center = bool(center)

    def fit(self, images: np.ndarray) -> "PixelFeatures":
        flat = check_patches(images).reshape(len(images), -1)
        if self.center:
            self.mean_ = flat.mean(0, dtype=np.float64).astype(np.float32)
            self.scale_ = np.float32(max(float(flat.std(dtype=np.float64)), 1e-6))
        return self

    def transform(self, images: np.ndarray) -> np.ndarray:
        flat = check_patches(images).reshape(len(images), -1)
        if not self.center:
            return flat
        return (flat.astype(np.float32) - self.mean_) / self.scale_

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "center": self.center}

    def state(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean_, "scale": np.array([self.scale_], np.float32)} if self.center else {}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        if self.center:
            self.mean_, self.scale_ = state["mean"], np.float32(state["scale"][0])


class HogColorFeatures:
    """HOG of the grey patch (shape) + a hue/saturation histogram + a coarse Lab colour layout.

    Each part is normalised and weighted so none swamps the others in an L2/L1 distance:
    HOG (324 values at 32x32, unit length), the sqrt of the normalised 2-D hue/saturation
    histogram (Hellinger: unit length) times `color_weight`, and the patch averaged to
    `grid` x `grid` Lab cells (which colour is where: a red top over a white bottom) times
    `grid_weight`. YCB packaging differs in colour, colour layout and printed structure, which
    survive the lighting and viewpoint changes that make raw-pixel kNN fail. Weights were
    chosen on a validation split of training scenes (README, "Features").
    """

    kind = "hog_color"

    def __init__(self, hue_bins: int = HUE_BINS, sat_bins: int = SAT_BINS, color_weight: float = 2.0, grid: int = GRID,
                 grid_weight: float = 2.0) -> None:
        self.hue_bins = check_int("hue_bins", hue_bins, 1, MAX_HUE_BINS)
        self.sat_bins = check_int("sat_bins", sat_bins, 1, MAX_SAT_BINS)
        self.grid = check_int("grid", grid, 1, MAX_GRID)
        self.color_weight = check_number("color_weight", color_weight, 0.0, MAX_WEIGHT)
        self.grid_weight = check_number("grid_weight", grid_weight, 0.0, MAX_WEIGHT)

    def fit(self, images: np.ndarray) -> "HogColorFeatures":
        check_patches(images)
        return self

    def _one(self, patch: np.ndarray) -> np.ndarray:
        grey = cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY)
        h = hog(grey, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2),
                block_norm="L2-Hys", feature_vector=True)
        h = h / max(np.linalg.norm(h), 1e-6)
        hist, layout = color_parts(patch, self.hue_bins, self.sat_bins, self.grid)
        return np.concatenate([h, self.color_weight * hist, self.grid_weight * layout]).astype(np.float32)

    def transform(self, images: np.ndarray) -> np.ndarray:
        images = check_patches(images)
        return np.stack([self._one(p) for p in images]) if len(images) else np.zeros((0, self.dim), np.float32)

    @property
    def dim(self) -> int:
        return 324 + color_dim(self.hue_bins, self.sat_bins, self.grid)

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "hue_bins": self.hue_bins, "sat_bins": self.sat_bins,
                "color_weight": self.color_weight, "grid": self.grid, "grid_weight": self.grid_weight}

    def state(self) -> dict[str, np.ndarray]:
        return {}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        pass


class PCA:
    """Principal components fitted on training features (SVD of the centred data)."""

    def __init__(self, n_components: int) -> None:
        if isinstance(n_components, (bool, np.bool_)) or not isinstance(n_components, (int, np.integer)) \
                or n_components < 1:
            raise ValueError(f"pca dims must be an integer >= 1, got {n_components!r}")
        self.n_components = int(n_components)

    def fit(self, X: np.ndarray) -> "PCA":
        X64 = np.asarray(X, np.float64)
        if self.n_components > min(X64.shape):
            raise ValueError(f"pca dims {self.n_components} exceed min(n_samples, n_features) = {min(X64.shape)}")
        self.mean_ = X64.mean(0)
        _, _, vt = np.linalg.svd(X64 - self.mean_, full_matrices=False)
        self.components_ = vt[: self.n_components].astype(np.float32)
        self.mean_ = self.mean_.astype(np.float32)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return (np.asarray(X, np.float32) - self.mean_) @ self.components_.T


def feature_config(kind: str, classifier: str, metric: str = "l2", pca_dims: int = 0) -> dict[str, Any]:
    """Pixels stay uncentred uint8 for L1/L2 kNN (same neighbours, exact, 4x smaller)."""
    center = classifier != "knn" or metric == "cosine" or pca_dims > 0
    return {"kind": kind, "pca_dims": pca_dims, "center": center}


class FeaturePipeline:
    """extractor -> optional PCA; what a model file stores under `features`."""

    def __init__(self, kind: str = "pixels", pca_dims: int = 0, center: bool = True, **options: Any) -> None:
        if kind not in FEATURE_KINDS:
            raise ValueError(f"features must be one of {FEATURE_KINDS}, got {kind!r}")
        if isinstance(pca_dims, (bool, np.bool_)) or not isinstance(pca_dims, (int, np.integer)) or pca_dims < 0:
            raise ValueError(f"pca dims must be an integer >= 0, got {pca_dims!r}")
        if not isinstance(center, (bool, np.bool_)):
            raise ValueError(f"center must be true or false, got {center!r}")
        if kind == "pixels" and options:
            raise ValueError(f"pixels features take no options, got {sorted(options)}")
        if kind == "pixels":
            self.extractor = PixelFeatures(center=center or pca_dims > 0)
        elif kind == "hog_color":
            self.extractor = HogColorFeatures(**options)
        else:
            from .cnn import CnnColorFeatures, CnnFeatures  # torch + the pretrained network, only when asked for

            self.extractor = (CnnFeatures if kind == "cnn" else CnnColorFeatures)(**options)
        self.pca = PCA(pca_dims) if pca_dims else None

    def to(self, device: str) -> "FeaturePipeline":
        """Where a network-based extractor runs (the others are CPU code)."""
        if hasattr(self.extractor, "to"):
            self.extractor.to(device)
        return self

    def fit(self, images: np.ndarray) -> "FeaturePipeline":
        self.extractor.fit(images)
        if self.pca is not None:
            self.pca.fit(self.extractor.transform(images))
        return self

    def fit_transform(self, images: np.ndarray) -> np.ndarray:
        return self.fit(images).transform(images)

    def transform(self, images: np.ndarray) -> np.ndarray:
        X = self.extractor.transform(images)
        return self.pca.transform(X) if self.pca is not None else X

    def config(self) -> dict[str, Any]:
        return {**self.extractor.config(), "pca_dims": self.pca.n_components if self.pca else 0}

    def state(self) -> dict[str, np.ndarray]:
        out = {f"features.{k}": v for k, v in self.extractor.state().items()}
        if self.pca is not None:
            out["features.pca_mean"] = self.pca.mean_
            out["features.pca_components"] = self.pca.components_
        return out

    @classmethod
    def from_config(cls, config: dict[str, Any], state: dict[str, np.ndarray]) -> "FeaturePipeline":
        config = dict(config)
        kind = config.pop("kind")
        pipe = cls(kind=kind, **config)
        pipe.extractor.load_state({k.split(".", 1)[1]: v for k, v in state.items()
                                   if k.startswith("features.") and not k.startswith("features.pca_")})
        if pipe.pca is not None:
            pipe.pca.mean_ = state["features.pca_mean"]
            pipe.pca.components_ = state["features.pca_components"]
        return pipe
