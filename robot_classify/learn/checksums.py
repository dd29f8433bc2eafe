"""sha256 of a file's exact bytes: a model's identity on /object_labels, and the check on the
network weights and the caches derived from them. Its own module: model files and the
ConvNet trunk both use it, and the trunk must not import the model file's code (which
imports the feature registry, which imports the ConvNet features)."""
from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: str | Path) -> str:
    """Identity of a model on /object_labels: the hash of the exact file bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
