"""Real frames beside renders: what a grasp planner is told on a real table.

Runs `replay-eval` (the node's own processing, `FrameProcessor`) over labelled bags of real
RGB-D frames (made with `robot-classify import-dataset` from BOP or YCB-Video folders, or
hand-labelled frames in BOP layout) and over a rendered bag, at several settings in the same run
(`--settings`, default sizes,after):

  before   0.2.0's segmentation: the dominant plane as the support, every
           segment above it kept whatever its size or place, no size check
  sizes    0.3.0's rules: the highest large plane as the support, only segments standing
           inside its outline and of an object's size, class names only for segments of that
           product's size (`runtime/object_sizes.py`)
  after    this release's defaults: also, class names only for segments resting in one of the
           product's poses (height above the support, footprint: `pose_check`)
  pose_0.6 after, as 0.6: the pose check without its lower bound on the footprint's long side
           (`object_sizes.MAJOR_LOWER`, a constant no parameter reaches: swapped for the run)
  lower_0911  after, as 0.9.11: the footprint's lower bound without its slack for a mask's lost
           rim (`object_sizes.MAJOR_LOWER_SLACK` 0)
  scale_2  after, segmented on every second pixel whatever the frame's size (the default
           before 0.9.2, whose `segmentation.scale: 0` picks every fourth for 1280x720)
  scale_4  after, on every fourth pixel whatever the frame's size (a 160-sample grid on 640x480)
  rejoin_mean  after, but pieces cut at a crease rejoined on their mean colours alone (0.9.5
           and before: `segmentation.rejoin_histogram: 1`); rejoin_hist_07, rejoin_hist_15:
           the histogram's threshold at 0.07 and 0.15
  support_096  after, with 0.9.6's support rules: no small support at furniture height (a
           chair's tablet above a carpet), and a base touches the plane by its lowest tenth, not
           its lowest pixels (`runtime.support` constants, swapped for the run); tablet_096 and
           touch_096: one of the two only
  no_section  after, without 0.9.14's rule on an object's side (a can's round, a box's flat:
           `object_sizes.shape_fits`; its constants swapped for the run)
  no_stacks  after, without 0.9.15's cut of one object standing or lying on another
           (`segmentation.split_stacks: false`)
  no_openings  after, without 0.9.16's join of a mug's or a bowl's inside to its front wall
           (`segmentation.rejoin_openings: false`)
  no_valleys  after, without 0.9.17's cut at a low valley of depth between two objects
           (`segmentation.split_valleys: false`)
  top_0915  after, but a stack's lower top must show 12 cm² to be cut at (0.9.15's
           `stacks.MIN_TOP_AREA`; 3 cm² since 0.9.16)
  no_hidden  after, without 0.9.20's rule that a segment whose base is hidden behind a nearer
           object stands on the support (`support.HIDDEN_SHARE` swapped for the run)
  seed_1 ... seed_5  after, with the support plane's RANSAC drawing its hypotheses from seed N,
           not 0 (`patches.fit_plane` swapped for the run): how much the answers hang on the draw
  split    after, and a segment larger than an object cut at its narrow necks before it is
           given up (`segmentation.split_large`, off by default; in `real_frames_split_cpu.json`,
           made while it was on by default, this setting is named "after" and `after` "unsplit")

and prints, per bag and setting: named precision (of all detections carrying a class name,
clutter included, the share that is right), object accuracy over matched objects of the
model's classes, detection recall (all labelled objects, and class objects alone), clutter and
non-class objects named, ECE of the scores over matched class objects, and per-stage time.

    python bench/real_frames_bench.py --real real_bag1 real_bag2 --render render_bag \
        [--model MODEL] [--out bench/results/real_frames_cpu.json]

The real frames themselves are never committed (see doc/real_frames.md for where they
come from); the results file holds only the figures.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import tempfile
import time
from unittest import mock
from pathlib import Path

import numpy as np

from robot_classify.data.bags import COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC
from robot_classify.evaluation.replay_eval import replay_eval
from robot_classify.evaluation.replay_metrics import named_records
from robot_classify.evaluation.run_context import git_commit
from robot_classify.learn.model_io import load_model
from robot_classify.runtime import object_sizes, patches, stacks, support
from robot_classify.runtime.default_model import get_default_model

SETTINGS = {
    "before": {"size_check": False, "segmentation.support": "dominant", "segmentation.on_support": False,
               "segmentation.min_extent": 0.0, "segmentation.max_extent": 10.0, "segmentation.scale": 2},
    "sizes": {"pose_check": False, "segmentation.scale": 2},
    "after": {},
    "split": {"segmentation.split_large": True},
    "scale_2": {"segmentation.scale": 2},
    "scale_4": {"segmentation.scale": 4},
    "pose_0.6": {},
    "lower_0911": {},
    # 0.9.4's sweep of the segmenter's cutting parameters on real frames (doc/real_frames.md)
    "crease_10": {"segmentation.crease": 0.10},
    "crease_07": {"segmentation.crease": 0.07},
    "rejoin_12": {"segmentation.rejoin_colour": 12.0},
    "crease_10_rejoin_12": {"segmentation.crease": 0.10, "segmentation.rejoin_colour": 12.0},
    "jump_015": {"segmentation.depth_jump": 0.015},
    "jump_018": {"segmentation.depth_jump": 0.018},
    "scale_1": {"segmentation.scale": 1},
    # 0.9.5 and before: crease-cut pieces rejoined on their mean colours alone
    "rejoin_mean": {"segmentation.rejoin_histogram": 1.0},
    # the histogram's threshold either side of its default (0.1)
    "rejoin_hist_07": {"segmentation.rejoin_histogram": 0.07},
    "rejoin_hist_15": {"segmentation.rejoin_histogram": 0.15},
    "support_096": {},
    "no_section": {},
    "tablet_096": {},
    "touch_096": {},
    "no_stacks": {"segmentation.split_stacks": False},
    "no_openings": {"segmentation.rejoin_openings": False},
    "no_valleys": {"segmentation.split_valleys": False},
    "top_0915": {},
    "no_hidden": {},
    **{f"seed_{n}": {} for n in range(1, 6)},
}


def _seeded_fit_plane(seed: int):
    """`patches.fit_plane` drawing from `seed` whatever generator the segmenter passes it."""
    fit_plane = patches.fit_plane
    return lambda points, threshold, iterations, rng: fit_plane(points, threshold, iterations,
                                                                 np.random.default_rng(seed))


# module constants swapped per setting: (module, {name: value})
CONSTANTS = {"pose_0.6": (object_sizes, {"MAJOR_LOWER": 0.0}),
             "lower_0911": (object_sizes, {"MAJOR_LOWER_SLACK": 0.0}),
             "support_096": (support, {"SMALL_SUPPORT_AREA": math.inf, "TOUCH_FRACTION": 0.1}),
             "tablet_096": (support, {"SMALL_SUPPORT_AREA": math.inf}),
             "touch_096": (support, {"TOUCH_FRACTION": 0.1}),
             "top_0915": (stacks, {"MIN_TOP_AREA": 0.0012}),
             "no_hidden": (support, {"HIDDEN_SHARE": math.inf}),
             "no_section": (object_sizes, {"ROUND_RMS": math.inf, "RADIUS_UPPER": math.inf, "CAN_FLAT_RATIO": 0.0,
                                           "BOX_ROUND_RMS": -1.0}),
             **{f"seed_{n}": (patches, {"fit_plane": _seeded_fit_plane(n)}) for n in range(1, 6)}}


def summarise(metrics: dict) -> dict:
    named, timing = metrics["named"], metrics["timing_ms"]
    return {
        "frames": metrics["frames"]["with_ground_truth"],
        "named_precision": named["precision"], "named": named["named"], "named_right": named["right"],
        "wrong_class": named["wrong_class"], "non_class_named": named["non_class_named"],
        "clutter_named": named["clutter_named"],
        "named_mean_score": named.get("mean_score"), "named_ece": named.get("ece"),
        "object_accuracy": metrics["object_accuracy"],
        "detection_recall": metrics["detection_recall"], "class_recall": named["class_recall"],
        "class_objects": named["class_objects"], "ground_truth": metrics["objects"]["ground_truth"],
        "box_iou_median": metrics["box_iou"]["median"],
        "ece": metrics["thresholds"]["ece"],
        "non_class_objects": metrics["non_class_objects"]["ground_truth"],
        "non_class_unknown": metrics["non_class_objects"]["labelled_unknown"],
        "ms": {stage: {"p50": v["p50"], "p99": v["p99"]} for stage, v in timing.items()},
        "per_class": {c: v for c, v in metrics["per_class"].items()},
        # the pooled figures of doc/real_frames.md (doc/_ext/generated.py) add these up over the bags
        "confusion": {k: metrics["confusion"][k] for k in ("labels", "matrix")},
    }


def named_scores(report_dir: Path) -> list[list]:
    """[score, right] of every detection that carries a class name (`named_summary`'s), from
    replay-eval's objects.jsonl: pooled over the bags, they give one reliability table."""
    records = [json.loads(line) for line in (report_dir / "objects.jsonl").read_text().splitlines()]
    return [[round(float(r["score"]), 4), r["outcome"] == "correct"] for r in named_records(records)]


def fmt(v, pct=False) -> str:
    if v is None:
        return "-"
    return f"{100 * v:.1f}%" if pct else f"{v:.1f}" if isinstance(v, float) else str(v)


def fmt2(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", nargs="+", default=[], help="labelled bags of real frames")
    ap.add_argument("--render", nargs="*", default=[], help="rendered bags (make-bag) to print beside them")
    ap.add_argument("--model", help="model file; default: the embedded default")
    ap.add_argument("--settings", default="sizes,after", help=f"comma-separated, of {', '.join(SETTINGS)}")
    ap.add_argument("--repeat", type=int, default=1,
                    help="passes over each bag per setting: the figures are the first pass's, the times "
                         "are pooled over all passes (17 frames give a p99 of one frame)")
    ap.add_argument("--out", default="bench/results/real_frames_cpu.json")
    args = ap.parse_args()
    settings = args.settings.split(",")
    for s in settings:
        if s not in SETTINGS:
            ap.error(f"unknown setting {s!r}")
    model = load_model(args.model, device="cpu") if args.model else get_default_model("cpu")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind, bags in (("real", args.real), ("render", args.render)):
            for bag in bags:
                for s in settings:
                    t0 = time.perf_counter()
                    module, values = CONSTANTS.get(s, (object_sizes, {}))
                    with mock.patch.dict(vars(module), values):
                        runs = [replay_eval(bag, model, Path(tmp) / f"{Path(bag).name}-{s}-{r}",
                                            (COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC), parameters=SETTINGS[s],
                                            report=False, quiet=True) for r in range(max(1, args.repeat))]
                    rows.append({"kind": kind, "bag": str(bag), "setting": s, **summarise(runs[0]),
                                 "named_scores": named_scores(Path(tmp) / f"{Path(bag).name}-{s}-0"),
                                 "frame_ms": [f["stages_ms"]["total"] for m in runs for f in m["per_frame"]
                                              if f.get("stages_ms")],
                                 "wall_s": time.perf_counter() - t0})
    head = ("| bag | setting | named precision | named (right) | wrong class / non-class / clutter named | "
            "names: mean score / ECE | accuracy | recall (class objects) | ECE | ms p50 seg / total | ms p99 total |")
    print(head)
    print("|---" * (head.count("|") - 1) + "|")
    for r in rows:
        ms = r["ms"]
        print(f"| {r['kind']}: {Path(r['bag']).name} ({r['frames']} frames) | {r['setting']} "
              f"| {fmt(r['named_precision'], True)} | {r['named']} ({r['named_right']}) "
              f"| {r['wrong_class']} / {r['non_class_named']} / {r['clutter_named']} "
              f"| {fmt2(r['named_mean_score'])} / {fmt2(r['named_ece'])} "
              f"| {fmt(r['object_accuracy'], True)} | {fmt(r['detection_recall'], True)} ({fmt(r['class_recall'], True)}) "
              f"| {fmt2(r['ece'])} | {ms['segmentation']['p50']:.1f} / {ms['total']['p50']:.1f} "
              f"| {ms['total']['p99']:.1f} |")
    for s in settings:  # all real bags together: what the closing notes quote
        real = [r for r in rows if r["kind"] == "real" and r["setting"] == s]
        if len(real) > 1:
            named, right = sum(r["named"] for r in real), sum(r["named_right"] for r in real)
            wrong = [sum(r[k] for r in real) for k in ("wrong_class", "non_class_named", "clutter_named")]
            mean = sum(r["named_mean_score"] * r["named"] for r in real if r["named"]) / named if named else None
            found = round(sum(r["detection_recall"] * r["ground_truth"] for r in real))
            total = sum(r["ground_truth"] for r in real)
            print(f"all {len(real)} real bags, {s}: found {found} of {total}; "
                  f"named precision {fmt(right / named if named else None, True)} "
                  f"({right} of {named}); wrong class / non-class / clutter {wrong[0]} / {wrong[1]} / {wrong[2]}; "
                  f"the names' mean score {fmt2(mean)}")
    for s in settings:  # per-frame processing time, pooled over the passes
        for kind in ("real", "render"):
            ms = [v for r in rows if r["kind"] == kind and r["setting"] == s for v in r["frame_ms"]]
            if ms:
                print(f"{kind} frames, {s}, {len(ms)} frame passes: total p50 {np.percentile(ms, 50):.1f} ms, "
                      f"p99 {np.percentile(ms, 99):.1f} ms")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": platform.processor() or platform.machine(), "model": model.meta.get("name"),
                               "code": git_commit(exclude=("bench/results",)), "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
