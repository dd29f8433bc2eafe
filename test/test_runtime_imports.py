"""The robot runs inference only: importing the node (or the CLI) renders, plots and trains nothing."""
import subprocess
import sys

import pytest

WORKSHOP = ("pybullet", "matplotlib", "robot_classify.sim.scene_render", "robot_classify.sim.default_recipe",
            "robot_classify.learn.training", "robot_classify.evaluation.plots")


def imported_by(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return set(out.stdout.split())


def test_importing_the_node_pulls_in_no_renderer_plotter_or_trainer():
    pytest.importorskip("rclpy")
    loaded = imported_by("robot_classify.ros.node")
    assert "robot_classify.ros.node" in loaded and "rclpy" in loaded
    assert not loaded & set(WORKSHOP), sorted(loaded & set(WORKSHOP))


def test_loading_the_default_model_pulls_in_no_renderer_plotter_or_trainer():
    code = ("import sys; from robot_classify.runtime.default_model import get_default_model; get_default_model('cpu'); "
            "print('\\n'.join(sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    loaded = set(out.stdout.split())
    assert not loaded & set(WORKSHOP), sorted(loaded & set(WORKSHOP))
