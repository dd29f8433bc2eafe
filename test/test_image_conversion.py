import numpy as np
import pytest

from robot_classify.runtime.image_conversion import (UnsupportedEncoding, array_to_fields, color_from_msg, depth_from_msg,
                                             image_to_array)


class Msg:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def test_rgb_bgr_rgba_bgra_mono_round_trip_to_rgb():
    rgb = np.random.default_rng(0).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    for enc, arr in (("rgb8", rgb), ("bgr8", rgb[:, :, ::-1]),
                     ("rgba8", np.dstack([rgb, np.full((4, 5), 7, np.uint8)])),
                     ("bgra8", np.dstack([rgb[:, :, ::-1], np.full((4, 5), 7, np.uint8)]))):
        np.testing.assert_array_equal(color_from_msg(Msg(**array_to_fields(arr, enc))), rgb)
    grey = rgb[:, :, 0].copy()
    np.testing.assert_array_equal(color_from_msg(Msg(**array_to_fields(grey, "mono8")))[:, :, 1], grey)


def test_16uc1_exact_and_32fc1_with_nan():
    d = np.array([[0, 1, 65535], [1234, 2, 3]], np.uint16)
    np.testing.assert_array_equal(depth_from_msg(Msg(**array_to_fields(d, "16UC1"))), d)
    f = np.array([[np.nan, 1.5], [np.inf, 0.25]], np.float32)
    np.testing.assert_array_equal(depth_from_msg(Msg(**array_to_fields(f, "32FC1"))), f)


def test_step_padding_is_honoured():
    d = np.arange(12, dtype=np.uint16).reshape(3, 4)
    padded = np.zeros((3, 6), np.uint16)
    padded[:, :4] = d
    out = image_to_array("16UC1", 3, 4, 12, False, padded.tobytes())
    np.testing.assert_array_equal(out, d)


def test_big_endian_depth():
    d = np.array([[1, 256, 4000]], np.uint16)
    out = image_to_array("16UC1", 1, 3, 6, True, d.astype(">u2").tobytes())
    np.testing.assert_array_equal(out, d)
    assert out.dtype.byteorder in ("=", "<", "|")


@pytest.mark.parametrize("kwargs, message", [
    (dict(encoding="yuv422", height=2, width=2, step=4, is_bigendian=False, data=b"\0" * 8), "unsupported"),
    (dict(encoding="rgb8", height=2, width=2, step=3, is_bigendian=False, data=b"\0" * 12), "step 3"),
    (dict(encoding="rgb8", height=2, width=2, step=6, is_bigendian=False, data=b""), "needs 12"),
    (dict(encoding="rgb8", height=0, width=2, step=6, is_bigendian=False, data=b""), "empty"),
])
def test_bad_images_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        image_to_array(**kwargs)


def test_depth_topic_rejects_color_encoding():
    with pytest.raises(UnsupportedEncoding, match="depth encoding"):
        depth_from_msg(Msg(**array_to_fields(np.zeros((2, 2, 3), np.uint8), "rgb8")))


def test_swapped_colour_and_depth_topics_are_named_as_such():
    depth_on_colour = Msg(**array_to_fields(np.zeros((2, 2), np.uint16), "16UC1"))
    with pytest.raises(UnsupportedEncoding, match="not a colour encoding.*topics swapped"):
        color_from_msg(depth_on_colour)
    with pytest.raises(UnsupportedEncoding, match="depth encoding.*topics swapped"):
        depth_from_msg(Msg(**array_to_fields(np.zeros((2, 2, 3), np.uint8), "bgr8")))
    # a mono8 image on the depth topic may be a mask or an IR image: no guess
    with pytest.raises(UnsupportedEncoding) as e:
        depth_from_msg(Msg(**array_to_fields(np.zeros((2, 2), np.uint8), "mono8")))
    assert "swapped" not in str(e.value)
