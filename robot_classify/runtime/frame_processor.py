"""One RGB-D frame -> typed per-object results (`results.FrameLabels`): the node's processing, without ROS.

The node and `replay-eval` both call `FrameProcessor.process`, so offline evaluation runs
exactly what runs on the robot (same conversion, patches, classifier, thresholds).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .camera import Intrinsics
from ..learn.model import ClassifierModel, Prediction, is_negative
from .object_sizes import size_mask
from .patches import Extraction, SegmentationParams, extract_objects
from .results import FrameLabels, ObjectResult
from .rwlock import ReadWriteLock
from .stamps import NS_PER_S

UNKNOWN = "unknown"


def decide_label(top_class: str, score: float, min_score: float, known: bool) -> str:
    """The node's answer for one object: its top class, or `unknown` when the score is below
    `min_score` or the model's open-set check says it is unlike the classes (farther from the
    training data than validation warrants, or won by the negative examples). `predict` uses
    the same rule. A score of 0 (no evidence at all) is never named, whatever `min_score`."""
    return top_class if score >= min_score and score > 0 and known else UNKNOWN


def alternatives(proba: np.ndarray, names: list[str], n: int) -> list[int]:
    """Up to `n` class indices, best first, that an answer lists beside its label. Negative
    training labels (learn.model.NEGATIVE_LABELS) score 0 and are never named; nor is a class
    scoring 0 an alternative: a crop won by a negative had listed the first classes in the
    model's order at 0 (`master_chef_can 0.0` on most real clutter)."""
    return [i for i in np.argsort(-proba, kind="stable") if proba[i] > 0 and not is_negative(names[i])][:n]


def any_class_fits(fits: np.ndarray | None, names: list[str]) -> np.ndarray | None:
    """Per segment, whether the size and pose check (`fits`, (segments, classes)) leaves it any
    class of the model to be; None with the check off. A segment it leaves none is `unknown`
    whatever the crop looks like: on the 36 real frames that was 92 of 221 segments (a table
    edge, a monitor, a bowl), whose features and neighbours the node no longer computes."""
    real = [i for i, n in enumerate(names) if not is_negative(n)]
    return None if fits is None or not real else fits[:, real].any(1)


def spread_prediction(pred: Prediction, asked: np.ndarray, names: list[str]) -> Prediction:
    """The classifier's prediction for the `asked` segments spread over all of them: the others
    score 0 for every class, are unfamiliar, and name the first real class as their best and
    winning one, which the size check rules out (`unknown`, reason `size_or_pose`)."""
    n = len(asked)
    first = next(i for i, name in enumerate(names) if not is_negative(name))
    labels, winner = np.full(n, first, np.int64), np.full(n, first, np.int64)
    proba, known = np.zeros((n, len(names))), np.zeros(n, bool)
    labels[asked], winner[asked], proba[asked], known[asked] = pred.labels, pred.winner, pred.proba, pred.known
    return Prediction(labels, proba, known, winner)


class FrameSkipped(ValueError):
    """A frame that cannot be processed; `reason` is a short key for counting."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass
class FrameResult:
    labels: FrameLabels
    extraction: Extraction
    ms: float
    color: np.ndarray  # the RGB frame it came from (debug images, reports)
    # Milliseconds per stage: conversion (messages only), segmentation, features, classifier,
    # total. A few clock reads per frame, so the node keeps them on; replay-eval reports them.
    stages_ms: dict[str, float] = field(default_factory=dict)


class FrameProcessor:
    def __init__(self, model: ClassifierModel, params: SegmentationParams, min_score: float = -1.0,
                 top_k: int = 3, size_check: bool = True, pose_check: bool = True) -> None:
        self.model = model
        self.params = params
        self.model_name = str(model.meta.get("name", "model"))
        self.model_sha256 = str(model.meta.get("sha256", ""))
        self._lock = threading.Lock()  # parameters change from the ROS parameter thread
        self.model_lock = ReadWriteLock()  # frames read the model; teach/forget (runtime.teaching) write it
        self.k: int | None = None  # kNN neighbours override; None = the model's tuned k (never overwritten)
        self.bridge = None  # cv_bridge_backend.BridgeConverter: the node sets it where cv_bridge works
        self.size_check = bool(size_check)  # runtime.object_sizes: a class name only for a segment of its size
        self.pose_check = bool(pose_check)  # ...resting in one of the product's poses on the support
        self.set_thresholds(min_score, top_k)

    @classmethod
    def from_parameters(cls, model: ClassifierModel, values: dict[str, Any]) -> "FrameProcessor":
        """The processor the node runs for these (checked) parameter values: segmentation,
        min_score, top_k and k; what replay-eval builds from the same params file."""
        from .parameters import check_parameters, segmentation

        values = check_parameters(values)
        processor = cls(model, segmentation(values), values["min_score"], values["top_k"], values["size_check"],
                        values["pose_check"])
        processor.set_thresholds(k=values["k"])
        return processor

    def set_thresholds(self, min_score: float | None = None, top_k: int | None = None, k: int | None = None) -> None:
        """Validated runtime changes; raises ValueError with a reason.

        `top_k` means "up to": a value above the number of classes reports every class (one rule
        at start and at run time). `k=0` restores the model's tuned k.
        """
        if min_score is not None and not -1.0 <= float(min_score) <= 1.0:
            raise ValueError(f"min_score must be in [0, 1], or negative (-1) for the model's own default; "
                             f"got {min_score}")
        if top_k is not None and int(top_k) < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        if k is not None:
            if self.model.kind != "knn":
                if int(k) != 0:  # 0 (the default) means "the model's own", which a linear model has
                    raise ValueError("k applies to kNN models only; this model is linear")
            elif not 0 <= int(k) <= (n := self.model.classifier.index_.ntotal):
                raise ValueError(f"k must be in [1, {n}] (training samples), or 0 for the model's tuned k; got {k}")
        with self._lock:
            if min_score is not None:
                self.min_score = float(min_score)
            if top_k is not None:
                self.top_k = int(top_k)  # "up to": slicing the ranked classes clamps it, also after teaching
            if k is not None:
                self.k = int(k) or None

    def warm_up(self) -> None:
        """One synthetic frame through every step (two touching boxes on a table), so that the
        first real frame does not pay for OpenCV's lookup tables and the allocator's first pages."""
        h, w = 480, 640
        depth = np.full((h, w), 1000, np.uint16)
        color = np.full((h, w, 3), 90, np.uint8)
        depth[200:300, 250:320], color[200:300, 250:320] = 940, (200, 40, 40)
        depth[200:300, 320:390], color[200:300, 320:390] = 940, (40, 40, 200)
        mask = (depth < 1000).astype(np.uint16)
        self.model.features.warm_up()  # a CUDA trunk captures its graphs here, not on a real frame
        self.process(color, depth, Intrinsics(615.0, 615.0, w / 2, h / 2), (0, 0), "warm_up", mask)

    def process(self, color: np.ndarray, depth: np.ndarray | None, intrinsics: Intrinsics | None,
                stamp: tuple[int, int], frame_id: str, mask: np.ndarray | None = None) -> FrameResult:
        t0 = time.perf_counter()
        ex = extract_objects(color, depth, intrinsics, self.params, instance_mask=mask)
        stages = {"segmentation": ex.ms, "features": 0.0, "classifier": 0.0}
        frame = self.label_extraction(ex, stamp, frame_id, stages)
        ms = (time.perf_counter() - t0) * 1000
        return FrameResult(frame, ex, ms, color, {**stages, "total": ms})

    def label_extraction(self, ex: Extraction, stamp: tuple[int, int], frame_id: str,
                         stages: dict[str, float] | None = None) -> FrameLabels:
        """A frame's segments labelled by the model as it is now (teaching asks again after it has
        changed the model: which objects of the teaching frame the new examples took)."""
        with self._lock:  # a consistent set of thresholds; classification itself runs unlocked (workers: 2+)
            min_score, top_k, k = self.min_score, self.top_k, self.k
        stages = {"features": 0.0, "classifier": 0.0} if stages is None else stages
        labels, proba, known, winner, names, sha, fits = self._classify(ex, k, stages)
        if min_score < 0:  # the model's own default, chosen on its validation data
            min_score = self.model.default_min_score
        objects = []
        asked = any_class_fits(fits, names)
        every = tuple(name for name in names if not is_negative(name))
        for n, (obj, lab, p, familiar, won) in enumerate(zip(ex.objects, labels, proba, known, winner)):
            geometry = fits is not None and not fits[n, lab]
            if geometry:
                # The best class's product cannot be this segment: unknown. (The runner-up was
                # tried: on 17 real frames it was wrong far more often than right, doc/real_frames.md.)
                familiar = False
            order = alternatives(p, names, top_k)
            score = float(p[lab])
            # unknown: a low score, or farther from the training data than validation warrants (open set)
            label = decide_label(names[lab], score, min_score, bool(familiar))
            # The negative examples first: where they won, the best class is only the argmax of
            # all-zero class scores, and its size check says nothing (found from outside).
            reason = None if label != UNKNOWN else "unknown_examples" if won != lab else \
                "size_or_pose" if geometry else "unfamiliar" if not familiar else "below_min_score"
            objects.append(ObjectResult(
                instance=int(obj.instance),
                label=label,
                score=score,
                top_k=tuple((names[i], float(p[i])) for i in order),
                bbox=tuple(int(v) for v in obj.bbox),
                centroid=None if obj.centroid is None else tuple(float(v) for v in obj.centroid),
                pixels=int(obj.pixels),
                extent=None if obj.extent is None else tuple(float(v) for v in obj.extent),
                ruled_out=() if fits is None or asked is None else every if not asked[n] else
                tuple(names[i] for i in order if not fits[n, i]),
                unknown_reason=reason,
                rests_on=obj.rests_on,
            ))
        return FrameLabels((int(stamp[0]), int(stamp[1])), frame_id, self.model_name, sha,
                           tuple(objects), ex.warning or None)

    def _classify(self, ex: Extraction, k: int | None, stages: dict[str, float]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str], str, np.ndarray | None]:
        """Labels, scores, open-set verdicts, the classes that won (a negative one included), class
        names, model identity and which classes each segment's size and pose allow (None: not
        checked), read under the model's read lock: teaching changes the examples and the poses
        between frames, never while a worker classifies one."""
        with self.model_lock.reading():
            names, sha = list(self.model.class_names), self.model_sha256
            fits = self.size_and_pose(ex, names, self.model.resting)
            asked = any_class_fits(fits, names)
            t1 = time.perf_counter()
            all_asked = asked is None or asked.all()
            patches = ex.patches if all_asked else ex.patches_of(asked)  # cut here (`DetectedObject.patch`)
            t2 = time.perf_counter()
            stages["segmentation"] = stages.get("segmentation", 0.0) + (t2 - t1) * 1000
            pred = self.model.classify(patches, k=k, stage_ms=stages, allowed=fits if all_asked else fits[asked])
            if not all_asked:
                pred = spread_prediction(pred, asked, names)
            stages["classifier"] = (time.perf_counter() - t2) * 1000 - stages["features"]
            return pred.labels, pred.proba, pred.known, pred.winner, names, sha, fits

    def size_and_pose(self, ex: Extraction, names: list[str], resting: dict | None) -> np.ndarray | None:
        """`object_sizes.size_mask` of the frame's segments (classes `names`, poses `resting`), or
        None with the size check off."""
        if not self.size_check:
            return None
        objs, pose = ex.objects, self.pose_check
        return size_mask(names, [o.extent for o in objs], [o.area_m2 for o in objs],
                         [o.top for o in objs] if pose else None, [o.footprint for o in objs] if pose else None,
                         [o.truncated for o in objs] if pose else None, resting if pose else None,
                         [o.section for o in objs] if pose else None)

    def process_messages(self, color_msg, depth_msg, info_msg=None, mask_msg=None) -> FrameResult:
        """sensor_msgs in (rclpy's or rosbags', same fields), result out: the one path the node
        and `replay-eval` share. Colour and depth may be Image or CompressedImage (decoded in the
        "conversion" stage). Raises FrameSkipped with the reason for a frame it cannot use."""
        from .compressed import MAX_PIXELS
        from .image_conversion import color_from_msg, depth_from_msg, mask_from_msg

        t0 = time.perf_counter()
        # Compressed images may claim no more pixels than camera_info's (decompression bombs)
        size = (0, 0) if info_msg is None else (int(info_msg.width), int(info_msg.height))
        max_pixels = size[0] * size[1] or MAX_PIXELS
        try:
            color = color_from_msg(color_msg, self.bridge, max_pixels)
        except ValueError as e:
            raise FrameSkipped("bad image", str(e)) from None
        if self.params.mode == "depth":  # before the depth, which is bounded by the colour's size: the
            if info_msg is None:         # mismatch is the news, not a depth image "too large" for it
                raise FrameSkipped("no camera_info", "waiting for color/camera_info")
            if size != (0, 0) and size != (color.shape[1], color.shape[0]):
                raise FrameSkipped("bad camera_info", f"camera_info is for {size[0]}x{size[1]} images, "
                                                      f"the colour image is {color.shape[1]}x{color.shape[0]}")
        try:
            # depth must match the colour image: no more pixels than it (RVL is not bounded by its length)
            depth = depth_from_msg(depth_msg, self.bridge, min(max_pixels, color.shape[0] * color.shape[1]))
        except ValueError as e:
            raise FrameSkipped("bad image", str(e)) from None
        intrinsics = doubt = None
        if self.params.mode == "depth":
            try:
                intrinsics = Intrinsics.from_k(info_msg.k)
                doubt = intrinsics.check_image(color.shape[1], color.shape[0])
            except ValueError as e:
                raise FrameSkipped("bad camera_info", str(e)) from None
        mask = None
        if self.params.mode == "mask":
            if mask_msg is None:
                raise FrameSkipped("no mask", "waiting for mask/image_raw")
            try:
                mask = mask_from_msg(mask_msg, self.bridge)
            except ValueError as e:
                raise FrameSkipped("bad mask", str(e)) from None
        h = color_msg.header
        if not (0 <= h.stamp.sec < 2**31 and 0 <= h.stamp.nanosec < NS_PER_S):
            raise FrameSkipped("bad stamp", f"header stamp sec={h.stamp.sec} nanosec={h.stamp.nanosec} is not a "
                                            "valid time (sec >= 0, 0 <= nanosec < 10^9)")
        conversion_ms = (time.perf_counter() - t0) * 1000  # colour, depth, camera_info, mask
        try:
            result = self.process(color, depth, intrinsics, (h.stamp.sec, h.stamp.nanosec), h.frame_id, mask)
        except ValueError as e:
            raise FrameSkipped("bad frame", str(e)) from None
        result.stages_ms["conversion"] = conversion_ms
        result.stages_ms["total"] += conversion_ms
        if doubt:  # said as the segmentation's warnings are, after them
            result.labels = replace(result.labels, warning="; ".join(filter(None, (result.labels.warning, doubt))))
        return result
