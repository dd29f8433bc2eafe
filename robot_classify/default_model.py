"""The embedded default model: built deterministically from generated scenes, cached on disk.

Nothing is downloaded. The first use renders `DEFAULT_SCENES` scenes with a fixed seed,
cuts patches, trains the default recipe on the training scenes and caches the model (and
its patch set) under `$XDG_CACHE_HOME/robot_classify` keyed by generator version, recipe
version and seed. A cache entry that fails to load (corrupt, truncated, tampered) is
rebuilt, never trusted.
"""
from __future__ import annotations

import fcntl
import logging
import os
import shutil
import time
from pathlib import Path

from .model import ClassifierModel
from .model_io import ModelFormatError, load_model, save_model
from .scene_render import GENERATOR_VERSION

log = logging.getLogger(__name__)

DEFAULT_SEED = 0
DEFAULT_SCENES = 600
RECIPE_VERSION = 3  # 2: trained on ground-truth and segmenter crops; 3: the crease-splitting segmenter


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "robot_classify"


def default_key(seed: int = DEFAULT_SEED) -> str:
    return f"default-g{GENERATOR_VERSION}-r{RECIPE_VERSION}-s{seed}"


def default_model_path(seed: int = DEFAULT_SEED) -> Path:
    return cache_dir() / f"{default_key(seed)}.safetensors"


def default_dataset_path(seed: int = DEFAULT_SEED) -> Path:
    return cache_dir() / f"{default_key(seed)}-data" / "patches"


def build_default_model(seed: int = DEFAULT_SEED, scenes: int | None = None, device: str = "auto",
                        quiet: bool = False, workers: int = 2) -> Path:
    """Render, cut patches, train; returns the cached model path."""
    from .datasets import load_dataset
    from .scene_dataset import generate
    from .training import TrainOptions, train_model

    t0 = time.perf_counter()
    scenes = scenes or DEFAULT_SCENES
    data_root = default_dataset_path(seed).parent
    if data_root.exists():
        shutil.rmtree(data_root)
    log.info("building the default model: rendering %d scenes (seed %d) ...", scenes, seed)
    generate(data_root, scenes, seed, with_patches=True, write_scenes=False, workers=workers, quiet=quiet)
    splits = load_dataset(default_dataset_path(seed), "props")  # read back: what users evaluate on
    opts = TrainOptions(classifier="knn", k="auto", metrics=["l2"], features=["hog_color"], tune="cv",
                        device=device, seed=seed, quiet=quiet, name=default_key(seed))
    model = train_model(splits["train"], opts)
    path = save_model(model, default_model_path(seed))
    log.info("default model ready in %.0f s: %s", time.perf_counter() - t0, path)
    return path


def get_default_model(device: str = "auto", quiet: bool = False, seed: int = DEFAULT_SEED) -> ClassifierModel:
    path = default_model_path(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    # One builder at a time: a node and a CLI started together must not both render.
    with open(path.parent / f"{default_key(seed)}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            try:
                return load_model(path, device=device)
            except ModelFormatError as e:
                log.warning("cached default model is unusable (%s); rebuilding it", e)
                path.unlink()
        build_default_model(seed, device=device, quiet=quiet)
        return load_model(path, device=device)
