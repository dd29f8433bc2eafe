"""Typed per-frame results: what `FrameProcessor` hands to the node and to evaluation.

Inside the package results travel as these frozen dataclasses. The JSON document
(`robot_classify/ObjectLabels/2`, config/object_labels.schema.json) is built only where it
leaves: the node publishing /object_labels, bags and reports written to disk.
`FrameLabels.from_doc` reads one back (ground truth in bags and sidecar files), version 1 too.

Version 2 added the track keys (`track_id`, `fused_label`, `fused_score`, `track_age`,
`track_hits`, `track_confirmed`; present when tracking is on, runtime/tracking.py); every key
of version 1 keeps its meaning: `label`/`score`/`top_k` stay the single frame's answer.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .stamps import stamp_to_ns

SCHEMA = "robot_classify/ObjectLabels/2"
READABLE_SCHEMAS = ("robot_classify/ObjectLabels/1", SCHEMA)  # version 2 only added keys
BBOX_KEYS = ("x_offset", "y_offset", "width", "height")  # sensor_msgs/RegionOfInterest's names
# A class name: what a consumer matches on and a file name can hold (a teach request, a class map)
CLASS_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
CLASS_NAME_RULE = "1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit"
# Words that mean something else where class names are read: replay-eval's rows for a missed
# object and a detection of nothing (evaluation.replay_eval.MISSED, BACKGROUND), and a class map's
# "leave it out" (data.frames.IGNORE). A class of that name mixed with them (found from outside).
RESERVED_LABELS = ("background", "missed", "ignore")


@dataclass(frozen=True)
class TrackLabel:
    """An object's track (runtime/tracking.py): what persists across frames."""
    id: int  # never reused while the node runs
    label: str  # fused over the track's frames: a class name or "unknown"
    score: float  # the fused label's share of the fused evidence (0..1)
    age: int  # frames since the track was born (seen or not)
    hits: int  # frames the track was seen in (the evidence behind `label`)
    confirmed: bool  # seen in `tracking.confirm_hits` frames; tentative tracks are often noise

    def to_doc(self) -> dict[str, Any]:
        return {"track_id": self.id, "fused_label": self.label, "fused_score": self.score, "track_age": self.age,
                "track_hits": self.hits, "track_confirmed": self.confirmed}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> "TrackLabel | None":
        if doc.get("track_id") is None:
            return None
        return cls(int(doc["track_id"]), str(doc.get("fused_label", doc["label"])),
                   float(doc.get("fused_score", doc.get("score", 1.0))), int(doc.get("track_age", 1)),
                   int(doc.get("track_hits", 1)), bool(doc.get("track_confirmed", True)))


# Why an object is `unknown`, in the order the node checks: its best class's product cannot be
# this segment (size or resting pose, runtime.object_sizes); the model's negative examples
# (`unknown`, `distractor`) are nearest; it is farther from the training data than validation
# allows (open set); its best class scores below min_score.
UNKNOWN_REASONS = ("size_or_pose", "unknown_examples", "unfamiliar", "below_min_score")


@dataclass(frozen=True)
class ObjectResult:
    instance: int
    label: str  # a class name, or "unknown" below min_score
    score: float  # the best class's probability / vote share
    top_k: tuple[tuple[str, float], ...]  # (class name, score), best first
    bbox: tuple[int, int, int, int]  # x_offset, y_offset, width, height (pixels)
    centroid: tuple[float, float, float] | None  # metres, camera frame; None without valid depth
    pixels: int | None = None  # mask area; ground-truth documents do not carry it
    visible_fraction: float | None = None  # ground truth only: the share of the object in view
    # Size of the visible surface along the camera axes, metres (camera.surface_extent: 2nd-98th
    # percentile); None without valid depth. An optional key of ObjectLabels/1: added, not changed.
    extent: tuple[float, float, float] | None = None
    track: TrackLabel | None = None  # set by runtime.tracking.Tracker; None without tracking
    # Classes of `top_k` whose product this segment cannot be (runtime.object_sizes: size and
    # resting pose); every class where none can (then nothing was classified). Not published:
    # the tracker reads it, so that a view the geometry rules out counts against the class
    # however the crop scored (`tracking.Evidence`).
    ruled_out: tuple[str, ...] = ()
    # Why `label` is unknown (`UNKNOWN_REASONS`); None for a named object. Published, optional: a
    # team teaching its objects must know whether a score, the geometry or the negative examples
    # kept a name off (found from outside: a taught mustard stayed unknown with no way to tell why).
    unknown_reason: str | None = None
    # The `instance` of this frame's object it stands or lies on (runtime.stacks: a can on a box);
    # None on the support. Published, optional: a grasp planner takes the upper one first.
    rests_on: int | None = None

    def to_doc(self) -> dict[str, Any]:
        doc = {"instance": self.instance, "label": self.label, "score": self.score,
               "top_k": [{"label": name, "score": score} for name, score in self.top_k],
               "bbox": dict(zip(BBOX_KEYS, self.bbox)),
               "centroid": None if self.centroid is None else dict(zip("xyz", self.centroid))}
        if self.extent is not None:
            doc["extent"] = dict(zip("xyz", self.extent))
        if self.pixels is not None:
            doc["pixels"] = self.pixels
        if self.visible_fraction is not None:
            doc["visible_fraction"] = self.visible_fraction
        if self.unknown_reason is not None:
            doc["unknown_reason"] = self.unknown_reason
        if self.rests_on is not None:
            doc["rests_on"] = self.rests_on
        if self.track is not None:
            doc.update(self.track.to_doc())
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any], position: int) -> "ObjectResult":
        """Ground truth needs only `label` and `bbox`: `instance` defaults to the object's
        position in the list, `score` to 1, `top_k` to none, `centroid` to None."""
        label = doc["label"]
        if not isinstance(label, str):
            raise TypeError(f"object label must be a string, got {label!r}")
        c, pixels, visible = doc.get("centroid"), doc.get("pixels"), doc.get("visible_fraction")
        extent = doc.get("extent")
        return cls(instance=int(doc.get("instance", position)), label=label, score=float(doc.get("score", 1.0)),
                   top_k=tuple((str(t["label"]), float(t["score"])) for t in doc.get("top_k", ())),
                   bbox=tuple(int(doc["bbox"][k]) for k in BBOX_KEYS),
                   centroid=None if c is None else tuple(float(c[k]) for k in "xyz"),
                   pixels=None if pixels is None else int(pixels),
                   visible_fraction=None if visible is None else float(visible),
                   extent=None if extent is None else tuple(float(extent[k]) for k in "xyz"),
                   track=TrackLabel.from_doc(doc),
                   unknown_reason=None if doc.get("unknown_reason") is None else str(doc["unknown_reason"]),
                   rests_on=None if doc.get("rests_on") is None else int(doc["rests_on"]))


@dataclass(frozen=True)
class FrameLabels:
    stamp: tuple[int, int]  # (sec, nanosec) of the colour image
    frame_id: str
    model_name: str
    model_sha256: str
    objects: tuple[ObjectResult, ...]
    warning: str | None = None  # e.g. no support plane found: depth-range segmentation

    @property
    def stamp_ns(self) -> int:
        return stamp_to_ns(*self.stamp)

    def to_doc(self) -> dict[str, Any]:
        """The /object_labels document (key order included: published text stays the same)."""
        doc = {"schema": SCHEMA,
               "header": {"stamp": {"sec": self.stamp[0], "nanosec": self.stamp[1]}, "frame_id": self.frame_id},
               "model": {"name": self.model_name, "sha256": self.model_sha256},
               "objects": [o.to_doc() for o in self.objects]}
        if self.warning:
            doc["warning"] = self.warning
        return doc

    @classmethod
    def from_doc(cls, doc: Any) -> "FrameLabels":
        """A document back into results. Ground truth may leave out everything but
        header.stamp and the objects' label and bbox. Raises KeyError, TypeError or ValueError
        for something that is not such a document."""
        if not isinstance(doc, dict):
            raise TypeError(f"expected a JSON object, got {type(doc).__name__}")
        if doc.get("schema", SCHEMA) not in READABLE_SCHEMAS:
            raise ValueError(f"schema {doc['schema']!r} is not one of {', '.join(READABLE_SCHEMAS)}")
        header, model = doc["header"], doc.get("model", {})
        stamp = (int(header["stamp"]["sec"]), int(header["stamp"]["nanosec"]))
        objects = tuple(ObjectResult.from_doc(o, i) for i, o in enumerate(doc["objects"]))
        return cls(stamp, str(header.get("frame_id", "")), str(model.get("name", "")), str(model.get("sha256", "")),
                   objects, doc.get("warning"))
