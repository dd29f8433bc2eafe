"""Draw boxes, labels and scores on a frame (debug image, overlays, report thumbnails)."""
from __future__ import annotations

import colorsys

import cv2
import numpy as np


def label_color(label: str) -> tuple[int, int, int]:
    """A stable, distinct RGB colour per label."""
    h = (sum(map(ord, label)) * 0.6180339887) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.85, 1.0)
    return int(255 * r), int(255 * g), int(255 * b)


def track_color(track_id: int) -> tuple[int, int, int]:
    """A stable RGB colour per track (golden-ratio hues: neighbouring ids differ): an object keeps
    its colour in RViz while its label is still being decided."""
    h = (track_id * 0.6180339887) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.8, 1.0)
    return int(255 * r), int(255 * g), int(255 * b)


def draw_objects(rgb: np.ndarray, items: list[tuple[tuple[int, int, int, int], str, float | None]]) -> np.ndarray:
    """items: (bbox, label, score or None). Returns a new RGB image."""
    out = np.ascontiguousarray(rgb.copy())
    for (x, y, w, h), label, score in items:
        col = label_color(label)
        cv2.rectangle(out, (x, y), (x + w - 1, y + h - 1), col, 2)
        text = label if score is None else f"{label} {score:.2f}"
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        ty = max(y, th + 4)
        cv2.rectangle(out, (x, ty - th - 4), (x + tw + 4, ty), col, -1)
        cv2.putText(out, text, (x + 2, ty - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return out
