"""Patch features: raw pixels, PCA, and HOG + colour histograms (better than pixels for kNN).

Every extractor maps uint8 patches (N, 32, 32, 3) RGB to a 2-D feature array, is fitted on
training patches only, and round-trips through `state()` / `from_state()` (plain arrays and
JSON) so a model file can carry it without pickle.
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

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


HOG_ORIENTATIONS, HOG_CELL, HOG_BLOCK = 9, 8, 2  # hog_color's HOG: 9 bins, 8x8-pixel cells, 2x2-cell blocks
_HOG_EPS = 1e-5


def hog_batch(grey: np.ndarray) -> np.ndarray:
    """`skimage.feature.hog(g, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2),
    block_norm="L2-Hys")` of every (H, W) uint8 image of (N, H, W) at once: (N, n_features) float64.

    The same arithmetic in the same order (each cell's magnitudes summed pixel by pixel in row
    order, in single precision, as scikit-image's loop does; each block normalised over its 36
    values), vectorised over the patches of a frame: scikit-image's per-image Python overhead
    (a call per block) was most of the features' time (bench/pipeline_bench.py). Tested equal
    to scikit-image, bit for bit."""
    n, H, W = grey.shape
    ncr, ncc = H // HOG_CELL, W // HOG_CELL
    nbr, nbc = ncr - HOG_BLOCK + 1, ncc - HOG_BLOCK + 1
    if nbr <= 0 or nbc <= 0:
        raise ValueError(f"HOG needs images of at least {HOG_BLOCK * HOG_CELL} x {HOG_BLOCK * HOG_CELL} pixels, "
                         f"got {H} x {W}")
    g = grey.astype(np.float64)
    g_row, g_col = np.zeros_like(g), np.zeros_like(g)
    g_row[:, 1:-1, :] = g[:, 2:, :] - g[:, :-2, :]
    g_col[:, :, 1:-1] = g[:, :, 2:] - g[:, :, :-2]
    g_row, g_col = g_row[:, :ncr * HOG_CELL, :ncc * HOG_CELL], g_col[:, :ncr * HOG_CELL, :ncc * HOG_CELL]
    magnitude = np.hypot(g_col, g_row)
    orientation = np.rad2deg(np.arctan2(g_row, g_col)) % 180
    # bin i holds [i, i + 1) x 180 / bins, compared as scikit-image compares (floor alone may round up)
    step = 180.0 / HOG_ORIENTATIONS
    b = np.floor(orientation / step).astype(np.intp)
    b -= orientation < step * b
    b += orientation >= step * (b + 1)
    # Per cell and bin, the magnitudes of its pixels in row order (0 where a pixel is in another
    # bin), position in the cell first: (64, n, cells down, cells across, bins).
    def by_cell(a: np.ndarray) -> np.ndarray:
        a = a.reshape(n, ncr, HOG_CELL, ncc, HOG_CELL).transpose(2, 4, 0, 1, 3)
        return a.reshape(HOG_CELL * HOG_CELL, n, ncr, ncc, 1)
    outside = b >= HOG_ORIENTATIONS  # an angle that rounded to 180: in no bin, as in scikit-image
    votes = np.zeros((HOG_CELL * HOG_CELL, n, ncr, ncc, HOG_ORIENTATIONS))
    np.put_along_axis(votes, by_cell(np.where(outside, 0, b)), by_cell(np.where(outside, 0.0, magnitude)), axis=-1)
    # scikit-image sums a cell in a C float: each pixel added in double, the total rounded to
    # single precision, pixel by pixel; so here, for all cells and bins at once (adding a zero
    # leaves a total as it is)
    total, rounded = np.zeros(votes.shape[1:]), np.zeros(votes.shape[1:], np.float32)
    for v in votes:
        total += v
        rounded[...] = total
        total[...] = rounded
    hist = (rounded / np.float32(HOG_CELL * HOG_CELL)).astype(np.float64)
    blocks = np.empty((n, nbr, nbc, HOG_BLOCK * HOG_BLOCK * HOG_ORIENTATIONS))
    for r in range(nbr):
        for c in range(nbc):
            blocks[:, r, c] = hist[:, r:r + HOG_BLOCK, c:c + HOG_BLOCK].reshape(n, -1)
    # L2-Hys: normalise, clip at 0.2, normalise again
    blocks /= np.sqrt(np.sum(blocks**2, axis=-1, keepdims=True) + _HOG_EPS**2)
    blocks = np.minimum(blocks, 0.2)
    blocks /= np.sqrt(np.sum(blocks**2, axis=-1, keepdims=True) + _HOG_EPS**2)
    return blocks.reshape(n, -1)


class HogColorFeatures:
    """HOG of the grey patch (shape) + a hue/saturation histogram + a coarse Lab colour layout.

    Each part is normalised and weighted so none swamps the others in an L2/L1 distance:
    HOG (324 values at 32x32, unit length), the sqrt of the normalised 2-D hue/saturation
    histogram (Hellinger: unit length) times `color_weight`, and the patch averaged to
    `grid` x `grid` Lab cells (which colour is where: a red top over a white bottom) times
    `grid_weight`. YCB packaging differs in colour, colour layout and printed structure, which
    survive the lighting and viewpoint changes that make raw-pixel kNN fail. Weights were
    chosen on a validation split of training scenes (README, "Features"). A frame's patches
    are computed together (`hog_batch`, `color_parts`).
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

    def transform(self, images: np.ndarray) -> np.ndarray:
        images = check_patches(images)
        if not len(images):
            return np.zeros((0, self.dim), np.float32)
        out = []
        for s in range(0, len(images), 256):  # bounded scratch when a training set is transformed
            batch = np.ascontiguousarray(images[s:s + 256])
            n, h, w, _ = batch.shape
            grey = cv2.cvtColor(batch.reshape(n * h, w, 3), cv2.COLOR_RGB2GRAY).reshape(n, h, w)
            hog_part = hog_batch(grey)
            # unit length; the norm row by row, as np.linalg.norm computes it for one patch
            hog_part /= np.array([max(np.linalg.norm(row), 1e-6) for row in hog_part])[:, None]
            hist, layout = color_parts(batch, self.hue_bins, self.sat_bins, self.grid)
            out.append(np.concatenate([hog_part, self.color_weight * hist, self.grid_weight * layout],
                                      axis=1).astype(np.float32))
        return np.concatenate(out)

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

    def describe(self) -> str:
        """What computes the features, for the node's ready line: the kind, and for the ConvNet the
        engine, precision and device chosen (an int8 graph that fails its check when it is built
        runs fp32, with a warning then; `slow_engine_note` says when the engine is the slow one)."""
        ex = self.extractor
        text = ex.kind + (f" + PCA to {self.pca.n_components}" if self.pca is not None else "")
        return text + (f" on {ex.engine} {ex.precision}, {ex.device}" if hasattr(ex, "engine") else "")

    def slow_engine_note(self) -> str | None:
        """Why ConvNet features run slower than this machine allows (onnxruntime missing), or None."""
        if not hasattr(self.extractor, "engine"):
            return None
        from .cnn_onnx import slow_engine_note

        return slow_engine_note(self.extractor.device)

    def warm_up(self) -> None:
        """Whatever the extractor prepares before the first frame (CUDA graphs for `cnn`)."""
        if hasattr(self.extractor, "warm_up"):
            self.extractor.warm_up()

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
