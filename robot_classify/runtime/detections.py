"""Per-object results <-> the field layout of vision_msgs 4.1.x (ROS 2 Jazzy), without ROS.

`vision_msgs` is not on PyPI, so the values that go into `Detection2DArray`,
`Detection3DArray` and `LabelInfo` are computed here, from plain values, and tested where
vision_msgs is absent; `ros/vision_output.py` only copies them into the messages. The field
names follow vision_msgs 4.1.1's message definitions:

- `Detection2D`/`Detection3D`: `header`, `results` (`ObjectHypothesisWithPose[]`: `hypothesis.class_id`
  is a *string*, `hypothesis.score` a float64, `pose` a `geometry_msgs/PoseWithCovariance`),
  `bbox`, `id` (string);
- `BoundingBox2D`: `center` (`Pose2D`: `position.x`, `position.y`, `theta`), `size_x`, `size_y` (pixels);
- `BoundingBox3D`: `center` (`geometry_msgs/Pose`), `size` (`geometry_msgs/Vector3`, metres);
- `LabelInfo`: `header`, `class_map` (`VisionClass[]`: `class_id` uint16, `class_name`), `threshold` (float32).

Conventions: the 2D box centre is `x_offset + width / 2` in continuous pixel coordinates
(pixel i covers [i, i + 1)), so a `RegionOfInterest` box converts there and back exactly. The
results are the top-k, best first, also for `unknown` objects: a consumer applies its own
threshold (`LabelInfo.threshold` says the node's). In 3D, the hypotheses' pose position and
the box centre are the centroid, orientation identity (the box is axis-aligned in the camera
optical frame), the size the visible surface's extent (`camera.surface_extent`).

`id` is the object's track id when tracking is on (`tracking.enabled`, runtime/tracking.py:
the same number for the same object across frames), else its index in the frame. The
hypotheses stay the frame's own top-k; the label fused over the track is in /object_labels
(`fused_label`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from .results import FrameLabels, ObjectResult
from .stamps import NS_PER_S

UINT16_MAX = 65535  # VisionClass.class_id is uint16; vision_msgs reserves the largest for "UNLABELED"


@dataclass(frozen=True)
class Hypothesis:
    """One `ObjectHypothesisWithPose`: `hypothesis.class_id`, `hypothesis.score`, `pose.pose.position`."""
    class_id: str
    score: float
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Detection2DFields:
    id: str
    results: tuple[Hypothesis, ...]
    center: tuple[float, float]  # bbox.center.position.x, .y (pixels); theta 0
    size: tuple[float, float]  # bbox.size_x, bbox.size_y (pixels)


@dataclass(frozen=True)
class Detection3DFields:
    id: str
    results: tuple[Hypothesis, ...]
    center: tuple[float, float, float]  # bbox.center.position (metres, optical frame); orientation identity
    size: tuple[float, float, float]  # bbox.size.x, .y, .z (metres)


@dataclass(frozen=True)
class LabelInfoFields:
    class_map: tuple[tuple[int, str], ...]  # (VisionClass.class_id, class_name)
    threshold: float


def _hypotheses(o: ObjectResult, position: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> tuple[Hypothesis, ...]:
    """The top-k, best first. A result without top-k gives its label alone: ground truth, and an
    object no class scores above 0 for (`unknown` at 0, so that results[0] always exists)."""
    ranked = o.top_k or ((o.label, o.score),)
    return tuple(Hypothesis(str(name), float(score), position) for name, score in ranked)


def detection_id(o: ObjectResult, tracking: bool = False) -> str:
    """The track id when the object is tracked, else its index in the frame. With tracking on, an
    object without a track (in a frame that arrived late: `tracking.Tracker`) has no id (""):
    its index could read as another object's track id."""
    if o.track is not None:
        return str(o.track.id)
    return "" if tracking else str(o.instance)


def detection_2d(o: ObjectResult, tracking: bool = False) -> Detection2DFields:
    x, y, w, h = o.bbox
    return Detection2DFields(id=detection_id(o, tracking), results=_hypotheses(o),
                             center=(x + w / 2.0, y + h / 2.0), size=(float(w), float(h)))


def detections_2d(labels: FrameLabels, tracking: bool = False) -> list[Detection2DFields]:
    """Every object of the frame, in the order of /object_labels (`tracking`: ids are track ids)."""
    return [detection_2d(o, tracking) for o in labels.objects]


def detections_3d(labels: FrameLabels, tracking: bool = False) -> tuple[list[Detection3DFields], int]:
    """The objects with a centroid, in the order of /object_labels, and how many were left out
    (no valid depth: nothing to put in a 3D box)."""
    out = []
    for o in labels.objects:
        if o.centroid is None:
            continue
        c = tuple(float(v) for v in o.centroid)
        size = (0.0, 0.0, 0.0) if o.extent is None else tuple(float(v) for v in o.extent)
        out.append(Detection3DFields(id=detection_id(o, tracking), results=_hypotheses(o, c), center=c, size=size))
    return out, len(labels.objects) - len(out)


def label_info(class_names: Sequence[str], min_score: float) -> LabelInfoFields:
    """`class_id` = the class's index in the model (the order of its scores), `class_name` its
    label; the detections themselves carry the label string as `class_id`."""
    if len(class_names) >= UINT16_MAX:
        raise ValueError(f"LabelInfo holds at most {UINT16_MAX - 1} classes (uint16 ids), the model has "
                         f"{len(class_names)}")
    return LabelInfoFields(tuple((i, str(n)) for i, n in enumerate(class_names)), float(min_score))


def frame_labels_from_detection_2d_array(msg: Any, model_name: str = "") -> FrameLabels:
    """A recorded `vision_msgs/Detection2DArray` (rclpy's or rosbags', same fields) -> results:
    the ground truth or another detector's predictions, for replay-eval and bag-to-dataset.

    The label is the best-scoring hypothesis's `class_id` (a label string, as this node writes
    it); a detection without hypotheses is `unknown`. The box comes back from centre and size
    (rounded to whole pixels, clipped at the image's top-left corner); `id` becomes the
    instance when it is a number, else the detection's position. Raises ValueError for a
    message that is not such an array."""
    try:
        stamp = (int(msg.header.stamp.sec), int(msg.header.stamp.nanosec))
        frame_id = str(msg.header.frame_id)
        dets = list(msg.detections)
    except AttributeError as e:
        raise ValueError(f"not a vision_msgs/Detection2DArray ({e})") from None
    if not (0 <= stamp[0] < 2**31 and 0 <= stamp[1] < NS_PER_S):
        raise ValueError(f"header stamp sec={stamp[0]} nanosec={stamp[1]} is not a valid time")
    objects = []
    for position, d in enumerate(dets):
        ranked = sorted(((str(r.hypothesis.class_id), float(r.hypothesis.score)) for r in d.results),
                        key=lambda t: -t[1])
        label, score = ranked[0] if ranked else ("unknown", 0.0)
        cx, cy = float(d.bbox.center.position.x), float(d.bbox.center.position.y)
        w, h = max(1, round(float(d.bbox.size_x))), max(1, round(float(d.bbox.size_y)))
        x, y = max(0, round(cx - w / 2.0)), max(0, round(cy - h / 2.0))
        ident = str(d.id).strip()
        objects.append(ObjectResult(instance=int(ident) if ident.isdigit() else position, label=label,
                                    score=score, top_k=tuple(ranked), bbox=(x, y, w, h), centroid=None))
    return FrameLabels(stamp, frame_id, model_name, "", tuple(objects))
