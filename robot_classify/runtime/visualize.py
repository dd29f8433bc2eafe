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


Rect = tuple[int, int, int, int]  # x, y, w, h


def _hit(r: Rect, placed: list[Rect]) -> Rect | None:
    """The first label already placed that `r` overlaps, if any."""
    return next((p for p in placed if r[0] < p[0] + p[2] and p[0] < r[0] + r[2] and r[1] < p[1] + p[3]
                 and p[1] < r[1] + r[3]), None)


def settle_label(x: int, top: int, w: int, h: int, placed: list[Rect], shape: tuple[int, ...]) -> Rect:
    """A label of w x h wanted at (x, top), kept within the image and moved down past the labels
    already `placed` (at most 12 moves: a full column keeps the last place); appended to `placed`."""
    H, W = shape[:2]
    x = int(min(max(0, x), max(0, W - w)))
    top = int(min(max(0, top), max(0, H - h)))
    for _ in range(12):
        hit = _hit((x, top, w, h), placed)
        if hit is None:
            break
        top = min(hit[1] + hit[3] + 1, max(0, H - h))
    placed.append((x, top, w, h))
    return placed[-1]


def place_labels(boxes: list[Rect], sizes: list[tuple[int, int]], shape: tuple[int, ...],
                 placed: list[Rect] | None = None, below: bool = False) -> list[Rect]:
    """Where each box's label goes, (x, y, w, h) in pixels: the first free place among above the
    box, inside its top, below it and inside its bottom (`below`: below, inside its bottom, inside
    its top, above), kept within the image, else the free place nearest the first of those, above
    or below it (a full column: moved down past the labels already there, `settle_label`). On a
    crowded table, labels all drawn above their boxes covered each other's names (and scores) in
    the debug image. `sizes`: each label's (width,
    height) with its margin; `placed`: labels already drawn, kept clear of (the new ones are
    appended to it)."""
    H, W = shape[:2]
    placed = [] if placed is None else placed
    start = len(placed)
    for (x, y, w, h), (lw, lh) in zip(boxes, sizes):
        lx = min(max(0, x), max(0, W - lw))
        tops = (y + h, y + h - lh, y, y - lh) if below else (y - lh, y, y + h, y + h - lh)
        spots = [(lx, min(max(0, ty), max(0, H - lh)), lw, lh) for ty in tops]
        spot = next((r for r in spots if _hit(r, placed) is None), None)
        if spot is None:  # the free place nearest the first choice, up or down: just clear of a placed label
            x0, y0 = spots[0][:2]
            tops = sorted({t for q in placed for t in (q[1] - lh, q[1] + q[3])}, key=lambda t: abs(t - y0))
            spot = next(((x0, ty, lw, lh) for ty in tops if 0 <= ty <= H - lh
                         and _hit((x0, ty, lw, lh), placed) is None), None)
        if spot is None:
            settle_label(*spots[0], placed, shape)
        else:
            placed.append(spot)
    return placed[start:]


def draw_labels(out: np.ndarray, boxes: list[Rect], texts: list[str], colours: list[tuple[int, int, int]],
                scale: float = FONT_SCALE) -> None:
    """Each box's text on a filled label of its colour, in place, where `place_labels` puts it."""
    sizes = []
    for text in texts:
        (tw, th), _ = cv2.getTextSize(text, FONT, scale, 1)
        sizes.append((tw + 4, th + 4))
    for (lx, ly, lw, lh), text, colour in zip(place_labels(boxes, sizes, out.shape), texts, colours):
        cv2.rectangle(out, (lx, ly), (lx + lw - 1, ly + lh - 1), colour, -1)
        cv2.putText(out, text, (lx + 2, ly + lh - 3), FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)


def draw_objects(rgb: np.ndarray, items: list[tuple[tuple[int, int, int, int], str, float | None]]) -> np.ndarray:
    """items: (bbox, label, score or None). Returns a new RGB image: every box, then every label
    where `place_labels` puts it, so that no box line crosses a label drawn before it."""
    out = np.ascontiguousarray(rgb.copy())
    for (x, y, w, h), label, _ in items:
        cv2.rectangle(out, (x, y), (x + w - 1, y + h - 1), label_color(label), 2)
    draw_labels(out, [i[0] for i in items], [label if score is None else f"{label} {score:.2f}"
                                              for _, label, score in items], [label_color(i[1]) for i in items])
    return out
