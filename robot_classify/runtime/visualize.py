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


FONT, FONT_SCALE = cv2.FONT_HERSHEY_SIMPLEX, 0.45


def place_labels(boxes: list[tuple[int, int, int, int]], sizes: list[tuple[int, int]], shape: tuple[int, ...]
                 ) -> list[tuple[int, int, int, int]]:
    """Where each box's label goes, (x, y, w, h) in pixels: the first free place among above the
    box, inside its top, below it and inside its bottom, kept within the image, else stacked below
    the labels already there. On a crowded table, labels all drawn above their boxes covered each
    other's names (and scores) in the debug image and the report's frames. `sizes`: each label's
    (width, height) with its margin."""
    H, W = shape[:2]
    placed: list[tuple[int, int, int, int]] = []

    def free(r: tuple[int, int, int, int]) -> bool:
        return all(r[0] >= q[0] + q[2] or q[0] >= r[0] + r[2] or r[1] >= q[1] + q[3] or q[1] >= r[1] + r[3]
                   for q in placed)

    for (x, y, w, h), (lw, lh) in zip(boxes, sizes):
        lx = min(max(0, x), max(0, W - lw))
        tries = [y - lh, y, y + h, y + h - lh]
        spots = [(lx, min(max(0, ty), max(0, H - lh)), lw, lh) for ty in tries]
        spot = next((r for r in spots if free(r)), None)
        if spot is None:  # every place taken: below the first spot, one label height at a time
            spot = spots[0]
            for _ in range(len(placed) + 1):
                if free(spot):
                    break
                spot = (spot[0], min(spot[1] + lh, max(0, H - lh)), lw, lh)
        placed.append(spot)
    return placed


def draw_objects(rgb: np.ndarray, items: list[tuple[tuple[int, int, int, int], str, float | None]]) -> np.ndarray:
    """items: (bbox, label, score or None). Returns a new RGB image: every box, then every label
    where `place_labels` puts it, so that no box line crosses a label drawn before it."""
    out = np.ascontiguousarray(rgb.copy())
    texts, sizes = [], []
    for (x, y, w, h), label, score in items:
        cv2.rectangle(out, (x, y), (x + w - 1, y + h - 1), label_color(label), 2)
        texts.append(label if score is None else f"{label} {score:.2f}")
        (tw, th), _ = cv2.getTextSize(texts[-1], FONT, FONT_SCALE, 1)
        sizes.append((tw + 4, th + 4))
    for (lx, ly, lw, lh), text, (_, label, _) in zip(place_labels([i[0] for i in items], sizes, out.shape),
                                                     texts, items):
        cv2.rectangle(out, (lx, ly), (lx + lw - 1, ly + lh - 1), label_color(label), -1)
        cv2.putText(out, text, (lx + 2, ly + lh - 3), FONT, FONT_SCALE, (0, 0, 0), 1, cv2.LINE_AA)
    return out
