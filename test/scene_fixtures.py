"""Rendered scenes shared by tests (rendered once per test session: ~0.3 s each)."""
from __future__ import annotations

import functools

from robot_classify.scene_render import RenderedScene, SceneRenderer


@functools.lru_cache(maxsize=None)
def rendered(seed: int) -> RenderedScene:
    with SceneRenderer() as r:
        return r.render(seed)
