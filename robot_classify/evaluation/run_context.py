"""What exactly ran: model, parameters, package version and commit, host, date, bag topics.

Everything a reader needs to reproduce a replay-eval report or to tell two apart. Each probe
that can fail (git, nvidia-smi, /proc/cpuinfo) gives None instead of an error: a report
without a commit is still a report.
"""
from __future__ import annotations

import datetime
import hashlib
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from .. import __version__
from ..learn.model import ClassifierModel


def model_context(model: ClassifierModel, path: str | None) -> dict[str, Any]:
    """The model as a reader needs it: file, name, checksum, classes, features, training data."""
    meta = model.meta
    training = meta.get("training") if isinstance(meta.get("training"), dict) else {}
    if not path:  # the embedded default, or a model built in memory (the Python API, tests)
        from ..learn.model_io import file_sha256
        from ..runtime.default_model import default_model_path

        default = default_model_path()
        is_default = default.exists() and file_sha256(default) == meta.get("sha256")
        path = f"{default} (embedded default)" if is_default else "(in memory: no model file)"
    try:
        features = model.features.config()
    except Exception:  # noqa: BLE001 -- a report must not fail on a describe call
        features = None
    return {"path": str(path), "name": str(meta.get("name", "model")), "sha256": str(meta.get("sha256", "")),
            "kind": model.kind, "classes": list(model.class_names), "features": features,
            "training_data_sha256": training.get("sha256"), "training_samples": training.get("n_samples")}


def _run(cmd: list[str], cwd: str | Path | None = None) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else None


def git_commit(exclude: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """The commit of the checkout this package runs from (an editable install), and whether it
    had local changes outside the `exclude` paths (relative to the checkout's root: a
    benchmark's own result files change as it runs); None for an installed wheel."""
    here = Path(__file__).resolve().parent
    commit = _run(["git", "rev-parse", "HEAD"], here)
    if commit is None:
        return None
    status = _run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":/",
                   *(f":(top,exclude){path}" for path in exclude)], here)
    return {"commit": commit, "dirty": bool(status)}


def cpu_name() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def gpu_names() -> list[str]:
    """GPUs nvidia-smi lists (no CUDA initialisation, no torch import)."""
    out = _run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"])
    return [line.strip() for line in out.splitlines() if line.strip()] if out else []


def host_context() -> dict[str, Any]:
    return {"cpu": cpu_name(), "cpu_count": os.cpu_count(), "gpus": gpu_names(), "platform": platform.platform(),
            "python": sys.version.split()[0]}


def bag_fingerprint(bag: str | Path) -> str | None:
    """sha256 of the bag's metadata.yaml (its files, topics, message counts, start and length):
    which bag a report was made on, wherever the folder has moved since. None without one."""
    try:
        return hashlib.sha256((Path(bag) / "metadata.yaml").read_bytes()).hexdigest()
    except OSError:
        return None


def run_context(model: ClassifierModel, parameters: dict[str, Any], bag: str | Path,
                topics: tuple[str, str, str], bag_topics: dict[str, str], ground_truth: str) -> dict[str, Any]:
    """`ground_truth`: where the truth came from (a topic, or a sidecar file), in words."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "package": {"name": "robot_classify", "version": __version__, "git": git_commit()},
        "host": host_context(),
        "model": model_context(model, parameters.get("model_path")),
        "parameters": dict(parameters),
        "bag": {"path": str(Path(bag).resolve()), "metadata_sha256": bag_fingerprint(bag),
                "color_topic": topics[0], "depth_topic": topics[1], "camera_info_topic": topics[2],
                "ground_truth": ground_truth,
                "topics": dict(sorted(bag_topics.items()))},
    }
