"""The default recipe's negatives: distractor crops split by shape (even for training, odd for
evaluation), added to the training set as the negative label `unknown`, grouped by scene."""
import numpy as np
import pytest

from robot_classify.data.datasets import PatchSet
from robot_classify.sim.default_recipe import NEGATIVE_LABEL, with_negatives
from robot_classify.sim.scene_dataset import distractor_patches
from robot_classify.sim.scene_render import HOUSEHOLD, HOUSEHOLD_COLOURS, SceneRenderer

from conftest import make_patches


def test_with_negatives_appends_one_negative_class_in_groups_of_their_own():
    train = make_patches(5, 2, seed=1, groups=3)
    neg = np.zeros((4, 32, 32, 3), np.uint8)
    out = with_negatives(train, neg, np.array([0, 0, 12, 25]))
    assert out.class_names == [*train.class_names, NEGATIVE_LABEL] == ["class_0", "class_1", "unknown"]
    np.testing.assert_array_equal(out.labels[-4:], [2, 2, 2, 2])
    np.testing.assert_array_equal(out.groups[-4:], [3, 3, 4, 5])  # scene // 10, after the training groups
    # a set with its own `unknown` class (train --negatives recipe on it): the negatives join it
    own = with_negatives(PatchSet(neg[:3], np.array([0, 1, 1]), ["mug", "unknown"]), neg, np.zeros(4, np.int64))
    assert own.class_names == ["mug", "unknown"] and own.labels.tolist() == [0, 1, 1, 1, 1, 1, 1]
    with pytest.raises(ValueError, match="crops"):
        with_negatives(train, np.zeros((2, 16, 16, 3), np.uint8), np.arange(2))


def test_distractors_carry_their_shape_and_the_split_keeps_only_that_parity():
    with SceneRenderer() as r:
        scene = r.render(77 * 1_000_003, max_distractors=4)
    shapes = [o["shape"] for o in scene.meta["objects"] if o["class_name"] == "distractor"]
    # pybullet's random URDFs 0-999, household objects 1000 + 100 * kind + colour
    households = {1000 + 100 * k + c for k in range(len(HOUSEHOLD)) for c in range(len(HOUSEHOLD_COLOURS))}
    assert shapes and all(isinstance(s, int) and (0 <= s < 1000 or s in households) for s in shapes)
    assert all("shape" not in o for o in scene.meta["objects"] if o["class_name"] != "distractor")
    with pytest.raises(ValueError, match="shapes must be one of"):
        distractor_patches(1, 77, shapes="prime")


def test_negatives_of_one_parity_and_their_scenes():
    # seed 80: its 4 scenes hold distractors of both parities (household ones since generator 2)
    even, scenes = distractor_patches(4, 80, workers=1, shapes="even", jitters=2, max_distractors=4,
                                      return_scenes=True)
    odd = distractor_patches(4, 80, workers=1, shapes="odd", max_distractors=4)
    every = distractor_patches(4, 80, workers=1, max_distractors=4)
    assert len(even) > 0 and len(odd) > 0
    assert len(even) == 2 * (len(every) - len(odd))  # each even-shape object: its crop and one jittered
    assert len(scenes) == len(even) and (np.diff(scenes) >= 0).all() and 0 <= scenes.min() <= scenes.max() < 4
    assert even.dtype == np.uint8 and even.shape[1:] == (32, 32, 3)
