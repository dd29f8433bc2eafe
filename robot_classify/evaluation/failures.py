"""The failure gallery: the worst failures of a replay, as readable crops linked to their frames.

`FailureGallery` sees every record as the replay goes and keeps only the `cap` worst
(`replay_metrics.severity`), holding the colour frames those need and no others, so memory
stays bounded on a long bag. `write` draws each kept failure as an enlarged crop and each of
their frames as a full annotated image (ground-truth boxes labelled), both PNG.
"""
from __future__ import annotations

import heapq
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from ..runtime.results import ObjectResult
from ..runtime.visualize import label_color, place_labels
from .replay_metrics import severity

FONT = cv2.FONT_HERSHEY_SIMPLEX
WHITE, BLACK, RED = (255, 255, 255), (0, 0, 0), (230, 30, 30)


class FailureGallery:
    def __init__(self, cap: int = 40) -> None:
        if cap < 0:
            raise ValueError(f"gallery cap must be >= 0, got {cap}")
        self.cap = cap
        self._heap: list[tuple[tuple[int, float], int, dict]] = []  # min-heap: the least bad kept one on top
        self._frames: dict[int, tuple[np.ndarray, Sequence[ObjectResult], Sequence[ObjectResult]]] = {}
        self._uses: dict[int, int] = {}
        self._seq = 0

    def offer(self, records: list[dict[str, Any]], color: np.ndarray, preds: Sequence[ObjectResult],
              gts: Sequence[ObjectResult]) -> None:
        """One frame's records; failures among them are kept while they are among the worst."""
        for rec in records:
            s = severity(rec)
            if s[0] == 0 or self.cap == 0:
                continue
            self._seq += 1
            item = (s, -self._seq, rec)  # equal severity: the earlier frame stays
            if len(self._heap) < self.cap:
                heapq.heappush(self._heap, item)
            elif item > self._heap[0]:
                self._release(heapq.heapreplace(self._heap, item)[2]["frame"])
            else:
                continue
            f = rec["frame"]
            if f not in self._frames:
                self._frames[f] = (color, tuple(preds), tuple(gts))
            self._uses[f] = self._uses.get(f, 0) + 1

    def _release(self, frame: int) -> None:
        self._uses[frame] -= 1
        if not self._uses[frame]:
            del self._uses[frame], self._frames[frame]

    def worst_first(self) -> list[dict[str, Any]]:
        return [rec for _, _, rec in sorted(self._heap, reverse=True)]

    def write(self, folder: Path, t0_ns: int) -> list[dict[str, Any]]:
        """failures/NNN.png crops and frames/frame_F.png; returns the kept records, worst
        first, each with `crop`, `frame_image` and `time_s` (seconds into the bag)."""
        kept = self.worst_first()
        if not kept:
            return []
        (folder / "failures").mkdir(exist_ok=True)
        (folder / "frames").mkdir(exist_ok=True)
        for f, (color, preds, gts) in self._frames.items():
            _write_rgb(folder / "frames" / f"frame_{f:05d}.png", annotate_frame(color, preds, gts))
        out = []
        for n, rec in enumerate(kept):
            color = self._frames[rec["frame"]][0]
            crop = f"failures/{n:03d}.png"
            _write_rgb(folder / crop, failure_crop(color, rec))
            out.append({**rec, "crop": crop, "frame_image": f"frames/frame_{rec['frame']:05d}.png",
                        "time_s": (rec["stamp_ns"] - t0_ns) / 1e9})
        return out


def _write_rgb(path: Path, rgb: np.ndarray) -> None:
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"{path}: could not write the image")


def failure_crop(color: np.ndarray, rec: dict[str, Any], size: int = 180) -> np.ndarray:
    """The region around the truth and/or detection box, with context, enlarged so that its
    longer side is `size` px: truth box white, detection box red. Text goes in the page."""
    drawn = [(b, c) for b, c in ((rec.get("truth_bbox"), WHITE), (rec.get("bbox"), RED)) if b is not None]
    return box_crop(color, [b for b, _ in drawn], [c for _, c in drawn], size)


def box_crop(color: np.ndarray, boxes: list[Sequence[int]], colours: list[tuple[int, int, int]],
             size: int = 180, thickness: list[int] | None = None) -> np.ndarray:
    """The boxes' region with context, longer side `size` px, each box drawn in its colour
    (and thickness: a thick box under a thin one keeps both visible where they coincide)."""
    h, w = color.shape[:2]
    x0 = min(b[0] for b in boxes)
    y0 = min(b[1] for b in boxes)
    x1 = max(b[0] + b[2] for b in boxes)
    y1 = max(b[1] + b[3] for b in boxes)
    pad = max(12, int(0.35 * max(x1 - x0, y1 - y0)))
    cx0, cy0, cx1, cy1 = max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad)
    crop = np.ascontiguousarray(color[cy0:cy1, cx0:cx1])
    f = size / max(crop.shape[:2])
    crop = cv2.resize(crop, (max(1, round(crop.shape[1] * f)), max(1, round(crop.shape[0] * f))),
                      interpolation=cv2.INTER_LINEAR if f < 1 else cv2.INTER_NEAREST)
    for b, col, t in zip(boxes, colours, thickness or [2] * len(boxes)):
        bx, by = round((b[0] - cx0) * f), round((b[1] - cy0) * f)
        cv2.rectangle(crop, (bx, by), (bx + round(b[2] * f) - 1, by + round(b[3] * f) - 1), col, t)
    return crop


def annotate_frame(color: np.ndarray, preds: Sequence[ObjectResult], gts: Sequence[ObjectResult],
                   scale: float = 0.55) -> np.ndarray:
    """The whole frame: predictions in their label colour with `label score` by the box (above it
    where there is room), ground truth in white with `GT label` by its box (below it where there is
    room). Each label takes the first free place at its own box (`place_labels`), so crowded
    frames stay readable and every label stays beside the box it names."""
    out = np.ascontiguousarray(color.copy())
    for g in gts:
        x, y, w, h = g.bbox
        cv2.rectangle(out, (x, y), (x + w - 1, y + h - 1), WHITE, 1)
    for o in preds:
        x, y, w, h = o.bbox
        cv2.rectangle(out, (x, y), (x + w - 1, y + h - 1), label_color(o.label), 2)
    placed: list[tuple[int, int, int, int]] = []
    for items, below, bg in ((preds, False, None), (gts, True, WHITE)):
        texts = [f"GT {o.label}" if below else f"{o.label} {o.score:.2f}" for o in items]
        sizes = [_label_size(t, scale) for t in texts]
        for rect, text, o in zip(place_labels([o.bbox for o in items], sizes, out.shape, placed, below), texts, items):
            _label(out, text, rect, bg or label_color(o.label), BLACK, scale)
    return out


def _label_size(text: str, scale: float) -> tuple[int, int]:
    (tw, th), base = cv2.getTextSize(text, FONT, scale, 1)
    return tw + 6, th + base + 4


def _label(img: np.ndarray, text: str, rect: tuple[int, int, int, int], bg: tuple, fg: tuple, scale: float) -> None:
    """A filled label in `rect` (x, top, `_label_size`)."""
    x, top, bw, bh = rect
    th = cv2.getTextSize(text, FONT, scale, 1)[0][1]
    cv2.rectangle(img, (x, top), (x + bw - 1, top + bh - 1), bg, -1)
    cv2.putText(img, text, (x + 3, top + th + 2), FONT, scale, fg, 1, cv2.LINE_AA)
