"""sensor_msgs/Image -> numpy through cv_bridge, where a ROS install has it.

The ROS user's own converter converts the node's images on a ROS install; the package's
converter (`image_conversion`, which honours `step` and `is_bigendian`) stays the reference
and the fallback. `load_bridge` uses cv_bridge only after it has converted a small image of
every supported encoding exactly like the reference; one that fails or differs (built for
another OpenCV or numpy than the process has) is reported and left out, never a crash.
Checked with cv_bridge built from source against OpenCV 4.6: `imgmsg_to_cv2`, the only
direction used here, gives the reference's arrays beside an OpenCV 4.14 or 5.0 `cv2` (its
`cv2_to_imgmsg` raises `KeyError: 16` beside OpenCV 5: not used); its big-endian path calls
`ndarray.newbyteorder`, gone in numpy 2, so big-endian images take the fallback.

Per image the fallback also takes what cv_bridge does not read the way the message means it:
rows padded by a part of a pixel (cv_bridge reads whole pixels per row), malformed messages
(the reference raises the clear error), and anything cv_bridge raises on.

Never the PyPI `cv-bridge` (an unofficial port that refuses 16UC1): only the ROS package's
`cv_bridge` module is used, and it is checked before use.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .image_conversion import ENCODINGS, array_to_fields, image_to_array, to_rgb


class BridgeConverter:
    """cv_bridge's `imgmsg_to_cv2`: colour as RGB (`desired_encoding="rgb8"`), depth and masks as
    they are (`"passthrough"`). The methods return None where the caller must use the reference."""

    def __init__(self, bridge: Any) -> None:
        self._bridge = bridge

    @staticmethod
    def _whole_pixel_rows(msg: Any) -> bool:
        if msg.encoding not in ENCODINGS:
            return False
        dtype, channels = ENCODINGS[msg.encoding]
        pixel = np.dtype(dtype).itemsize * channels
        return msg.step % pixel == 0 and msg.step >= msg.width * pixel and len(msg.data) >= msg.step * msg.height

    def _convert(self, msg: Any, desired: str) -> np.ndarray | None:
        if not self._whole_pixel_rows(msg):
            return None
        try:
            arr = np.asarray(self._bridge.imgmsg_to_cv2(msg, desired_encoding=desired))
        except Exception:  # noqa: BLE001 -- CvBridgeError, TypeError, KeyError...: the reference decides
            return None
        return arr.astype(arr.dtype.newbyteorder("="), copy=False)

    def color(self, msg: Any) -> np.ndarray | None:
        return self._convert(msg, "rgb8")

    def image(self, msg: Any) -> np.ndarray | None:
        return self._convert(msg, "passthrough")


def _reference(msg: Any, colour: bool) -> np.ndarray:
    arr = image_to_array(msg.encoding, msg.height, msg.width, msg.step, bool(msg.is_bigendian), msg.data)
    return to_rgb(msg.encoding, arr) if colour else arr


def disagreements(converter: BridgeConverter, make_msg) -> tuple[list[str], list[str]]:
    """Every supported encoding through cv_bridge and the reference, tight and padded rows, both
    byte orders where it matters: (cases cv_bridge failed, cases it gave another array), as
    lines. `make_msg(fields)` builds a sensor_msgs/Image from `array_to_fields`-style fields."""
    rng = np.random.default_rng(0)
    failed, wrong = [], []
    for encoding, (dtype, channels) in ENCODINGS.items():
        shape = (3, 5, channels) if channels > 1 else (3, 5)
        if np.dtype(dtype).kind == "f":
            arr = rng.uniform(0.1, 5.0, shape).astype(dtype)
        else:
            arr = rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
        for pad_pixels, bigendian in ((0, False), (2, False), (0, True)):
            if bigendian and np.dtype(dtype).itemsize == 1:
                continue
            fields = array_to_fields(arr, encoding)
            pixel = np.dtype(dtype).itemsize * channels
            rows = np.frombuffer(fields["data"], np.uint8).reshape(3, -1)
            if bigendian:
                rows = np.ascontiguousarray(arr.astype(np.dtype(dtype).newbyteorder(">"))).view(np.uint8).reshape(3, -1)
            padded = np.concatenate([rows, np.zeros((3, pad_pixels * pixel), np.uint8)], axis=1)
            fields.update(step=padded.shape[1], data=padded.tobytes(), is_bigendian=int(bigendian))
            msg = make_msg(fields)
            colour = encoding in ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
            want = _reference(msg, colour)
            got = converter.color(msg) if colour else converter.image(msg)
            case = f"{encoding} step {fields['step']}{' big-endian' if bigendian else ''}"
            if got is None:
                failed.append(case)
            elif got.shape != want.shape or got.dtype != want.dtype or not np.array_equal(got, want):
                wrong.append(f"{case}: cv_bridge gives {got.dtype}{got.shape}, the reference {want.dtype}{want.shape}"
                             f"{'' if got.shape != want.shape else ' with other values'}")
    return failed, wrong


def load_bridge(make_msg) -> tuple[BridgeConverter | None, str]:
    """(converter, "") where cv_bridge imports and agrees with the reference on every supported
    encoding; else (None, why). `make_msg` as for `disagreements` (the node passes sensor_msgs'
    Image)."""
    try:
        from cv_bridge import CvBridge
    except Exception as e:  # noqa: BLE001 -- a broken install raises more than ImportError
        return None, f"cv_bridge does not import ({type(e).__name__}: {e})"
    try:
        converter = BridgeConverter(CvBridge())
        failed, wrong = disagreements(converter, make_msg)
    except Exception as e:  # noqa: BLE001
        return None, f"cv_bridge fails its check ({type(e).__name__}: {e})"
    if wrong:  # a different array is never acceptable
        return None, "cv_bridge disagrees with the package's converter: " + "; ".join(wrong[:3])
    # A failure falls back to the reference per image (same array); failing on common little-endian
    # images (OpenCV 5 beside it) would cost an exception per frame: not used then.
    common = [c for c in failed if "big-endian" not in c]
    if common:
        return None, "cv_bridge fails on " + ", ".join(common[:4]) + " (built for another OpenCV or numpy?)"
    return converter, ""
