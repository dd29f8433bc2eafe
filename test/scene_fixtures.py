"""Rendered scenes shared by tests (rendered once per test session: ~0.3 s each)."""
from __future__ import annotations

import functools

from robot_classify.sim.scene_render import RenderedScene, SceneRenderer


@functools.lru_cache(maxsize=None)
def rendered(seed: int) -> RenderedScene:
    with SceneRenderer() as r:
        return r.render(seed)


def camera_k(scene: RenderedScene) -> list[float]:
    """The scene's intrinsics as sensor_msgs/CameraInfo.k (row-major 3x3)."""
    i = scene.meta["intrinsics"]
    return [i["fx"], 0, i["cx"], 0, i["fy"], i["cy"], 0, 0, 1]
