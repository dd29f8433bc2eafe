"""What every patch feature extractor shares: the checks on its input and options, and the
colour parts (which colours a patch holds and where).

Its own module so that `features` (the registry, pixels, HOG + colour) and `cnn` (the
ConvNet embeddings, with or without the colour parts) both use it without importing each
other: `features` imports `cnn` lazily when a model asks for ConvNet features.
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

MAX_WEIGHT = 1000.0  # bound on a part's weight (it comes from model files too)


def _show(value: Any) -> str:
    """repr for messages, cut short: a damaged model file can hold a 400-digit number."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_int(name: str, value: Any, lo: int, hi: int) -> int:
    """An integer in [lo, hi]; bools and floats are refused (JSON `true` is not 1, 2.5 is not 2)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {_show(value)}")
    return int(value)


def check_number(name: str, value: Any, lo: float, hi: float) -> float:
    """A real number in finite bounds [lo, hi] (ints accepted, bools refused).

    The chained comparison also refuses NaN and inf, and compares a huge int exactly where
    math.isfinite(10**400) would raise OverflowError.
    """
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating))
            or not lo <= value <= hi):
        raise ValueError(f"{name} must be a finite number in [{lo}, {hi}], got {_show(value)}")
    return float(value)


def check_patches(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
        raise ValueError(f"patches must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    return images


HUE_BINS, SAT_BINS, GRID = 18, 4, 4  # colour parts' defaults, chosen for hog_color (see HogColorFeatures)


def color_dim(hue_bins: int = HUE_BINS, sat_bins: int = SAT_BINS, grid: int = GRID) -> int:
    """Length of `color_parts` concatenated: the histogram, then 3 Lab values per cell."""
    return hue_bins * sat_bins + 3 * grid**2


def color_parts(patch: np.ndarray, hue_bins: int = HUE_BINS, sat_bins: int = SAT_BINS, grid: int = GRID
                ) -> tuple[np.ndarray, np.ndarray]:
    """Which colours a patch holds and where: the sqrt of its normalised hue/saturation
    histogram (Hellinger: unit length, so it weighs the same whatever the patch's size or
    exposure) and the patch averaged to `grid` x `grid` Lab cells, in [0, 1]."""
    hsv = cv2.cvtColor(patch, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, [hue_bins, sat_bins], [0, 180, 0, 256]).ravel()
    hist = np.sqrt(hist / max(hist.sum(), 1.0))
    lab = cv2.cvtColor(patch, cv2.COLOR_RGB2LAB)
    return hist, cv2.resize(lab, (grid, grid), interpolation=cv2.INTER_AREA).ravel() / 255.0
