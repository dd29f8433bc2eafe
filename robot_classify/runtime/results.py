"""Typed per-frame results: what `FrameProcessor` hands to the node and to evaluation.

Inside the package results travel as these frozen dataclasses. The JSON document
(`robot_classify/ObjectLabels/1`, config/object_labels.schema.json) is built only where it
leaves: the node publishing /object_labels, bags and reports written to disk.
`FrameLabels.from_doc` reads one back (ground truth in bags and sidecar files).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .stamps import stamp_to_ns

SCHEMA = "robot_classify/ObjectLabels/1"
BBOX_KEYS = ("x_offset", "y_offset", "width", "height")  # sensor_msgs/RegionOfInterest's names


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
                   extent=None if extent is None else tuple(float(extent[k]) for k in "xyz"))


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
        if doc.get("schema", SCHEMA) != SCHEMA:
            raise ValueError(f"schema {doc['schema']!r} is not {SCHEMA}")
        header, model = doc["header"], doc.get("model", {})
        stamp = (int(header["stamp"]["sec"]), int(header["stamp"]["nanosec"]))
        objects = tuple(ObjectResult.from_doc(o, i) for i, o in enumerate(doc["objects"]))
        return cls(stamp, str(header.get("frame_id", "")), str(model.get("name", "")), str(model.get("sha256", "")),
                   objects, doc.get("warning"))
