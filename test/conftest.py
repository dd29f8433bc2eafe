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
