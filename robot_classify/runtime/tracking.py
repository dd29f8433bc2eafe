"""Tracks: the same id for the same object across frames, and a label fused over its views.

A grasp planner runs at its own pace, across many camera frames: it needs to know that the
object it chose is the one it reaches for, and a label that does not flicker when one view is
poor. `Tracker.update` takes one frame's `FrameLabels` (what `FrameProcessor.process` gives)
and returns them with a `results.TrackLabel` on every object. It runs after the processor,
in stamp order (the node calls it at publish time, under its publish lock; replay-eval in
frame order). ROS-free and cheap: about 0.1 ms per frame at 10 objects (bench/tracking_bench.py).

Association (one step per frame, SORT/ByteTrack-style): every live track predicts its
centroid in the camera frame (last centroid + velocity x time since it was seen: the camera
moves, the objects mostly do not, so in the camera frame they all drift together, smoothly);
costs between tracks and detections are the 3D distance of the centroids plus half the mean
change of the visible extents, divided by the gate (metres); pairs farther than the gate
cannot match. Where either side has no centroid (no valid depth), the image boxes stand in:
cost (1 - IoU) / (1 - min_iou), IoU below `min_iou` cannot match. Both costs are on the same
0..1 scale, so one optimal assignment (SciPy's `linear_sum_assignment`) serves all pairs.

Track states: tentative (born from an unmatched detection) -> confirmed after `confirm_hits`
hits; a tentative track that misses more than `tentative_misses` frames in a row is dropped
(most are segmentation noise); a confirmed track that misses is lost (kept, predicted,
matchable) and removed after `max_misses` frames in a row without a detection. Ids are never reused; a stamp that goes
back by more than `RESET_BACK_S` (a looped bag, a reset sim clock) ends every track. A frame
less late than that (one a reliable transport repaired after a newer one was published) is
labelled with the tracks as they stand and changes none of them: before 0.7.1 one such frame
ended every track, and the planner's ids with them.

Label fusion (`Evidence`): per track, per hypothesis h (each class seen in a top-k, and
`unknown`), a decayed sum of per-frame log-likelihoods with a floor:

    L_h <- decay * L_h + log(max(q_h, floor))

q is the frame's calibrated distribution: the top-k scores for classes (classes outside the
frame's top-k get the floor). A frame the node called `unknown` (score below min_score, or
unlike every class: the open-set check) is evidence *for* `unknown`, not a frame thrown away:
q_unknown = max(1 - s1, 0.5), s1 the best class score of the frame's top-k (how much the
appearance supports any class: all but nothing when the negative examples won), and the class
scores are scaled to the rest; a named frame gives `unknown` the floor. A class the size or
pose check ruled out for that view (`ObjectResult.ruled_out`) counts as scoring 0 there, however
its crop scored: the geometry says the segment cannot be that product, and a distractor the
check stops in most views must not win its track from the few views it lets through. Why
this form: the product of per-view likelihoods is the Bayes update for independent views.
Views of one object are not independent (the next frame shows nearly the same crop), so the decay tempers it: old evidence fades (memory about
1 / (1 - decay) frames), the posterior cannot saturate, and a real change (an object swapped
in the same place) wins within a few dozen frames. The floor bounds what one bad view (glare,
a hand in front, a wrong segment) can do: at most log(1 / floor) nats against the rest.
The fused label is the hypothesis with the largest L, but it changes only when the
challenger leads the current label by `switch_margin` nats (hysteresis), so two near-tied
classes do not make it flicker: the label changes when the evidence does. The fused score is
softmax(L) of the fused label over the hypotheses seen.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from .results import FrameLabels, ObjectResult, TrackLabel

UNKNOWN = "unknown"
TENTATIVE, CONFIRMED, LOST = "tentative", "confirmed", "lost"
_FAR = 1e6  # cost of a pair outside the gate: never chosen when a gated pair exists, rejected after
MAX_PREDICT_S = 0.5  # velocity extrapolation horizon: a long-lost track stays where it was last seen


@dataclass(frozen=True)
class TrackerParams:
    """`tracking.*` in runtime/parameters.py (same defaults, same ranges)."""
    gate: float = 0.10  # metres between predicted and detected centroid
    min_iou: float = 0.3  # image-box fallback where depth is missing
    confirm_hits: int = 3
    max_misses: int = 15
    # A tentative track may miss this many frames in a row (1, 0.7.1): an object whose segment
    # merges with a neighbour's in every other frame never got past tentative, and took a new id
    # each time the two came apart (11 id switches in one rendered sequence; 0 with 1).
    tentative_misses: int = 1
    extent_weight: float = 0.5  # metres of cost per metre of mean extent change
    velocity_smoothing: float = 0.5  # weight of the newest velocity measurement
    decay: float = 0.95
    floor: float = 0.02
    switch_margin: float = 1.0  # nats

    def __post_init__(self) -> None:
        checks = [(self.gate > 0, f"gate must be > 0 m, got {self.gate}"),
                  (0 < self.min_iou < 1, f"min_iou must be in (0, 1), got {self.min_iou}"),
                  (self.confirm_hits >= 1, f"confirm_hits must be >= 1, got {self.confirm_hits}"),
                  (self.max_misses >= 0, f"max_misses must be >= 0, got {self.max_misses}"),
                  (self.tentative_misses >= 0, f"tentative_misses must be >= 0, got {self.tentative_misses}"),
                  (self.extent_weight >= 0, f"extent_weight must be >= 0, got {self.extent_weight}"),
                  (0 <= self.velocity_smoothing <= 1,
                   f"velocity_smoothing must be in [0, 1], got {self.velocity_smoothing}"),
                  (0 < self.decay <= 1, f"decay must be in (0, 1], got {self.decay}"),
                  (0 < self.floor < 0.5, f"floor must be in (0, 0.5), got {self.floor}"),
                  (self.switch_margin >= 0, f"switch_margin must be >= 0, got {self.switch_margin}")]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @classmethod
    def from_parameters(cls, values: dict[str, Any]) -> "TrackerParams":
        """From checked node parameters (`tracking.<name>`)."""
        return cls(**{k.split(".", 1)[1]: v for k, v in values.items()
                      if k.startswith("tracking.") and k != "tracking.enabled"})


class Evidence:
    """One track's fused class evidence (see the module docstring for the rule and why)."""

    __slots__ = ("log", "label", "frames")

    def __init__(self) -> None:
        self.log: dict[str, float] = {}
        self.label: str | None = None
        self.frames = 0

    @staticmethod
    def frame_distribution(o: ObjectResult) -> dict[str, float]:
        """q for one frame: the top-k scores, `unknown` as evidence of its own. A class the size
        or pose check ruled out for this view (`ObjectResult.ruled_out`) gets the floor."""
        ruled = o.ruled_out
        ranked = [(n, 0.0 if n in ruled else max(0.0, float(s))) for n, s in o.top_k] \
            or [(o.label, float(o.score))]
        if o.label != UNKNOWN:
            return dict(ranked)
        best = max((s for n, s in ranked if n != UNKNOWN), default=0.0)
        q_unknown = max(1.0 - best, 0.5)
        total = sum(s for n, s in ranked if n != UNKNOWN) or 1.0
        q = {n: s * (1.0 - q_unknown) / max(total, 1.0) for n, s in ranked if n != UNKNOWN}
        q[UNKNOWN] = q_unknown
        return q

    def add(self, o: ObjectResult, p: TrackerParams) -> None:
        q = self.frame_distribution(o)
        # A hypothesis first seen now had the floor in every earlier frame (decayed like the rest).
        n, d = self.frames, p.decay
        unseen = math.log(p.floor) * (n if d == 1 else (1 - d**n) / (1 - d))
        # Dict order, not a set's: string hashes differ per process, and the sums in `fused` must
        # come out bit for bit the same in the node and in replay-eval.
        for name in [*self.log, *(n for n in q if n not in self.log)]:
            self.log[name] = d * self.log.get(name, unseen) + math.log(max(q.get(name, 0.0), p.floor))
        self.frames += 1
        best = max(self.log, key=self.log.__getitem__)
        if self.label is None or self.label not in self.log \
                or self.log[best] - self.log[self.label] > p.switch_margin:
            self.label = best

    def forget(self, name: str) -> None:
        """A class the model no longer has: its evidence goes, and the label falls to the best of
        the rest (a forgotten class had stayed the fused label for ten frames)."""
        self.log.pop(name, None)
        if not self.log:  # its only hypothesis: nothing is known of it now
            self.log[UNKNOWN] = 0.0
        if self.label == name:
            self.label = max(self.log, key=self.log.__getitem__)

    def fused(self) -> tuple[str, float]:
        """(label, its softmax share among the hypotheses seen)."""
        m = max(self.log.values())
        total = sum(math.exp(v - m) for v in self.log.values())
        return self.label, math.exp(self.log[self.label] - m) / total


class Track:
    __slots__ = ("id", "state", "hits", "misses", "age", "centroid", "velocity", "extent", "bbox", "seen_ns",
                 "evidence")

    def __init__(self, track_id: int, o: ObjectResult, stamp_ns: int, p: TrackerParams) -> None:
        self.id, self.state, self.hits, self.misses, self.age = track_id, TENTATIVE, 1, 0, 1
        self.centroid = None if o.centroid is None else np.asarray(o.centroid, float)
        self.velocity = np.zeros(3)
        self.extent = None if o.extent is None else np.asarray(o.extent, float)
        self.bbox, self.seen_ns = o.bbox, stamp_ns
        self.evidence = Evidence()
        self.evidence.add(o, p)
        if p.confirm_hits <= 1:
            self.state = CONFIRMED

    def predicted(self, stamp_ns: int) -> np.ndarray | None:
        if self.centroid is None:
            return None
        dt = min(max(stamp_ns - self.seen_ns, 0) / 1e9, MAX_PREDICT_S)
        return self.centroid + self.velocity * dt

    def hit(self, o: ObjectResult, stamp_ns: int, p: TrackerParams) -> None:
        if o.centroid is not None:
            c = np.asarray(o.centroid, float)
            dt = (stamp_ns - self.seen_ns) / 1e9
            if self.centroid is not None and 0 < dt <= MAX_PREDICT_S:
                a = p.velocity_smoothing
                self.velocity = (1 - a) * self.velocity + a * (c - self.centroid) / dt
            elif self.centroid is None or dt > MAX_PREDICT_S:
                self.velocity = np.zeros(3)
            self.centroid = c
        if o.extent is not None:
            self.extent = np.asarray(o.extent, float)
        self.bbox, self.seen_ns = o.bbox, stamp_ns
        self.hits += 1
        self.age += 1
        self.misses = 0
        if self.state == LOST or (self.state == TENTATIVE and self.hits >= p.confirm_hits):
            self.state = CONFIRMED
        self.evidence.add(o, p)

    def label(self) -> TrackLabel:
        fused, score = self.evidence.fused()
        return TrackLabel(self.id, fused, score, self.age, self.hits, self.state == CONFIRMED)


def _iou(a: Sequence[int], b: Sequence[int]) -> float:
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def association_costs(tracks: Sequence[Track], objects: Sequence[ObjectResult], stamp_ns: int,
                      p: TrackerParams) -> np.ndarray:
    """(tracks x objects) costs on a 0..1 scale inside the gate, `_FAR` outside it."""
    cost = np.full((len(tracks), len(objects)), _FAR)
    if not len(tracks) or not len(objects):
        return cost
    nan3 = (np.nan,) * 3
    det_c = np.array([nan3 if o.centroid is None else o.centroid for o in objects], float)
    det_e = np.array([nan3 if o.extent is None else o.extent for o in objects], float)
    pred = np.array([nan3 if (c := t.predicted(stamp_ns)) is None else c for t in tracks], float)
    ext = np.array([nan3 if t.extent is None else t.extent for t in tracks], float)
    d = np.sqrt(((det_c[None] - pred[:, None]) ** 2).sum(axis=2))  # NaN where either has no centroid
    e = np.abs(det_e[None] - ext[:, None]).mean(axis=2)
    d = d + p.extent_weight * np.where(np.isnan(e), 0.0, e)
    inside = d <= p.gate  # NaN is never inside
    cost[inside] = d[inside] / p.gate
    for i, j in zip(*np.nonzero(np.isnan(d))):  # no depth on one side: the image boxes decide
        iou = _iou(tracks[i].bbox, objects[j].bbox)
        if iou >= p.min_iou:
            cost[i, j] = (1.0 - iou) / (1.0 - p.min_iou)
    return cost


RESET_BACK_S = 1.0  # a stamp further back than this is a new time line; nearer, a late frame
# A stamp this far after the last frame ends every track too: a camera silent for seconds (a
# dropout, a stopped replay) says nothing of where things are now, and max_misses counts frames,
# not time (tracks and their fused labels had carried over minutes of silence, found from outside).
RESET_GAP_S = 5.0


class Tracker:
    """Tracks across frames; `update` once per frame, in stamp order. Thread-safe (one lock),
    so parameters may change from the ROS parameter thread while a worker publishes."""

    def __init__(self, params: TrackerParams | None = None, first_id: int = 1) -> None:
        """`first_id`: where ids start; a node configured again goes on from its last tracker's
        `next_id`, so that an id never names two objects while the process runs."""
        self.params = params or TrackerParams()
        self.tracks: list[Track] = []
        self._next_id = first_id
        self._last_ns: int | None = None
        # How many times time went back or stood still for seconds and every track ended: what
        # replay-eval's track counts split a bag into (an id is an identity within one such stretch).
        self._resets = 0
        self._lock = threading.Lock()

    def set_params(self, **changes: Any) -> None:
        """Run-time changes, validated (ValueError names the problem); live tracks keep their state."""
        with self._lock:
            self.params = replace(self.params, **changes)

    @property
    def next_id(self) -> int:
        return self._next_id

    @property
    def resets(self) -> int:
        """Times a stamp's jump (back, or forward after a silence) ended every track."""
        return self._resets

    def reset(self) -> None:
        """Every track ended (ids keep counting: an id never names two objects)."""
        with self._lock:
            self.tracks, self._last_ns = [], None

    def forget(self, name: str) -> None:
        """`~/forget`: no track keeps `name` as its fused label or as evidence."""
        with self._lock:
            for t in self.tracks:
                t.evidence.forget(name)

    def update(self, labels: FrameLabels) -> FrameLabels:
        """The frame's objects, each with its track (`ObjectResult.track`), in the same order."""
        with self._lock:
            return self._update(labels)

    def _assign(self, objects: Sequence[ObjectResult], stamp_ns: int) -> dict[int, "Track"]:
        """Object index -> its track: one optimal assignment within the gates."""
        cost = association_costs(self.tracks, objects, stamp_ns, self.params)
        assigned: dict[int, Track] = {}
        if cost.size:
            rows, cols = linear_sum_assignment(cost)
            for i, j in zip(rows, cols):
                if cost[i, j] < _FAR:
                    assigned[int(j)] = self.tracks[i]
        return assigned

    def _update(self, labels: FrameLabels) -> FrameLabels:
        p, now = self.params, labels.stamp_ns
        if self._last_ns is not None and now < self._last_ns:
            if self._last_ns - now <= RESET_BACK_S * 1e9:  # a late frame: read the tracks, change none
                assigned = self._assign(labels.objects, now)
                return replace(labels, objects=tuple(replace(o, track=assigned[j].label()) if j in assigned else o
                                                     for j, o in enumerate(labels.objects)))
            self.tracks = []  # time went back: nothing seen before is where it was
            self._resets += 1
        elif self._last_ns is not None and now - self._last_ns > RESET_GAP_S * 1e9:
            self.tracks = []  # seconds without a frame: nothing seen before is known to be where it was
            self._resets += 1
        self._last_ns = now
        objects = labels.objects
        assigned = self._assign(objects, now)
        matched = {id(t) for t in assigned.values()}
        for j, t in assigned.items():
            t.hit(objects[j], now, p)
        kept = []
        for t in self.tracks:
            if id(t) not in matched:
                t.misses += 1
                t.age += 1
                if t.misses > (p.tentative_misses if t.state == TENTATIVE else p.max_misses):
                    continue  # removed
                if t.state != TENTATIVE:  # a tentative one stays tentative: confirmed only by confirm_hits
                    t.state = LOST
            kept.append(t)
        self.tracks = kept
        out = []
        for j, o in enumerate(objects):
            t = assigned.get(j)
            if t is None:
                t = Track(self._next_id, o, now, p)
                self._next_id += 1
                self.tracks.append(t)
            out.append(replace(o, track=t.label()))
        return replace(labels, objects=tuple(out))
