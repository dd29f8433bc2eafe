import json
import subprocess
import sys

import numpy as np
import pytest

from robot_classify.runtime.camera import Intrinsics, depth_to_metres
from robot_classify.data.datasets import PROPS_CLASSES, load_dataset
from robot_classify.sim.object_catalog import CATALOG, resting_heights
from robot_classify.sim.scene_dataset import generate, patches_from_scene
from robot_classify.sim.scene_render import read_scene, write_scene

from scene_fixtures import rendered


def test_catalog_holds_every_props_class_once_in_label_order():
    """The renderer draws classes from the catalog, labels index PROPS_CLASSES: the same names,
    and the same order (the seeded draw, and so every generated scene, depends on it)."""
    assert list(CATALOG) == PROPS_CLASSES
    assert all(spec.name == name for name, spec in CATALOG.items())


def test_cans_are_named_standing_boxes_on_any_face_and_the_marker_lying():
    """The poses the default names each class in (`ClassifierModel.resting`), in metres: those the
    renders show, and a box on any face (the renders never lay it on its narrow side)."""
    h = resting_heights()
    assert h["master_chef_can"] == (0.14,) and h["tuna_fish_can"] == (0.033,)
    assert h["cracker_box"] == (0.21, 0.06, 0.16) and h["large_marker"] == (0.018,)  # a box on any face
    assert h["mustard_bottle"] == (0.16,) and h["mug"] == (0.1,) and set(h) == set(CATALOG)
    from robot_classify.runtime.default_model import get_default_model

    assert get_default_model(device="cpu").resting == h  # the embedded default names them so


def test_the_renderer_imports_without_pybullets_build_time_line():
    """pybullet's C code writes its build time to stderr on import; `demo` and `make-bag` showed it
    as if it were a warning. The import keeps Python's own output and errors."""
    out = subprocess.run([sys.executable, "-c", "import sys; import robot_classify.sim.scene_render; "
                          "print('after', file=sys.stderr)"], capture_output=True, text=True, check=True)
    assert out.stderr == "after\n"


@pytest.mark.parametrize("seed", [1, 4])
def test_rendered_scene_shapes_and_dtypes(seed):
    s = rendered(seed)
    assert s.color.shape == (480, 640, 3) and s.color.dtype == np.uint8
    assert s.depth.shape == (480, 640) and s.depth.dtype == np.uint16
    assert s.mask.shape == (480, 640)
    assert (s.depth == 0).mean() < 0.5 and (s.depth > 0).any()  # dropout but mostly valid
    assert s.meta["intrinsics"] == {"fx": 615.0, "fy": 615.0, "cx": 320.0, "cy": 240.0}


@pytest.mark.parametrize("seed", [1, 4])
def test_ground_truth_consistent_with_mask_depth_and_intrinsics(seed):
    s = rendered(seed)
    K = Intrinsics(**s.meta["intrinsics"])
    z = depth_to_metres(s.depth)
    assert s.meta["objects"]
    for obj in s.meta["objects"]:
        vs, us = np.nonzero(s.mask == obj["instance"])
        b = obj["bbox"]
        assert (b["x_offset"], b["y_offset"]) == (us.min(), vs.min())
        assert (b["width"], b["height"]) == (us.max() - us.min() + 1, vs.max() - vs.min() + 1)
        assert obj["pixels"] == len(us)
        assert 0 < obj["visible_fraction"] <= 1
        assert obj["class_name"] in PROPS_CLASSES or obj["class_name"] == "distractor"
        # The centroid back-projects onto the object's pixels at its measured (noisy) depth.
        c = obj["centroid"]
        u = K.fx * c["x"] / c["z"] + K.cx
        v = K.fy * c["y"] / c["z"] + K.cy
        assert b["x_offset"] - 1 <= u <= b["x_offset"] + b["width"] + 1
        assert b["y_offset"] - 1 <= v <= b["y_offset"] + b["height"] + 1
        measured = np.nanmedian(z[vs, us])
        assert abs(measured - c["z"]) < 0.02
        assert 0.1 < c["z"] < 2.5


def test_scenes_are_deterministic_in_the_seed():
    from robot_classify.sim.scene_render import SceneRenderer

    # Two fresh renderers (not the cached fixture, which would hide a difference).
    with SceneRenderer() as r:
        a = r.render(7)
    with SceneRenderer() as r:
        b = r.render(7)
    np.testing.assert_array_equal(a.color, b.color)
    np.testing.assert_array_equal(a.depth, b.depth)
    assert a.meta == b.meta


def test_scene_write_read_round_trip(tmp_path):
    s = rendered(1)
    write_scene(s, tmp_path / "s")
    back = read_scene(tmp_path / "s")
    np.testing.assert_array_equal(back.color, s.color)
    np.testing.assert_array_equal(back.depth, s.depth)
    np.testing.assert_array_equal(back.mask, s.mask)
    assert json.loads((tmp_path / "s" / "scene.json").read_text())["objects"] == s.meta["objects"]


def test_patches_from_scene_are_32x32_with_class_labels():
    s = rendered(4)
    pairs = patches_from_scene(s, np.random.default_rng(0), jitters=3, detector_crops=False)
    assert pairs
    for patch, label in pairs:
        assert patch.shape == (32, 32, 3) and patch.dtype == np.uint8
        assert 0 <= label < 10
    n_objects = sum(o["class_name"] in PROPS_CLASSES and o["visible_fraction"] >= 0.3 and o["pixels"] >= 120
                    for o in s.meta["objects"])
    assert len(pairs) == 3 * n_objects


def test_generate_props_layout_holds_out_whole_scenes(tmp_path):
    splits = generate(tmp_path, 6, seed=3, with_patches=True, workers=1, test_fraction=0.5, scenes_per_chunk=2,
                      quiet=True)
    assert len(list((tmp_path / "scenes").iterdir())) == 6
    loaded = load_dataset(tmp_path / "patches")
    assert len(loaded["train"]) == len(splits["train"]) and len(loaded["test"]) == len(splits["test"])
    assert set(np.unique(splits["train"].groups)).isdisjoint(np.unique(splits["test"].groups))
    assert loaded["train"].class_names == PROPS_CLASSES
