"""What every patch feature extractor shares: the checks on its input and options, and the
colour parts (which colours a patch holds and where).

Its own module so that `features` (the registry, pixels, HOG + colour) and `cnn` (the
ConvNet embeddings, with or without the colour parts) both use it without importing each
other: `features` imports `cnn` lazily when a model asks for ConvNet features.
"""
from __future__ import annotations

import functools
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


@functools.lru_cache(maxsize=None)
def _calc_hist_bins(bins: int, high: int) -> np.ndarray:
    """The bin cv2.calcHist puts each uint8 value in for `bins` uniform bins over [0, high)
    (-1: outside), read from calcHist itself, so that the batched histogram counts alike."""
    values = np.arange(256, dtype=np.uint8)[None, :]
    out = np.full(256, -1, np.intp)
    for v in range(256):
        h = cv2.calcHist([values[:, v:v + 1]], [0], None, [bins], [0, high]).ravel()
        if h.any():
            out[v] = int(np.argmax(h))
    return out


def color_parts(images: np.ndarray, hue_bins: int = HUE_BINS, sat_bins: int = SAT_BINS, grid: int = GRID
                ) -> tuple[np.ndarray, np.ndarray]:
    """Which colours each patch of (N, H, W, 3) RGB uint8 holds and where: the sqrt of its
    normalised hue/saturation histogram (Hellinger: unit length, so it weighs the same whatever
    the patch's size or exposure), (N, hue_bins * sat_bins) float32, and the patch averaged to
    `grid` x `grid` Lab cells in [0, 1], (N, 3 * grid**2) float64.

    A frame's patches at once, the same numbers as one patch at a time: colour conversions are
    per pixel, so the patches go through OpenCV stacked as one tall image; the histograms are
    one bincount (each value in calcHist's own bin, `_calc_hist_bins`); the layout is one
    INTER_AREA resize of the stack when the cells tile every patch exactly (as 32 px in a 4 x 4
    grid do), which averages the same pixels."""
    n, h, w, _ = images.shape
    if n == 0:
        return np.zeros((0, hue_bins * sat_bins), np.float32), np.zeros((0, 3 * grid * grid))
    tall = np.ascontiguousarray(images).reshape(n * h, w, 3)
    hsv = cv2.cvtColor(tall, cv2.COLOR_RGB2HSV).reshape(n, h * w, 3)
    hue, sat = _calc_hist_bins(hue_bins, 180)[hsv[..., 0]], _calc_hist_bins(sat_bins, 256)[hsv[..., 1]]
    inside = (hue >= 0) & (sat >= 0)
    cell = np.where(inside, np.arange(n)[:, None] * (hue_bins * sat_bins) + hue * sat_bins + sat, -1)
    counts = np.bincount(cell[inside], minlength=n * hue_bins * sat_bins).astype(np.float32)
    hist = counts.reshape(n, hue_bins * sat_bins)
    hist = np.sqrt(hist / np.maximum(hist.sum(1, keepdims=True), np.float32(1.0)))
    lab = cv2.cvtColor(tall, cv2.COLOR_RGB2LAB)
    if h % grid == 0 and w % grid == 0:
        cells = cv2.resize(lab, (grid, n * grid), interpolation=cv2.INTER_AREA).reshape(n, -1)
    else:
        cells = np.stack([cv2.resize(p, (grid, grid), interpolation=cv2.INTER_AREA).ravel()
                          for p in lab.reshape(n, h, w, 3)])
    return hist, cells / 255.0
