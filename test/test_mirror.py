"""Small training sets also learn mirror images (TrainOptions.mirror), without letting a CV fold
validate on the mirror of its own training data, and calibration sees only real crops."""
import numpy as np
import pytest

from robot_classify.learn.tuning import fold_indices
from robot_classify.data.datasets import PatchSet
from robot_classify.learn.training import MIRROR_BELOW, TrainOptions, mirror_keeps_class, mirrored, train_model

from conftest import make_patches


def test_mirror_images_share_their_originals_group():
    data = make_patches(6, 2, seed=1)  # no groups: each original becomes its own group
    m = mirrored(data)
    n = len(data)
    assert len(m) == 2 * n
    np.testing.assert_array_equal(m.images[n:], data.images[:, :, ::-1])
    np.testing.assert_array_equal(m.labels[n:], data.labels)
    np.testing.assert_array_equal(m.groups[:n], m.groups[n:])
    for tr, va in fold_indices(m, 3, seed=0):  # a patch and its mirror never sit on both sides of a fold
        assert not set(tr % n) & set(va % n)
    grouped = make_patches(6, 2, seed=1, groups=4)
    np.testing.assert_array_equal(mirrored(grouped).groups, np.tile(grouped.groups, 2))


def test_small_sets_are_mirrored_and_calibrated_on_real_crops_only():
    data = make_patches(20, 3, seed=3, groups=8)
    assert len(data) < MIRROR_BELOW
    model = train_model(data, TrainOptions(classifier="knn", k="3", features=["hog_color"], device="cpu", quiet=True,
                                           mirror="auto"))
    assert model.meta["training"]["n_samples"] == 2 * len(data)  # the mirror images are in the model
    assert model.calibration.n_validation == len(data)  # ... but never validated on
    off = train_model(data, TrainOptions(classifier="knn", k="3", features=["hog_color"], device="cpu", quiet=True))
    assert off.meta["training"]["n_samples"] == len(data)


def test_auto_leaves_out_mirror_images_that_change_the_class():
    rng = np.random.default_rng(0)
    images = np.clip(rng.normal(60, 10, (40, 32, 32, 3)), 0, 255).astype(np.uint8)
    images[:20, :, :16] = 220  # class 0: bright on the left; class 1: bright on the right
    images[20:, :, 16:] = 220
    data = PatchSet(images, np.repeat([0, 1], 20), ["left", "right"])
    assert not mirror_keeps_class(data, "hog_color")
    model = train_model(data, TrainOptions(classifier="knn", k="1", features=["hog_color"], device="cpu", quiet=True,
                                           mirror="auto", calibrate=False))
    assert model.meta["training"]["n_samples"] == len(data)
    assert mirror_keeps_class(make_patches(20, 3, seed=3), "hog_color")


def test_mirror_option_is_checked():
    with pytest.raises(ValueError, match="mirror must be one of"):
        TrainOptions(mirror="yes")
