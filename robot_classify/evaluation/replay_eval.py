"""Offline evaluation of a model on a recorded bag: the node's processing, no DDS.

Every colour/depth pair, in stamp order, goes through the same conversion, pairing, patch
extraction and classifier as `classify_node` (`FrameProcessor`), then, with
`tracking.enabled`, the node's tracker (runtime/tracking.py) in frame order; metrics.json's
`tracking` holds per-frame vs fused accuracy and the MOT counts (evaluation/tracking_metrics.py).
Predictions are matched to ground truth per frame (greedy by bbox IoU >= 0.5). Ground-truth objects that are not one of
the model's classes (distractors) count as `unknown`: saying "unknown" about them is right.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm.auto import tqdm

from ..data.bags import (GT_TOPIC, BagError, check_frame_topics, open_reader, opened_bag, read_frames,
                         read_ground_truth, resolve_image_topics, topics_of)
from ..runtime.frame_processor import UNKNOWN, FrameProcessor, FrameSkipped
from ..runtime.results import FrameLabels
from .failures import FailureGallery
from ..data.matching import match_boxes, scored_truth
from .metrics import per_class_report
from ..learn.model import ClassifierModel, is_negative
from ..runtime.parameters import check_parameters
from ..runtime.threads import node_threads
from ..runtime.tracking import Tracker, TrackerParams
from .tracking_metrics import tracking_summary
from .owned_folder import prepare_owned_folder
from .replay_metrics import (SCHEMA, centroid_summary, failure_counts, frame_records, iou_summary, named_summary,
                             non_class_summary,
                             threshold_summary, timing_summary)
from .run_context import run_context

MISSED, BACKGROUND = "missed", "background"


def run_frames(bag: str | Path, processor: FrameProcessor, topics: tuple[str, str, str], quiet: bool = False,
               stats: dict | None = None, slop: float = 0.02, reader: Any | None = None, every: int = 1,
               desc: str = "replay-eval"):
    """Yield (frame, FrameResult or None, FrameSkipped.reason or None, colour RGB or None, ms) for
    each pair, through `FrameProcessor.process_messages`: the node's own path. `reader`: the bag
    already open (`data.bags.opened_bag`), read and left open; None: opened here. `every`: only
    every N-th pair, the others neither processed nor yielded."""
    if reader is None:
        with opened_bag(bag) as reader:
            yield from run_frames(bag, processor, topics, quiet, stats, slop, reader, every, desc)
        return
    total = None if quiet else -(-_color_count(reader, resolve_image_topics(topics_of(reader), topics)[0]) // every)
    # Depth segmentation needs the intrinsics: without their topic every frame would be skipped
    frames = read_frames(bag, topics, slop=slop, stats=stats, reader=reader,
                         need_info=processor.params.mode == "depth")
    pairs = (f for n, f in enumerate(frames) if n % every == 0)
    for frame in tqdm(pairs, desc=desc, unit="frame", total=total, disable=quiet):
        t0 = time.perf_counter()
        try:
            res = processor.process_messages(frame.color, frame.depth, frame.info)
        except FrameSkipped as e:
            yield frame, None, e.reason, None, 0.0
            continue
        yield frame, res, None, res.color, (time.perf_counter() - t0) * 1000


def color_count(bag: str | Path, topic: str) -> int | None:
    """Colour messages in the bag, from its index (no message is read): at most one frame each.
    None when the bag cannot tell; `read_frames` then reports what is wrong with it."""
    try:
        reader = open_reader(bag)
    except BagError:
        return None
    try:
        return _color_count(reader, topic)
    finally:
        reader.close()


def _color_count(reader: Any, topic: str) -> int:
    return sum(c.msgcount for c in reader.connections if c.topic == topic)


def replay_eval(bag: str | Path, model: ClassifierModel, report_dir: str | Path,
                topics: tuple[str, str, str], parameters: dict[str, Any] | None = None,
                sidecar: str | Path | None = None, gallery: int = 40, quiet: bool = False,
                report: bool = True, gt_topic: str | None = None,
                params_file: str | Path | None = None) -> dict[str, Any]:
    """The node's processing, at the node's `parameters` (runtime.parameters; defaults if
    None), over every frame of a bag. Writes metrics.json (schema in
    config/replay_eval_metrics.schema.json), objects.jsonl (one record per object, what
    `--compare` reads) and object_labels.jsonl to `report_dir`; with `report`, also
    report.html, summary.md, the figures and a gallery of the `gallery` worst failures."""
    if gallery < 0:
        raise ValueError(f"gallery must be >= 0, got {gallery}")
    report_dir = Path(report_dir)
    if report_dir.exists() and not report_dir.is_dir():
        raise ValueError(f"{report_dir}: exists and is not a folder")
    with opened_bag(bag) as reader:  # one open for the topics, the ground truth and the frames
        gt = read_ground_truth(bag, sidecar, gt_topic, reader=reader)  # gt_topic: JSON or vision_msgs/Detection2DArray
        if not gt:
            raise BagError(f"{bag}: no ground truth (topic {gt_topic or '/ground_truth/object_labels'}, "
                           "--ground-truth-topic TOPIC or --ground-truth FILE.jsonl)")
        parameters = check_parameters(parameters)
        processor = FrameProcessor.from_parameters(model, parameters)
        have = topics_of(reader)
        topics = resolve_image_topics(have, topics)  # raw topics, else their compressed ones: the report names them
        # Before the folder is cleared: a wrong --topics had cost an earlier report its files.
        check_frame_topics(bag, topics, need_info=processor.params.mode == "depth", reader=reader)
        context = run_context(model, parameters, bag, topics, have,
                              f"file {Path(sidecar).resolve()}" if sidecar else f"topic {gt_topic or GT_TOPIC}")
        context["params_file"] = None if params_file is None else str(Path(params_file).resolve())
        created = None  # the outermost folder this run makes, if any
        for d in (report_dir, *report_dir.parents):
            if d.exists():
                break
            created = d
        # Last of the checks: a typo in --bag must not cost an earlier report its files.
        prepare_owned_folder(report_dir, REPORT_MARKER, REPORT_OUTPUTS, "robot-classify replay-eval")
        try:
            with node_threads():  # the node's per-stage times, not those of a process with thread pools
                processor.warm_up()  # as the node at its start: the first frame's time is a frame's, not setup's
                metrics, records = _evaluate(bag, processor, gt, report_dir, topics, gallery if report else 0,
                                             quiet, parameters["sync_slop"], context, reader, parameters)
            if report:
                from .report_html import write_report

                write_report(metrics, records, report_dir)
            return metrics
        except BaseException:
            if created is not None:  # a failed run leaves no half-written report; folders it did not make stay
                shutil.rmtree(created, ignore_errors=True)
            raise


# What a report folder holds, all written here or by report_html / failures: a report run again
# into its folder replaces these and nothing else (`owned_folder`; test_report_outputs_are_listed).
REPORT_MARKER = ".robot_classify_report"
REPORT_OUTPUTS = ("metrics.json", "objects.jsonl", "object_labels.jsonl", "report.html", "summary.md",
                  "box_iou.png", "centroid_error.png", "confusion.png", "coverage.png", "reliability.png",
                  "scores.png", "stages.png", "timeline.png", "failures", "frames")


def no_stamp_matches(bag: str | Path, frames: int, gt: dict[int, FrameLabels]) -> str:
    """Ground truth is matched to frames by stamp; none matching is a wrong sidecar or topic, not
    a model that finds nothing (it had printed detection recall 0.0% of 0 objects)."""
    return (f"{bag}: none of the {len(gt)} ground-truth stamps is a frame's stamp ({frames} frames, the first "
            f"at {min(gt)} ns in the ground truth): ground truth of another bag, or a sidecar's stamps shifted?")


def _evaluate(bag: str | Path, processor: FrameProcessor, gt: dict[int, FrameLabels], report_dir: Path,
              topics: tuple[str, str, str], gallery_cap: int, quiet: bool, slop: float,
              context: dict[str, Any], reader: Any, parameters: dict[str, Any]
              ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Metrics and the per-object records; writes metrics.json, objects.jsonl, object_labels.jsonl
    and, when `gallery_cap` > 0, the gallery's crops and frames."""
    model = processor.model
    # Negative training labels (`distractor`, `unknown`) are no class: their objects count as
    # non-class objects, right when labelled `unknown`.
    classes = [n for n in model.class_names if not is_negative(n)]
    labels = classes + [UNKNOWN, BACKGROUND, MISSED]
    index = {n: i for i, n in enumerate(labels)}
    cm = np.zeros((len(labels), len(labels)), np.int64)
    latencies, skipped, sync_stats, records = [], {}, {}, []
    n_frames = n_gt_frames = 0
    per_frame, documents = [], []  # documents: what the node would publish, one JSON line per frame
    gallery = FailureGallery(gallery_cap)
    tracker, tracker_ms = (Tracker(TrackerParams.from_parameters(parameters)) if parameters["tracking.enabled"]
                           else None), []
    for frame, res, why, color, ms in run_frames(bag, processor, topics, quiet, sync_stats, slop, reader):
        n_frames += 1
        if res is None:
            skipped[why] = skipped.get(why, 0) + 1
            continue
        if tracker is not None:  # as the node: after the processor, in stamp order
            t0 = time.perf_counter()
            res.labels = tracker.update(res.labels)
            tracker_ms.append((time.perf_counter() - t0) * 1000)
        latencies.append(ms)
        documents.append(json.dumps(res.labels.to_doc()))
        truth = gt.get(frame.stamp_ns)
        row = {"stamp_ns": frame.stamp_ns, "objects": len(res.labels.objects), "ms": ms,
               "stages_ms": {k: round(v, 3) for k, v in res.stages_ms.items()}}
        per_frame.append(row)
        if truth is None:
            skipped["no ground truth"] = skipped.get("no ground truth", 0) + 1
            continue
        gts = scored_truth(truth.objects)
        preds = res.labels.objects
        recs = frame_records(n_gt_frames, frame.stamp_ns, preds, gts, classes)
        if tracker is not None:  # which stretch of the tracker's time line: ids persist within one
            for r in recs:
                r["recording"] = tracker.resets
        n_gt_frames += 1
        for r in recs:
            truth_label = BACKGROUND if r["truth"] is None else r["truth"] if r["known"] else UNKNOWN
            cm[index[truth_label], index[MISSED if r["label"] is None else r["label"]]] += 1
        row.update(ground_truth=len(gts), matched=sum(1 for r in recs if r["iou"] is not None))
        records.extend(recs)
        gallery.offer(recs, color, preds, gts)
    if n_frames == 0:
        raise BagError(f"{bag}: no colour/depth pairs (check --topics and the stamps)")
    if n_gt_frames == 0 and len(latencies):
        raise BagError(no_stamp_matches(bag, n_frames, gt))
    strangers = sorted({r["truth"] for r in records if r["truth"] and not r["known"] and not is_negative(r["truth"])})
    if strangers:  # a team's own class the model lacks, or a class map's typo (mustard_botle): say which
        logging.getLogger("robot_classify").warning(
            "ground truth names %s, no class of this model: counted as objects of no class (right when called "
            "unknown)", ", ".join(strangers))
    (report_dir / "object_labels.jsonl").write_text("".join(d + "\n" for d in documents))
    (report_dir / "objects.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    n_cls = len(classes)
    # Accuracy over matched objects of the model's classes (a prediction of "unknown" is wrong);
    # objects of no known class (distractors) are reported on their own.
    matched_block = cm[:n_cls, : n_cls + 1]
    gt_objects = sum(1 for r in records if r["truth"] is not None)
    found = sum(1 for r in records if r["iou"] is not None)
    detections = sum(1 for r in records if r["label"] is not None)
    lat = np.array(latencies) if latencies else np.zeros(1)
    t0_ns = per_frame[0]["stamp_ns"] if per_frame else 0
    counts = failure_counts(records)
    shown = gallery.write(report_dir, t0_ns)
    metrics = {
        "schema": SCHEMA,
        "bag": str(bag), "model": {"name": processor.model_name, "sha256": processor.model_sha256},
        "object_accuracy": float(np.trace(matched_block[:, :n_cls]) / max(matched_block.sum(), 1)),
        "detection_recall": found / max(gt_objects, 1),
        "detection_precision": found / max(detections, 1),
        "centroid_error_mm": centroid_summary(records, classes),
        "box_iou": iou_summary(records),
        "thresholds": threshold_summary(records, _effective_min_score(processor)),
        "non_class_objects": non_class_summary(records),
        "named": named_summary(records),
        "failures": {"counts": counts, "total": sum(counts.values()), "shown": len(shown), "cap": gallery_cap,
                     "items": [{k: r[k] for k in FAILURE_KEYS if k in r} for r in shown]},
        "frames": {"pairs": n_frames, "processed": len(latencies), "with_ground_truth": n_gt_frames,
                   "skipped": skipped, "sync": sync_stats},
        "latency_ms": {"p50": float(np.percentile(lat, 50)), "p90": float(np.percentile(lat, 90)),
                       "p99": float(np.percentile(lat, 99)), "mean": float(lat.mean())},
        "timing_ms": timing_summary([r["stages_ms"] for r in per_frame]),
        "per_class": {k: v for k, v in per_class_report(cm, labels).items() if k in classes},
        "confusion": {"labels": labels, "matrix": cm.tolist(),
                      "note": "rows: ground truth (non-class objects as unknown, unmatched detections as "
                              "background); columns: prediction (missed = not detected); the report's figure "
                              "leaves out empty rows and columns"},
        "objects": {"ground_truth": gt_objects, "detections": detections, "matched": found},
        "run": context,
        "per_frame": per_frame,
    }
    if tracker is not None:
        metrics["tracking"] = tracking_summary(records, tracker_ms)
    (report_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics, records


def _effective_min_score(processor: FrameProcessor) -> float:
    """The min_score the frames ran with: a negative parameter means the model's own default."""
    if processor.min_score >= 0:
        return processor.min_score
    return float(getattr(processor.model, "default_min_score", 0.5))


FAILURE_KEYS = ("outcome", "truth", "label", "top", "score", "iou", "centroid_error_m", "stamp_ns", "time_s",
                "frame", "bbox", "truth_bbox", "visible_fraction", "crop", "frame_image")


def bag_to_dataset(bag: str | Path, model: ClassifierModel, out: str | Path, topics: tuple[str, str, str],
                   parameters: dict[str, Any] | None = None, sidecar: str | Path | None = None,
                   split_by_time: float = 0.8, quiet: bool = False, gt_topic: str | None = None) -> dict[str, int]:
    """The node's own crops from every frame, labelled from ground truth; train = first part in time."""
    if not 0 < split_by_time <= 1:
        raise ValueError(f"split-by-time must be in (0, 1], got {split_by_time}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        # Two bags' crops in one set would share file names (stamps) and quietly replace each other
        raise ValueError(f"{out} exists and is not an empty folder; choose a new one (bag-to-dataset never "
                         "writes over or among files)")
    parameters = check_parameters(parameters)
    # The node's crops (its segmentation); every crop keeps the classifier's best guess.
    processor = FrameProcessor.from_parameters(model, {**parameters, "min_score": 0.0, "top_k": 1})
    crops = []  # (stamp, label, patch)
    frames = labelled = 0
    with opened_bag(bag) as reader:
        gt = read_ground_truth(bag, sidecar, gt_topic, reader=reader)
        if not gt:  # every crop would be `_unlabelled`: nothing to train on
            raise BagError(f"{bag}: no ground truth to label the crops with (topic {gt_topic or GT_TOPIC}, "
                           "--ground-truth-topic TOPIC or --ground-truth FILE.jsonl)")
        for frame, res, _, _, _ in run_frames(bag, processor, topics, quiet, slop=parameters["sync_slop"],
                                              reader=reader):
            if res is None:
                continue
            frames += 1
            labelled += frame.stamp_ns in gt
            preds, patches = res.labels.objects, res.extraction.patches
            truth = gt.get(frame.stamp_ns)
            gts = truth.objects if truth is not None else ()
            pairs = match_boxes([o.bbox for o in preds], [g.bbox for g in gts])
            label_of = {i: gts[j].label for i, j, _ in pairs}
            for i in range(len(preds)):
                crops.append((frame.stamp_ns, label_of.get(i, "_unlabelled"), patches[i]))
    if frames and not labelled:
        raise BagError(no_stamp_matches(bag, frames, gt))
    if not crops:
        raise BagError(f"{bag}: no objects found in any frame")
    # The first split_by_time of the frames with objects train, the rest test; at least one trains
    # (a one-frame bag is all train: a set without a train split trains nothing).
    stamps = sorted({c[0] for c in crops})
    n_train = max(1, int(len(stamps) * split_by_time))
    cut = stamps[n_train] if n_train < len(stamps) else stamps[-1] + 1
    counts: dict[str, int] = {}
    for n, (stamp, label, patch) in enumerate(crops):
        split = "train" if stamp < cut else "test"
        d = out / split / label
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / f"{stamp}_{n:05d}.png"), cv2.cvtColor(patch, cv2.COLOR_RGB2BGR))
        counts[f"{split}/{label}"] = counts.get(f"{split}/{label}", 0) + 1
    return counts
