"""cv_bridge where a ROS install has it, the package's converter as reference and fallback.

The real cv_bridge is not on PyPI (the PyPI `cv-bridge` is an unofficial port that refuses
16UC1): the test against it skips where it does not import (it passed with cv_bridge built
from source against OpenCV 4.6, beside cv2 4.14 and 5.0). The wrapper's decisions (use, fall
back, refuse) are tested everywhere with stand-ins that behave like cv_bridge's
`imgmsg_to_cv2` (its Python source, core.py), like a build that fails, and like a wrong one.
"""
import sys
import types
from types import SimpleNamespace as NS

import cv2
import numpy as np
import pytest

from robot_classify.runtime.cv_bridge_backend import BridgeConverter, disagreements, load_bridge
from robot_classify.runtime.image_conversion import (COLOR_ENCODINGS, ENCODINGS, array_to_fields, color_from_msg,
                                                     depth_from_msg, image_to_array, mask_from_msg, to_rgb)

TO_RGB = {"bgr8": cv2.COLOR_BGR2RGB, "rgba8": cv2.COLOR_RGBA2RGB, "bgra8": cv2.COLOR_BGRA2RGB,
          "mono8": cv2.COLOR_GRAY2RGB}


class LikeCvBridge:
    """cv_bridge's imgmsg_to_cv2, step by step: rows read as whole pixels, then cropped to width;
    byte order fixed with ndarray.newbyteorder (gone in numpy 2); colour through cvtColor."""

    def __init__(self, swap_bgr: bool = True) -> None:
        self.calls, self.swap_bgr = 0, swap_bgr

    def imgmsg_to_cv2(self, msg, desired_encoding="passthrough"):
        self.calls += 1
        dtype, ch = ENCODINGS[msg.encoding]
        dt = np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<")
        shape = (msg.height, msg.step // dt.itemsize // ch) + ((ch,) if ch > 1 else ())
        im = np.ascontiguousarray(np.ndarray(shape, dt, buffer=msg.data)[:, :msg.width])
        if msg.is_bigendian == (sys.byteorder == "little"):
            im = im.byteswap().newbyteorder()
        if desired_encoding == "passthrough" or desired_encoding == msg.encoding:
            return im
        if msg.encoding == "bgr8" and not self.swap_bgr:
            return im
        return cv2.cvtColor(im, TO_RGB[msg.encoding])


class LikeMismatchedBuild:
    def imgmsg_to_cv2(self, msg, desired_encoding="passthrough"):
        raise KeyError(16)  # cv_bridge's type tables out of step with the cv2 it runs beside


def fake_module(monkeypatch, bridge) -> None:
    module = types.ModuleType("cv_bridge")
    module.CvBridge = lambda: bridge
    monkeypatch.setitem(sys.modules, "cv_bridge", module)


def msgs(make):
    """An image of every supported encoding, tight and with rows padded by 3 pixels."""
    rng = np.random.default_rng(1)
    for encoding, (dtype, ch) in ENCODINGS.items():
        shape = (4, 6, ch) if ch > 1 else (4, 6)
        arr = (rng.uniform(0, 4, shape) if np.dtype(dtype).kind == "f" else rng.integers(0, 250, shape)).astype(dtype)
        for pad in (0, 3):
            f = array_to_fields(arr, encoding)
            rows = np.frombuffer(f["data"], np.uint8).reshape(4, -1)
            data = np.concatenate([rows, np.zeros((4, pad * np.dtype(dtype).itemsize * ch), np.uint8)], 1)
            f.update(step=data.shape[1], data=data.tobytes())
            yield make(f)


def reference(msg):
    arr = image_to_array(msg.encoding, msg.height, msg.width, msg.step, bool(msg.is_bigendian), msg.data)
    return to_rgb(msg.encoding, arr) if msg.encoding in COLOR_ENCODINGS else arr


def convert(msg, bridge):
    if msg.encoding in COLOR_ENCODINGS:
        return color_from_msg(msg, bridge)
    return depth_from_msg(msg, bridge) if msg.encoding in ("16UC1", "mono16", "32FC1") else mask_from_msg(msg, bridge)


def test_a_bridge_that_agrees_is_used_and_gives_the_reference_arrays(monkeypatch):
    like = LikeCvBridge()
    fake_module(monkeypatch, like)
    converter, why = load_bridge(lambda f: NS(**f))
    assert converter is not None and why == ""
    like.calls = 0
    for msg in msgs(lambda f: NS(**f)):
        got, want = convert(msg, converter), reference(msg)
        assert got.dtype == want.dtype and np.array_equal(got, want), msg.encoding
    assert like.calls == len(ENCODINGS) * 2  # every image went through the bridge


def test_big_endian_and_part_pixel_padding_fall_back_to_the_reference(monkeypatch):
    like = LikeCvBridge()
    converter = BridgeConverter(like)
    depth = np.array([[1, 258], [65535, 4096]], np.uint16)
    big = NS(height=2, width=2, encoding="16UC1", is_bigendian=1, step=4, data=depth.astype(">u2").tobytes())
    np.testing.assert_array_equal(depth_from_msg(big, converter), depth)  # numpy 2: cv_bridge raises here
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    odd = NS(height=2, width=3, encoding="rgb8", is_bigendian=0, step=10,  # 1 byte of padding per row
             data=np.concatenate([rgb.reshape(2, 9), np.zeros((2, 1), np.uint8)], 1).tobytes())
    calls = like.calls
    np.testing.assert_array_equal(color_from_msg(odd, converter), rgb)
    assert like.calls == calls  # not offered to cv_bridge: it would read whole pixels across the padding
    with pytest.raises(ValueError, match="image data has 3 bytes"):  # a malformed image: the reference's error
        depth_from_msg(NS(height=2, width=2, encoding="16UC1", is_bigendian=0, step=4, data=b"abc"), converter)


def test_a_bridge_that_fails_on_every_image_is_not_used_and_the_reason_is_given(monkeypatch):
    fake_module(monkeypatch, LikeMismatchedBuild())
    converter, why = load_bridge(lambda f: NS(**f))
    assert converter is None and "cv_bridge fails on rgb8" in why and "another OpenCV" in why


def test_a_bridge_that_gives_other_arrays_is_not_used(monkeypatch):
    fake_module(monkeypatch, LikeCvBridge(swap_bgr=False))
    converter, why = load_bridge(lambda f: NS(**f))
    assert converter is None and "disagrees" in why and "bgr8" in why


def test_absent_cv_bridge_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv_bridge", None)  # import raises ImportError
    converter, why = load_bridge(lambda f: NS(**f))
    assert converter is None and why.startswith("cv_bridge does not import")


def test_real_cv_bridge_gives_identical_arrays_for_every_supported_encoding():
    pytest.importorskip("cv_bridge", reason="cv_bridge does not import: a ROS install provides it (the PyPI "
                                            "cv-bridge is an unofficial port, never used)")
    Image = pytest.importorskip("sensor_msgs.msg").Image
    make = lambda f: Image(**f)  # noqa: E731
    converter, why = load_bridge(make)
    assert converter is not None, why
    failed, wrong = disagreements(converter, make)
    assert wrong == [] and all("big-endian" in c for c in failed)
    for msg in msgs(make):
        got, want = convert(msg, converter), reference(msg)
        assert got.dtype == want.dtype and np.array_equal(got, want), msg.encoding
