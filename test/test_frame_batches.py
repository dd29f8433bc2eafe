"""A frame's work done at once equals the same work done an item at a time.

hog_color features of a frame's patches (`hog_batch`, `color_parts`) and every object's
centroid and extent (`surface_centroid_extent`) are computed together for speed; these tests
pin them to the one-at-a-time references they replaced (scikit-image's `hog`, OpenCV per patch,
`np.median` / `np.percentile`), so that models trained with the references keep their answers.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage.feature import hog

from robot_classify.learn.features import HogColorFeatures, color_parts, hog_batch
from robot_classify.runtime.camera import surface_centroid_extent


def _patches(n: int, size: tuple[int, int] = (32, 32), seed: int = 0) -> np.ndarray:
    """Smooth blobs with edges (as object crops have), flat patches and noise."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[:h, :w]
    out = []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(3, max(h, w))
            inside = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
            img = np.where(inside[..., None], rng.integers(0, 256, 3), rng.integers(0, 256, 3))
            img = img + rng.normal(0, 4, (h, w, 3))
        elif kind == 1:
            img = np.broadcast_to(rng.integers(0, 256, 3), (h, w, 3))
        else:
            img = rng.integers(0, 256, (h, w, 3))
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return np.stack(out)


def _grey(patches: np.ndarray) -> np.ndarray:
    return np.stack([cv2.cvtColor(p, cv2.COLOR_RGB2GRAY) for p in patches])


@pytest.mark.parametrize("size", [(32, 32), (40, 48), (33, 35), (16, 16)])
def test_hog_batch_equals_scikit_image_hog_patch_by_patch(size):
    grey = _grey(_patches(30, size))
    want = np.stack([hog(g, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2), block_norm="L2-Hys",
                         feature_vector=True) for g in grey])
    got = hog_batch(grey)
    assert got.shape == want.shape and got.dtype == np.float64
    # bit for bit with scikit-image 0.26 (its cells sum in single precision); 1e-6 leaves room for
    # another release's rounding, far below what moves a neighbour
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_hog_batch_refuses_images_smaller_than_a_block():
    with pytest.raises(ValueError, match="at least 16 x 16"):
        hog_batch(np.zeros((2, 15, 32), np.uint8))


def _hog_color_one(patch: np.ndarray, hue_bins=18, sat_bins=4, grid=4, color_weight=2.0, grid_weight=2.0):
    """The per-patch definition: scikit-image's HOG, OpenCV's histogram and INTER_AREA layout."""
    h = hog(cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY), orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2),
            block_norm="L2-Hys", feature_vector=True)
    h = h / max(np.linalg.norm(h), 1e-6)
    hsv = cv2.cvtColor(patch, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, [hue_bins, sat_bins], [0, 180, 0, 256]).ravel()
    hist = np.sqrt(hist / max(hist.sum(), 1.0))
    lab = cv2.resize(cv2.cvtColor(patch, cv2.COLOR_RGB2LAB), (grid, grid), interpolation=cv2.INTER_AREA)
    return np.concatenate([h, color_weight * hist, grid_weight * lab.ravel() / 255.0]).astype(np.float32)


@pytest.mark.parametrize("options", [{}, dict(hue_bins=7, sat_bins=3, grid=2, color_weight=1.5, grid_weight=0.5),
                                     dict(hue_bins=180, sat_bins=256, grid=8)])
def test_hog_color_of_a_frame_equals_its_patches_one_by_one(options):
    patches = _patches(24)
    want = np.stack([_hog_color_one(p, **options) for p in patches])
    got = HogColorFeatures(**options).transform(patches)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(got[:, 324:], want[:, 324:])  # the colour parts exactly


def test_colour_layout_of_patches_the_grid_does_not_tile_equals_one_by_one():
    patches = _patches(6, (40, 36))
    hist, layout = color_parts(patches, grid=3)
    for p, hi, la in zip(patches, hist, layout):
        want = cv2.resize(cv2.cvtColor(p, cv2.COLOR_RGB2LAB), (3, 3), interpolation=cv2.INTER_AREA).ravel() / 255.0
        np.testing.assert_array_equal(la, want)
        counts = cv2.calcHist([cv2.cvtColor(p, cv2.COLOR_RGB2HSV)], [0, 1], None, [18, 4], [0, 180, 0, 256]).ravel()
        np.testing.assert_array_equal(hi, np.sqrt(counts / counts.sum()))
    assert [a.shape for a in color_parts(patches[:0], grid=3)] == [(0, 72), (0, 27)]


def test_centroid_and_extent_equal_numpy_median_and_percentiles():
    rng = np.random.default_rng(1)
    for n in [*range(1, 40), 999, 1000, 4321]:
        points = rng.normal([0.1, -0.05, 0.9], [0.03, 0.02, 0.01], (n, 3))
        points[rng.integers(0, n, n // 4)] = points[0]  # repeated values, as quantised depth gives
        centroid, extent = surface_centroid_extent(points)
        np.testing.assert_array_equal(centroid, np.median(points, axis=0))
        lo, hi = np.percentile(points, (2.0, 98.0), axis=0)
        np.testing.assert_allclose(extent, hi - lo, rtol=0, atol=1e-15)
    assert surface_centroid_extent(np.zeros((0, 3))) == (None, None)
