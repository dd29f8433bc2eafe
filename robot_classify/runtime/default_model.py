"""The embedded default model: a file shipped inside the package, loaded, never built here.

A robot must not render or train at start-up, so the node and the CLI only *load*
`models/default.safetensors` (package data: inside the Python package for pip, and in the
colcon install's site-packages). The recipe that produced it lives in `default_recipe`
(workshop side, needs pybullet) and is run by `robot-classify build-default-model`; a slow
test checks that the recipe still reaches the shipped model's accuracy.
"""
from __future__ import annotations

from pathlib import Path

from ..learn.model import ClassifierModel
from ..learn.model_io import ModelFormatError, load_model

DEFAULT_MODEL_FILE = Path(__file__).resolve().parents[1] / "models" / "default.safetensors"


def default_model_path() -> Path:
    return DEFAULT_MODEL_FILE


def get_default_model(device: str = "auto") -> ClassifierModel:
    """Load the shipped default; a missing or damaged file says how to get it back."""
    if not DEFAULT_MODEL_FILE.is_file():
        raise ModelFormatError(f"{DEFAULT_MODEL_FILE}: the embedded default model is missing from this install; "
                               "reinstall robot_classify, or rebuild it with `robot-classify build-default-model "
                               f"--out {DEFAULT_MODEL_FILE}`")
    return load_model(DEFAULT_MODEL_FILE, device=device)
