"""Offline evaluation of a model on a recorded bag: the node's processing, no DDS.

Every colour/depth pair, in stamp order, goes through the same conversion, pairing, patch
extraction and classifier as `classify_node` (`FrameProcessor`). Predictions are matched to
ground truth per frame (greedy by bbox IoU >= 0.5). Ground-truth objects that are not one of
the model's classes (distractors) count as `unknown`: saying "unknown" about them is right.
"""
from __future__ import annotations

import html
import json
import shutil
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm.auto import tqdm

from ..data.bags import BagError, open_reader, read_frames, read_ground_truth
from ..runtime.frame_processor import UNKNOWN, FrameProcessor, FrameSkipped
from ..runtime.results import FrameLabels, ObjectResult
from .matching import match_boxes
from .metrics import per_class_report
from ..learn.model import ClassifierModel
from ..runtime.parameters import check_parameters
from ..runtime.visualize import draw_objects

MISSED, BACKGROUND = "missed", "background"


def run_frames(bag: str | Path, processor: FrameProcessor, topics: tuple[str, str, str], quiet: bool = False,
               stats: dict | None = None, slop: float = 0.02):
    """Yield (frame, FrameResult or None, FrameSkipped.reason or None, colour RGB or None, ms) for
    each pair, through `FrameProcessor.process_messages`: the node's own path."""
    total = None if quiet else color_count(bag, topics[0])
    for frame in tqdm(read_frames(bag, topics, slop=slop, stats=stats), desc="replay-eval", unit="frame", total=total,
                      disable=quiet):
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
        return sum(c.msgcount for c in reader.connections if c.topic == topic)
    finally:
        reader.close()


def replay_eval(bag: str | Path, model: ClassifierModel, report_dir: str | Path,
                topics: tuple[str, str, str], parameters: dict[str, Any] | None = None,
                sidecar: str | Path | None = None, annotated: int = 6, quiet: bool = False) -> dict[str, Any]:
    """The node's processing, at the node's `parameters` (runtime.parameters; defaults if
    None), over every frame of a bag; metrics.json, figures and report.html in `report_dir`."""
    report_dir = Path(report_dir)
    if report_dir.exists() and not report_dir.is_dir():
        raise ValueError(f"{report_dir}: exists and is not a folder")
    gt = read_ground_truth(bag, sidecar)
    if not gt:
        raise BagError(f"{bag}: no ground truth (topic /ground_truth/object_labels or --ground-truth FILE.jsonl)")
    parameters = check_parameters(parameters)
    processor = FrameProcessor.from_parameters(model, parameters)
    created = None  # the outermost folder this run makes, if any
    for d in (report_dir, *report_dir.parents):
        if d.exists():
            break
        created = d
    report_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _evaluate(bag, processor, gt, report_dir, topics, annotated, quiet, parameters["sync_slop"])
    except BaseException:
        if created is not None:  # a failed run leaves no half-written report; folders it did not make stay
            shutil.rmtree(created, ignore_errors=True)
        raise


def _evaluate(bag: str | Path, processor: FrameProcessor, gt: dict[int, FrameLabels], report_dir: Path,
              topics: tuple[str, str, str], annotated: int, quiet: bool, slop: float) -> dict[str, Any]:
    model = processor.model
    labels = list(model.class_names) + [UNKNOWN, BACKGROUND, MISSED]
    index = {n: i for i, n in enumerate(labels)}
    cm = np.zeros((len(labels), len(labels)), np.int64)
    latencies, skipped, pictures, sync_stats = [], {}, [], {}
    n_frames = n_gt_frames = gt_objects = found = detections = true_pos = 0
    per_frame, documents = [], []  # documents: what the node would publish, one JSON line per frame
    for frame, res, why, color, ms in run_frames(bag, processor, topics, quiet, sync_stats, slop):
        n_frames += 1
        if res is None:
            skipped[why] = skipped.get(why, 0) + 1
            continue
        latencies.append(ms)
        documents.append(json.dumps(res.labels.to_doc()))
        truth = gt.get(frame.stamp_ns)
        if truth is None:
            skipped["no ground truth"] = skipped.get("no ground truth", 0) + 1
            continue
        n_gt_frames += 1
        gts = [g for g in truth.objects if g.visible_fraction is None or g.visible_fraction >= 0.5]
        preds = res.labels.objects
        pairs = match_boxes([o.bbox for o in preds], [g.bbox for g in gts])
        matched_pred, matched_gt = {i for i, _, _ in pairs}, {j for _, j, _ in pairs}
        gt_objects += len(gts)
        found += len(matched_gt)
        detections += len(preds)
        true_pos += len(pairs)
        for i, j, _ in pairs:
            truth_label = gts[j].label if gts[j].label in index else UNKNOWN
            cm[index[truth_label], index[preds[i].label]] += 1
        for j, g in enumerate(gts):
            if j not in matched_gt:
                cm[index[g.label if g.label in index else UNKNOWN], index[MISSED]] += 1
        for i, o in enumerate(preds):
            if i not in matched_pred:
                cm[index[BACKGROUND], index[o.label]] += 1
        per_frame.append({"stamp_ns": frame.stamp_ns, "objects": len(preds), "ground_truth": len(gts),
                          "matched": len(pairs), "ms": ms})
        if len(pictures) < annotated and color is not None:
            pictures.append(_annotate(color, preds, gts, report_dir / f"frame_{len(pictures):02d}.png"))
    if n_frames == 0:
        raise BagError(f"{bag}: no colour/depth pairs (check --topics and the stamps)")
    (report_dir / "object_labels.jsonl").write_text("".join(d + "\n" for d in documents))
    classes = list(model.class_names)
    n_cls = len(classes)
    # Accuracy over matched objects of the model's classes (a prediction of "unknown" is wrong);
    # objects of no known class (distractors) are reported on their own.
    matched_block = cm[:n_cls, : n_cls + 1]
    others = cm[n_cls, : n_cls + 2]
    lat = np.array(latencies) if latencies else np.zeros(1)
    metrics = {
        "bag": str(bag), "model": {"name": processor.model_name, "sha256": processor.model_sha256},
        "object_accuracy": float(np.trace(matched_block[:, :n_cls]) / max(matched_block.sum(), 1)),
        "non_class_objects": {"matched": int(others[: n_cls + 1].sum()), "labelled_unknown": int(others[n_cls])},
        "detection_recall": found / max(gt_objects, 1),
        "detection_precision": true_pos / max(detections, 1),
        "frames": {"pairs": n_frames, "processed": len(latencies), "with_ground_truth": n_gt_frames,
                   "skipped": skipped, "sync": sync_stats},
        "latency_ms": {"p50": float(np.percentile(lat, 50)), "p90": float(np.percentile(lat, 90)),
                       "p99": float(np.percentile(lat, 99)), "mean": float(lat.mean())},
        "per_class": {k: v for k, v in per_class_report(cm, labels).items() if k in classes},
        "confusion": {"labels": labels, "matrix": cm.tolist(),
                      "note": "rows: ground truth (non-class objects as unknown, unmatched detections as "
                              "background); columns: prediction (missed = not detected)"},
        "objects": {"ground_truth": gt_objects, "detections": detections, "matched": true_pos},
        "per_frame": per_frame,
    }
    (report_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    from .plots import plot_confusion, plot_histogram

    plot_confusion(cm, labels, report_dir / "confusion.png",
                   f"object accuracy {metrics['object_accuracy']:.3f}, recall {metrics['detection_recall']:.3f}")
    plot_histogram(lat, report_dir / "latency.png", "ms per frame (conversion + patches + classifier)",
                   f"p50 {metrics['latency_ms']['p50']:.1f} ms, p99 {metrics['latency_ms']['p99']:.1f} ms")
    _write_html(metrics, pictures, report_dir / "report.html")
    return metrics


def _annotate(color: np.ndarray, preds: tuple[ObjectResult, ...], gts: list[ObjectResult], path: Path) -> str:
    img = draw_objects(color, [(o.bbox, o.label, o.score) for o in preds])
    for g in gts:  # ground truth as thin white boxes
        x, y, w, h = g.bbox
        cv2.rectangle(img, (x, y), (x + w - 1, y + h - 1), (255, 255, 255), 1)
    cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return path.name


def _write_html(m: dict, pictures: list[str], path: Path) -> None:
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v['precision']:.3f}</td><td>{v['recall']:.3f}</td>"
                   f"<td>{v['f1']:.3f}</td><td>{v['support']}</td></tr>" for k, v in m["per_class"].items())
    frames = m["frames"]
    skipped = ", ".join(f"{html.escape(k)}: {v}" for k, v in frames["skipped"].items()) or "none"
    imgs = "".join(f'<figure><img src="{p}" width="400"><figcaption>{p}: predictions (coloured, label + score), '
                   f'ground truth (white)</figcaption></figure>' for p in pictures)
    path.write_text(f"""<!doctype html><html><head><meta charset="utf-8"><title>robot_classify replay-eval</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}} td,th{{padding:2px 10px;text-align:right}}
.big{{font-size:1.6em;margin-right:1.5em}} figure{{display:inline-block;margin:4px}}</style></head><body>
<h1>replay-eval: {html.escape(Path(m['bag']).name)}</h1>
<p>model <code>{html.escape(m['model']['name'])}</code> ({html.escape(m['model']['sha256'][:12])})</p>
<p><span class="big">object accuracy <b>{m['object_accuracy']:.1%}</b></span>
<span class="big">detection recall <b>{m['detection_recall']:.1%}</b></span>
<span class="big">precision <b>{m['detection_precision']:.1%}</b></span></p>
<p>latency per frame: p50 {m['latency_ms']['p50']:.1f} ms, p90 {m['latency_ms']['p90']:.1f} ms,
p99 {m['latency_ms']['p99']:.1f} ms. Frames: {frames['pairs']} colour/depth pairs, {frames['processed']} processed,
{frames['with_ground_truth']} with ground truth; skipped: {skipped}.</p>
<img src="confusion.png" width="520"> <img src="latency.png" width="420">
<h2>Per class</h2><table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>
{rows}</table><h2>Frames</h2>{imgs}</body></html>""")


def bag_to_dataset(bag: str | Path, model: ClassifierModel, out: str | Path, topics: tuple[str, str, str],
                   parameters: dict[str, Any] | None = None, sidecar: str | Path | None = None,
                   split_by_time: float = 0.8, quiet: bool = False) -> dict[str, int]:
    """The node's own crops from every frame, labelled from ground truth; train = first part in time."""
    if not 0 < split_by_time < 1:
        raise ValueError(f"split-by-time must be in (0, 1), got {split_by_time}")
    gt = read_ground_truth(bag, sidecar)
    parameters = check_parameters(parameters)
    # The node's crops (its segmentation); every crop keeps the classifier's best guess.
    processor = FrameProcessor.from_parameters(model, {**parameters, "min_score": 0.0, "top_k": 1})
    crops = []  # (stamp, label, patch)
    for frame, res, _, _, _ in run_frames(bag, processor, topics, quiet, slop=parameters["sync_slop"]):
        if res is None:
            continue
        preds, patches = res.labels.objects, res.extraction.patches
        truth = gt.get(frame.stamp_ns)
        gts = truth.objects if truth is not None else ()
        pairs = match_boxes([o.bbox for o in preds], [g.bbox for g in gts])
        label_of = {i: gts[j].label for i, j, _ in pairs}
        for i in range(len(preds)):
            crops.append((frame.stamp_ns, label_of.get(i, "_unlabelled"), patches[i]))
    if not crops:
        raise BagError(f"{bag}: no objects found in any frame")
    stamps = sorted({c[0] for c in crops})
    cut = stamps[min(len(stamps) - 1, int(len(stamps) * split_by_time))]
    out = Path(out)
    counts: dict[str, int] = {}
    for n, (stamp, label, patch) in enumerate(crops):
        split = "train" if stamp < cut else "test"
        d = out / split / label
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / f"{stamp}_{n:05d}.png"), cv2.cvtColor(patch, cv2.COLOR_RGB2BGR))
        counts[f"{split}/{label}"] = counts.get(f"{split}/{label}", 0) + 1
    return counts
