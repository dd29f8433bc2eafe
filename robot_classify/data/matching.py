"""Match predicted boxes to ground-truth boxes by IoU (greedy, highest IoU first).

How a labelled frame gives each detection its truth: the renderer's patch sets (`sim`) and the
evaluations (`evaluation`) both use it, so it sits below both (sim never imports evaluation)."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

Box = tuple[int, int, int, int]  # x_offset, y_offset, width, height
MIN_VISIBLE = 0.5  # ground truth counts when at least this share of the object is in view


def scored_truth(objects: Sequence[Any]) -> list[Any]:
    """The ground-truth objects an evaluation scores: those at least MIN_VISIBLE in view (or of
    unknown visibility). A box around the sliver of an object mostly hidden is no fair target for
    a detector, in `replay-eval` and in the score fits alike (`data.answer_evidence`)."""
    return [g for g in objects if g.visible_fraction is None or g.visible_fraction >= MIN_VISIBLE]


def box_iou(a: Box, b: Box) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def match_boxes(pred: list[Box], gt: list[Box], threshold: float = 0.5) -> list[tuple[int, int, float]]:
    """(pred index, gt index, iou) pairs, each box used at most once, iou >= threshold."""
    if not pred or not gt:
        return []
    ious = np.array([[box_iou(p, g) for g in gt] for p in pred])
    pairs = []
    while True:
        i, j = np.unravel_index(np.argmax(ious), ious.shape)
        if ious[i, j] < threshold:
            return pairs
        pairs.append((int(i), int(j), float(ious[i, j])))
        ious[i, :] = -1
        ious[:, j] = -1


def bbox_tuple(d: dict) -> Box:
    return (int(d["x_offset"]), int(d["y_offset"]), int(d["width"]), int(d["height"]))
