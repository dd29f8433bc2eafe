"""Camera effects on rendered crops: each keeps the crop's shape and type, is fixed by its seed,
and stays within the levels it states (`camera_effects.LEVELS`)."""
import numpy as np
import pytest

from robot_classify.sim import camera_effects as ce


def object_crop(h: int = 20, w: int = 24, seed: int = 0) -> np.ndarray:
    """A small crop as crop_patch cuts it: a coloured, textured object on the grey background."""
    rng = np.random.default_rng(seed)
    crop = np.full((h, w, 3), ce.BACKGROUND, np.uint8)
    crop[4:16, 5:19] = rng.integers(30, 220, (12, 14, 3), dtype=np.uint8)
    return crop


def flat(value, h: int = 16, w: int = 16) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, np.uint8), (h, w, 3)).copy()


@pytest.mark.parametrize("name", list(ce.EFFECTS))
def test_each_effect_keeps_shape_and_dtype_and_is_fixed_by_its_seed(name):
    crop = object_crop()
    fn = ce.EFFECTS[name]
    a, b = fn(crop, np.random.default_rng(7)), fn(crop, np.random.default_rng(7))
    assert a.shape == crop.shape and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert crop.sum() == object_crop().sum()  # the input is not written to
    others = [fn(crop, np.random.default_rng(s)) for s in range(8, 12)]
    assert any(not np.array_equal(a, o) for o in others)  # the seed does matter


def test_white_balance_moves_red_and_blue_against_each_other_within_its_gains():
    lo_t, hi_t = ce.LEVELS["white_balance"]["temperature"]
    lo_g, hi_g = ce.LEVELS["white_balance"]["tint"]
    for seed in range(20):
        r, g, b = ce.white_balance(flat(100), np.random.default_rng(seed))[0, 0].astype(int)
        assert 100 * (1 + lo_t) - 1 <= r <= 100 * (1 + hi_t) + 1
        assert 100 * (1 + lo_g) - 1 <= g <= 100 * (1 + hi_g) + 1
        assert abs((r - 100) + (b - 100)) <= 1  # warm light: red up by what blue loses


def test_exposure_stays_between_its_darkest_and_brightest_setting():
    (s0, s1), (g0, g1) = ce.LEVELS["exposure"]["stops"], ce.LEVELS["exposure"]["gamma"]
    x = 0.4
    darkest, brightest = 255 * x ** g1 * 2 ** s0, min(255.0, 255 * x ** g0 * 2 ** s1)
    values = [int(ce.exposure(flat(102), np.random.default_rng(s))[0, 0, 0]) for s in range(30)]
    assert all(darkest - 1 <= v <= brightest + 1 for v in values)
    assert max(values) - min(values) > 40  # and does span a range


def test_sensor_noise_is_zero_mean_and_no_stronger_than_its_levels():
    a, b = ce.LEVELS["sensor_noise"]["shot_gain"][1], ce.LEVELS["sensor_noise"]["read_sigma"][1]
    crop = flat(128, 32, 32)
    for seed in range(5):
        d = ce.sensor_noise(crop, np.random.default_rng(seed)).astype(float) - 128
        assert 0.1 < d.std() <= np.sqrt(a * 128 + b * b)
        assert abs(d.mean()) < 1.0


@pytest.mark.parametrize("name", ["blur", "low_resolution", "chroma", "saturation"])
def test_smoothing_effects_leave_a_flat_grey_crop_as_it_is(name):
    crop = flat(90)
    for seed in range(5):
        assert np.abs(ce.EFFECTS[name](crop, np.random.default_rng(seed)).astype(int) - 90).max() <= 1


def test_blur_and_low_resolution_only_mix_values_that_were_there():
    crop = object_crop()
    for name in ("blur", "low_resolution"):
        for seed in range(5):
            out = ce.EFFECTS[name](crop, np.random.default_rng(seed))
            assert out.min() >= crop.min() - 1 and out.max() <= crop.max() + 1
            assert out.astype(float).std() < crop.astype(float).std()  # smoother than it was


def test_jpeg_at_its_lowest_quality_keeps_a_smooth_crop_recognisable():
    yy, xx = np.mgrid[0:24, 0:24]
    crop = np.stack([8 * xx + 20, 8 * yy + 20, np.full_like(xx, 120)], -1).astype(np.uint8)
    for seed in range(5):
        err = ce.jpeg(crop, np.random.default_rng(seed)).astype(float) - crop
        psnr = 10 * np.log10(255 ** 2 / np.mean(err ** 2))
        assert psnr > 28


def test_chroma_keeps_brightness_and_blurs_colour():
    crop = flat((128, 128, 128), 16, 16)
    crop[:, ::2] = (200, 60, 60)  # red and grey stripes one pixel wide
    crop[:, 1::2] = (60, 100, 230)
    out = ce.chroma(crop, np.random.default_rng(0)).astype(float)
    luma = np.array([0.299, 0.587, 0.114])
    assert np.abs(out @ luma - crop.astype(float) @ luma).mean() < 25
    assert np.abs(np.diff(out[..., 0], axis=1)).mean() < np.abs(np.diff(crop[..., 0].astype(float), axis=1)).mean()


def test_saturation_scales_the_distance_from_grey_within_its_levels():
    lo, hi = ce.LEVELS["saturation"]["scale"]
    crop = flat((180, 100, 60))
    grey = np.array([180, 100, 60]) @ np.array([0.299, 0.587, 0.114])
    for seed in range(10):
        out = ce.saturation(crop, np.random.default_rng(seed))[0, 0].astype(float)
        scale = (out[0] - grey) / (180 - grey)
        assert lo - 0.02 <= scale <= hi + 0.02


def test_glare_only_brightens_and_by_no_more_than_its_strength():
    crop = object_crop()
    top = ce.LEVELS["glare"]["strength"][1]
    for seed in range(10):
        out = ce.glare(crop, np.random.default_rng(seed)).astype(float)
        gain = out - crop
        assert gain.min() >= 0
        assert np.all(gain <= top * (255 - crop.astype(float)) + 1)
        assert gain.max() > 10


def test_apply_effects_keeps_the_grey_background_and_names_unknown_effects():
    crop = object_crop()
    background = (crop == ce.BACKGROUND).all(-1)
    out = ce.apply_effects(crop, list(ce.EFFECTS), np.random.default_rng(3))
    assert (out[background] == ce.BACKGROUND).all()
    assert not np.array_equal(out[~background], crop[~background])
    with pytest.raises(ValueError, match=r"unknown camera effect\(s\) \['fog'\]"):
        ce.apply_effects(crop, ["blur", "fog"], np.random.default_rng(0))
    with pytest.raises(ValueError, match="uint8 \\(H, W, 3\\)"):
        ce.apply_effects(crop.astype(np.float32), ["blur"], np.random.default_rng(0))


def test_augment_replaces_about_p_of_the_crops_each_by_its_own_seed():
    images = np.stack([object_crop(seed=s) for s in range(200)])
    out = ce.augment(images, ["white_balance", "sensor_noise"], seed=5, p=0.5)
    changed = np.array([not np.array_equal(a, b) for a, b in zip(out, images)])
    assert 0.35 < changed.mean() < 0.65
    assert np.array_equal(out, ce.augment(images, ["white_balance", "sensor_noise"], seed=5, p=0.5))
    # a crop's result depends on its index and the seed only, not on the other crops
    assert np.array_equal(ce.augment(images[:10], ["white_balance", "sensor_noise"], seed=5, p=0.5), out[:10])
    assert np.array_equal(ce.augment(images, [], seed=5, p=1.0), images)
    assert np.array_equal(ce.augment(images, ["blur"], seed=5, p=0.0), images)
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\], got 1.5"):
        ce.augment(images, ["blur"], seed=5, p=1.5)


def test_the_recipe_replaces_a_share_of_its_crops_and_names_its_version():
    from robot_classify.data.datasets import PatchSet
    from robot_classify.sim import default_recipe as dr

    images = np.stack([object_crop(32, 32, seed=s) for s in range(120)])
    data = PatchSet(images, np.arange(120) % 3, ["a", "b", "c"], np.arange(120) // 10)
    out = dr.with_camera_effects(data, seed=0, effects=("glare",))
    assert np.array_equal(out.labels, data.labels) and np.array_equal(out.groups, data.groups)
    assert out.class_names == data.class_names and out.images.shape == images.shape
    changed = np.array([not np.array_equal(a, b) for a, b in zip(out.images, images)])
    assert abs(changed.mean() - dr.CAMERA_EFFECT_SHARE) < 0.15
    assert np.array_equal(dr.with_camera_effects(data, seed=0, effects=("glare",)).images, out.images)
    assert not np.array_equal(dr.with_camera_effects(data, seed=1, effects=("glare",)).images, out.images)
    assert all(name in ce.EFFECTS for name in dr.CAMERA_EFFECTS)
    assert dr.default_key(0) == f"default-g{dr.GENERATOR_VERSION}-r{dr.RECIPE_VERSION}-s0"
    assert dr.default_key(0, ("glare",)).endswith(f"-r{dr.RECIPE_VERSION}-s0-fx-glare")
    assert dr.recipe_data_dir(0).name.endswith(f"-r{dr.RECIPE_VERSION}-s0-data")  # the rendered crops' cache
