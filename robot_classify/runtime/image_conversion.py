"""sensor_msgs/Image <-> numpy without cv_bridge (not on PyPI; the PyPI port breaks 16UC1).

The reference conversion, and the fallback where cv_bridge is used (`cv_bridge_backend`).

Works on the message's plain fields, so it is ROS-free and testable without rclpy. Honours
`step` (row padding) and `is_bigendian`. Colour comes out RGB uint8; depth as uint16 mm
(16UC1) or float32 m (32FC1); masks as uint8/uint16 instance ids. Colour and depth may also be
sensor_msgs/CompressedImage (image_transport's `compressed` / `compressedDepth`): decoded by
`compressed`, at most `max_pixels` pixels (a decompression bomb is refused before decoding).
"""
from __future__ import annotations

import cv2
import numpy as np

from .compressed import MAX_PIXELS, decode_color, decode_depth, is_compressed

# encoding -> (numpy dtype, channels)
ENCODINGS = {
    "rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "rgba8": (np.uint8, 4), "bgra8": (np.uint8, 4),
    "mono8": (np.uint8, 1), "8UC1": (np.uint8, 1), "mono16": (np.uint16, 1), "16UC1": (np.uint16, 1),
    "32FC1": (np.float32, 1),
}
COLOR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
DEPTH_ENCODINGS = ("16UC1", "mono16", "32FC1")
MASK_ENCODINGS = ("mono8", "8UC1", "mono16", "16UC1")
# The most common wiring mistake gives a depth image on the colour topic and a colour one on the
# depth topic; the error says so rather than only naming the encoding.
SWAPPED = ": are the colour and depth topics swapped (color_topic / depth_topic remappings)?"


class UnsupportedEncoding(ValueError):
    """An image encoding this node does not convert (the frame is skipped)."""


def image_to_array(encoding: str, height: int, width: int, step: int, is_bigendian: bool, data: bytes | memoryview
                   ) -> np.ndarray:
    """The message's pixels as an (H, W) or (H, W, C) array in the encoding's own layout."""
    if encoding not in ENCODINGS:
        raise UnsupportedEncoding(f"unsupported image encoding {encoding!r} (supported: {', '.join(ENCODINGS)})")
    dtype, channels = ENCODINGS[encoding]
    dt = np.dtype(dtype).newbyteorder(">" if is_bigendian else "<")
    row = width * channels * dt.itemsize
    if height <= 0 or width <= 0:
        raise ValueError(f"empty image {width}x{height}")
    if step < row:
        raise ValueError(f"step {step} is smaller than a row of {width} {encoding} pixels ({row} bytes)")
    buf = np.frombuffer(data, np.uint8)
    if buf.size < step * (height - 1) + row:
        raise ValueError(f"image data has {buf.size} bytes, {width}x{height} {encoding} with step {step} "
                         f"needs {step * height}")
    rows = np.lib.stride_tricks.as_strided(buf, (height, row), (step, 1))
    arr = np.ascontiguousarray(rows).view(dt).reshape(height, width, channels) if channels > 1 else \
        np.ascontiguousarray(rows).view(dt).reshape(height, width)
    return arr.astype(dt.newbyteorder("="), copy=False)


def to_rgb(encoding: str, arr: np.ndarray) -> np.ndarray:
    """Colour image of any supported colour encoding -> RGB uint8 (H, W, 3)."""
    if encoding == "rgb8":
        return arr
    if encoding == "bgr8":
        return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    if encoding == "rgba8":
        return cv2.cvtColor(arr, cv2.COLOR_RGBA2RGB)
    if encoding == "bgra8":
        return cv2.cvtColor(arr, cv2.COLOR_BGRA2RGB)
    if encoding in ("mono8", "8UC1"):
        return cv2.cvtColor(arr, cv2.COLOR_GRAY2RGB)
    raise UnsupportedEncoding(f"{encoding!r} is not a colour encoding (expected one of {COLOR_ENCODINGS})"
                              + (SWAPPED if encoding in DEPTH_ENCODINGS else ""))


def msg_to_array(msg) -> np.ndarray:
    """A sensor_msgs/Image (or anything with its fields) -> array in its own layout."""
    return image_to_array(msg.encoding, msg.height, msg.width, msg.step, bool(msg.is_bigendian), msg.data)


def color_from_msg(msg, bridge=None, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """RGB uint8. `bridge`: a `cv_bridge_backend.BridgeConverter` tried first (on a ROS install);
    this module's conversion where it declines. A CompressedImage is decoded (`max_pixels`: the
    most it may claim)."""
    if is_compressed(msg):
        return decode_color(msg.format, msg.data, max_pixels)
    if msg.encoding in COLOR_ENCODINGS and bridge is not None:
        arr = bridge.color(msg)
        if arr is not None:
            return arr
    return to_rgb(msg.encoding, msg_to_array(msg))


def depth_from_msg(msg, bridge=None, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    if is_compressed(msg):
        return decode_depth(msg.format, msg.data, max_pixels)
    if msg.encoding not in DEPTH_ENCODINGS:
        raise UnsupportedEncoding(f"depth encoding must be one of {DEPTH_ENCODINGS}, got {msg.encoding!r}"
                                  + (SWAPPED if msg.encoding in COLOR_ENCODINGS[:4] else ""))
    arr = None if bridge is None else bridge.image(msg)
    return msg_to_array(msg) if arr is None else arr


def mask_from_msg(msg, bridge=None) -> np.ndarray:
    if msg.encoding not in MASK_ENCODINGS:
        raise UnsupportedEncoding(f"mask encoding must be one of {MASK_ENCODINGS}, got {msg.encoding!r}")
    arr = None if bridge is None else bridge.image(msg)
    return msg_to_array(msg) if arr is None else arr


def array_to_fields(arr: np.ndarray, encoding: str) -> dict:
    """Fields for a sensor_msgs/Image holding `arr` (little-endian, no padding)."""
    dtype, channels = ENCODINGS[encoding]
    arr = np.ascontiguousarray(arr, dtype=np.dtype(dtype).newbyteorder("<"))
    h, w = arr.shape[:2]
    if (arr.shape[2] if arr.ndim == 3 else 1) != channels:
        raise ValueError(f"{encoding} needs {channels} channels, array has shape {arr.shape}")
    return {"height": h, "width": w, "encoding": encoding, "is_bigendian": 0,
            "step": w * channels * arr.itemsize, "data": arr.tobytes()}
