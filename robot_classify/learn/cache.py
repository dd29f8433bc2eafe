"""Where robot_classify keeps files it derives and can remake (converted network weights,
rendered patch sets): `$XDG_CACHE_HOME/robot_classify`, else `~/.cache/robot_classify`.
Everything there is safe to delete."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "robot_classify"
