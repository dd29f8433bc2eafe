"""Shared fixtures: small data each test makes itself, no downloads."""
from __future__ import annotations

import numpy as np
import pytest

from robot_classify.data.datasets import PatchSet


def make_patches(n_per_class: int = 20, n_classes: int = 3, seed: int = 0, groups: int = 0) -> PatchSet:
    """Coloured squares with noise: separable by colour, a few per class."""
    rng = np.random.default_rng(seed)
    colors = rng.integers(0, 256, (n_classes, 3))
    images, labels = [], []
    for c in range(n_classes):
        for _ in range(n_per_class):
            img = np.clip(colors[c] + rng.normal(0, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
            images.append(img)
            labels.append(c)
    labels = np.array(labels)
    g = (np.arange(len(labels)) % groups) if groups else None
    return PatchSet(np.stack(images), labels, [f"class_{i}" for i in range(n_classes)], g)


def object_crops(seed: int, n: int = 12) -> np.ndarray:
    """Object-like crops: a coloured box with noise on a grey table, placed and sized at random
    (the ConvNet engines' tests and bench/features_bench.py compare embeddings on them)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, 32, 32, 3), np.uint8)
    for i in range(n):
        img = np.full((32, 32, 3), rng.integers(60, 200), np.float32)
        y, x, h, w = rng.integers(0, 10, 2).tolist() + rng.integers(12, 22, 2).tolist()
        img[y:y + h, x:x + w] = rng.integers(0, 256, 3)
        out[i] = np.clip(img + rng.normal(0, 10, img.shape), 0, 255).astype(np.uint8)
    return out


@pytest.fixture
def patches() -> PatchSet:
    return make_patches()


@pytest.fixture(scope="session")
def default_model_file() -> str:
    """The embedded default model shipped in the package (loaded, never built, by tests)."""
    from robot_classify.runtime.default_model import default_model_path

    return str(default_model_path())


@pytest.fixture(scope="module")
def harness(default_model_file):
    """classify_node (depth mode, default model) with a tester node over real DDS, per module."""
    pytest.importorskip("rclpy")
    from ros_harness import RosHarness  # imported here: it starts ROS settings rclpy-free tests don't need

    h = RosHarness(default_model_file)
    yield h
    h.close()
