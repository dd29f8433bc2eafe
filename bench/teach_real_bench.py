"""Teaching on real views, measured. Not a test.

A team's first move after installing is `~/teach`: show the robot its own objects. This bench
asks what that buys on real RGB-D frames of the real YCB products. Each class is taught from
the views that one (or a few) real frames give, through the node's own teaching code
(`runtime.teaching.Teacher`, fed by `FrameProcessor` results: what `~/teach` and `robot-classify
teach --bag --select X,Y` do), and the taught model is then scored by `replay-eval` (the node's
processing, `evaluation.replay_eval`) on the other real frames.

Teaching one object from one frame: the node segments the frame; the segment matched to the
object's ground-truth box (IoU >= 0.5, as replay-eval matches) is selected by a pixel of its own
mask (the mask pixel nearest the mask's centroid), as a user would click it; one request per
frame, `views` 1, so each frame adds the crop and the node's extra examples (re-cuts, partial
views, white-balance copies, mirror images: 14 examples per view at the default parameters).
An object the segmenter does not find cannot be taught from that frame (as on the robot).

Protocols (every one scores replay-eval's records with the taught objects left out):
  draws K      for each class, K of the frames it appears in, drawn at random (`--draws` times);
               score every other object of every frame. An object is left out of the scoring
               when it is one the class was taught from, or the same object in a near-duplicate
               frame (`--same-scene`, default uoc/2=uoc/3 and ycbv/0=ycbv/1). A class seen in
               fewer frames than K+1 is taught from all but one of them where it can, else from
               its only frame (then it competes but has nothing left to score).
  lofo         leave one frame out: each frame (with its near-duplicate) is scored after every
               class was taught from all of its other frames; the most views per class there are.
  cross SRC    one frame per class drawn from source SRC's frames only (`--draws` times), and
               `all`: every frame of SRC; scored on the frames of the other sources alone
               (another camera, table and room).

Variants: `add` teaches into the model's own class of that name (the embedded default already
has the ten YCB classes, learnt from renders; what `teach --label cracker_box` does), `replace`
first forgets the rendered class (`~/forget cracker_box`) and then teaches it: only real views
are left for it. `unknowns` is `add`, and then every other segment the node finds in the
teaching frames (distractors, clutter) is taught as `unknown`, as a user would click what the
node keeps naming; the teaching frames (and their near-duplicates) are then left out of the
scoring whole; `replace_unknowns` does both. Beside every taught figure, the untaught model
on the same records.

    python bench/teach_real_bench.py --bags real_uoc real_posecnn real_ycbv real_graspnet \
        [--models default,/path/cnn_color.safetensors,...] [--variants add,replace,unknowns] \
        [--protocols draws1,draws2,draws3,lofo,cross] [--draws 4] [--out bench/results/teach_real_cpu.json]

Bags: `robot-classify import-dataset FOLDER --out real_SOURCE --class-map class_map.yaml`; the
frame key is SOURCE/i (SOURCE: the bag's folder name without `real_`, i: the frame's place in
the bag). The real frames are never committed; the results file holds only the figures.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # measure this checkout's code, not whatever robot_classify is installed

from robot_classify.data.bags import COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC, read_frames, read_ground_truth  # noqa: E402
from robot_classify.data.matching import match_boxes  # noqa: E402
from robot_classify.evaluation.replay_eval import replay_eval  # noqa: E402
from robot_classify.evaluation.run_context import git_commit  # noqa: E402
from robot_classify.evaluation.replay_metrics import named_summary  # noqa: E402
from robot_classify.learn.model import is_negative  # noqa: E402
from robot_classify.learn.model_io import load_model  # noqa: E402
from robot_classify.runtime.default_model import default_model_path  # noqa: E402
from robot_classify.runtime.frame_processor import FrameProcessor, FrameSkipped  # noqa: E402
from robot_classify.runtime.parameters import check_parameters, read_params_file  # noqa: E402
from robot_classify.runtime.teaching import Teacher  # noqa: E402

TOPICS = (COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC)


@dataclass
class Frame:
    key: str  # SOURCE/i
    source: str
    bag: str
    stamp_ns: int
    msgs: tuple  # colour, depth, info messages, as read from the bag
    gt: list  # ObjectResult ground truth


def load_frames(bags: list[str]) -> list[Frame]:
    frames = []
    for bag in bags:
        source = Path(bag).name.removeprefix("real_")
        gt = read_ground_truth(bag)
        order = {s: i for i, s in enumerate(sorted(gt))}
        for f in read_frames(bag, TOPICS):
            if f.stamp_ns in gt:
                frames.append(Frame(f"{source}/{order[f.stamp_ns]}", source, bag, f.stamp_ns,
                                    (f.color, f.depth, f.info), list(gt[f.stamp_ns].objects)))
    return frames


def mask_pixel(obj) -> tuple[int, int]:
    """A pixel of the segment's own mask, the one nearest its centroid: where a user clicks."""
    ys, xs = np.nonzero(obj.mask)
    i = int(np.argmin((xs - xs.mean()) ** 2 + (ys - ys.mean()) ** 2))
    return int(obj.bbox[0] + xs[i]), int(obj.bbox[1] + ys[i])


def teachable(frames: list[Frame], processor: FrameProcessor, classes: list[str]
              ) -> tuple[dict[str, list[tuple[str, int]]], dict, dict[str, list]]:
    """Per class, the (frame, ground-truth index) its objects can be taught from: those the node's
    segmentation finds; each one's processed frame and click pixel; and per frame, the processed
    frame and a pixel of each segment that is no class object (a distractor or clutter), what
    a user would teach as `unknown`."""
    by_class: dict[str, list[tuple[str, int]]] = {c: [] for c in classes}
    views, others = {}, {}
    for f in frames:
        try:
            res = processor.process_messages(*f.msgs)
        except FrameSkipped:
            continue
        objs = res.extraction.objects
        is_class = set()
        for i, j, _ in match_boxes([o.bbox for o in objs], [g.bbox for g in f.gt]):
            label = f.gt[j].label
            if label in by_class:
                by_class[label].append((f.key, j))
                views[(f.key, j)] = (res, mask_pixel(objs[i]))
                is_class.add(i)
        others[f.key] = [(res, mask_pixel(o)) for i, o in enumerate(objs) if i not in is_class]
    return by_class, views, others


def teach(model_path: str, plan: dict[str, list[tuple[str, int]]], views: dict, values: dict, replace: bool,
          negatives: list | None = None):
    """A fresh copy of the model with every class of `plan` taught from its views, through
    `Teacher` (the node's `~/teach` code), one request per frame selecting the object's pixel;
    then each of `negatives` ((processed frame, pixel)) taught as `unknown`."""
    model = load_model(model_path, device="cpu")
    processor = FrameProcessor.from_parameters(model, values)
    teacher = Teacher(processor, math.inf, values["teach.jitter_crops"], values["teach.mirror"],
                      values["teach.occluded_crops"], values["teach.white_balance"])
    for label, items in plan.items():
        if replace and label in model.class_names:
            status = teacher.forget(label)
            assert status.state == "done", status.reason
        for key in items:
            result, (x, y) = views[key]
            status = teacher.request(json.dumps({"label": label, "views": 1, "select": {"x": x, "y": y}}))
            assert status.state == "collecting", status.reason
            (status,) = teacher.offer(result)
            assert status.state == "done", status.reason
    for result, (x, y) in negatives or []:
        status = teacher.request(json.dumps({"label": "unknown", "views": 1, "select": {"x": x, "y": y}}))
        (status,) = teacher.offer(result)
        assert status.state == "done", status.reason
    return model


def evaluate(model, bags: list[str], values: dict, tmp: Path) -> list[dict]:
    """replay-eval's per-object records (objects.jsonl) over every bag, each with its frame key."""
    out = []
    for bag in bags:
        d = tmp / f"eval-{time.perf_counter_ns()}"
        replay_eval(bag, model, d, TOPICS, parameters=values, report=False, quiet=True)
        gt = read_ground_truth(bag)
        order = {s: i for i, s in enumerate(sorted(gt))}
        source = Path(bag).name.removeprefix("real_")
        labels = (json.loads(line) for line in (d / "object_labels.jsonl").read_text().splitlines())
        by_stamp = {f["header"]["stamp"]["sec"] * 10 ** 9 + f["header"]["stamp"]["nanosec"]: f["objects"]
                    for f in labels}
        for line in (d / "objects.jsonl").read_text().splitlines():
            r = json.loads(line)
            r["key"] = f"{source}/{order[r['stamp_ns']]}"
            if r["label"] == "unknown" and r["pred_index"] is not None:  # why: the node's own reason
                r["unknown_reason"] = by_stamp[r["stamp_ns"]][r["pred_index"]].get("unknown_reason")
            out.append(r)
    return out


def score(records: list[dict], keep_frames: set[str], left_out: set[tuple[str, str]], taught: set[str]) -> dict:
    """Counts over the kept frames' records, the taught objects left out; `taught_*`: over the
    objects of the classes this run taught (a class seen in one frame only, or only in frames
    of another source, may be left untaught)."""
    rows = [r for r in records if r["key"] in keep_frames
            and (r["key"], r["truth"]) not in left_out]
    named = named_summary(rows)
    matched = [r for r in rows if r["known"] and r["iou"] is not None]
    per_class: dict[str, list[int]] = {}
    for r in matched:
        c = per_class.setdefault(r["truth"], [0, 0])
        c[0] += r["outcome"] == "correct"
        c[1] += 1
    return {"correct": sum(r["outcome"] == "correct" for r in matched), "matched": len(matched),
            "taught_correct": sum(r["outcome"] == "correct" for r in matched if r["truth"] in taught),
            "taught_matched": sum(r["truth"] in taught for r in matched),
            "named": named["named"], "named_right": named["right"], "wrong_class": named["wrong_class"],
            "non_class_named": named["non_class_named"], "clutter_named": named["clutter_named"],
            "class_objects": named["class_objects"], "per_class": per_class,
            "confusions": _confusions(matched)}


def _confusions(matched: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in matched:
        if r["outcome"] != "correct":
            k = f"{r['truth']} -> {r['label']}" + (f" ({r['unknown_reason']})" if r.get("unknown_reason") else "")
            out[k] = out.get(k, 0) + 1
    return out


def add(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        if k == "per_class":
            pc = {c: list(x) for c, x in a.get(k, {}).items()}
            for c, (right, n) in v.items():
                pc.setdefault(c, [0, 0])
                pc[c][0] += right
                pc[c][1] += n
            out[k] = pc
        elif k == "confusions":
            cf = dict(a.get(k, {}))
            for c, n in v.items():
                cf[c] = cf.get(c, 0) + n
            out[k] = cf
        else:
            out[k] = a.get(k, 0) + v
    return out


def near(key: str, same: dict[str, str]) -> set[str]:
    return {key, *([same[key]] if key in same else [])}


def left_out_of(plan: dict, same: dict[str, str]) -> set[tuple[str, str]]:
    """(frame, class) of the taught objects, and of the same object in a near-duplicate frame.
    By class, not by index: a YCB product is in a frame once, and replay-eval numbers only the
    objects at least half visible."""
    return {(k, label) for label, items in plan.items() for key, _ in items for k in near(key, same)}


def plans(protocol: str, by_class: dict, frames: list[Frame], same: dict[str, str], draws: int, rng: random.Random):
    """(name of the figure it adds to, plan, frames scored) for each run of one protocol."""
    all_keys = {f.key for f in frames}
    if protocol.startswith("draws"):
        k = int(protocol.removeprefix("draws"))
        for _ in range(draws):
            plan = {}
            for c, items in by_class.items():
                if not items:
                    continue
                scenes = {it[0] for it in items}
                take = min(k, max(1, len(scenes) - 1))
                plan[c] = rng.sample(items, take)
            yield protocol, plan, all_keys
    elif protocol == "lofo":
        taught_in = {it[0] for items in by_class.values() for it in items}
        groups = sorted({tuple(sorted(near(f.key, same))) for f in frames if f.key in taught_in})
        rest = tuple(sorted(all_keys - {k for g in groups for k in g}))  # no class object: one run for all
        for g in groups + ([rest] if rest else []):
            held = set(g)
            plan = {c: [it for it in items if it[0] not in held] for c, items in by_class.items()}
            yield protocol, {c: v for c, v in plan.items() if v}, held
    elif protocol.startswith("cross"):
        sources = sorted({f.source for f in frames})
        for src in sources:
            pool = {c: [it for it in items if it[0].split("/")[0] == src] for c, items in by_class.items()}
            pool = {c: v for c, v in pool.items() if v}
            if not pool:
                continue
            scored = {f.key for f in frames if f.source != src}
            yield f"cross_all_from_{src}", pool, scored
            for _ in range(draws):
                yield f"cross_one_from_{src}", {c: [rng.choice(v)] for c, v in pool.items()}, scored


def run_protocol(protocol: str, variant: str, path: str, taught: tuple, frames: list[Frame], base_records: list[dict],
                 values: dict, same: dict[str, str], draws: int, rng: random.Random, tmp: Path) -> dict[str, dict]:
    """Every run of one protocol and variant: teach a fresh model, replay-eval it, add up the
    counts per figure, the untaught model's on the same records beside them."""
    by_class, views, others = taught
    frames_by_key = {f.key: f for f in frames}
    groups: dict[str, dict] = {}
    for gname, plan, scored in plans(protocol, by_class, frames, same, draws, rng):
        taught_frames = sorted({k for v in plan.values() for k, _ in v})
        negatives = None
        if "unknowns" in variant:  # every other segment of the teaching frames
            negatives = [n for k in taught_frames for n in others.get(k, [])]
            scored = scored - {n for k in taught_frames for n in near(k, same)}
        model = teach(path, plan, views, values, variant.startswith("replace"), negatives)
        recs = evaluate(model, sorted({frames_by_key[k].bag for k in scored}), values, tmp)
        left = left_out_of(plan, same)
        s, b = score(recs, scored, left, set(plan)), score(base_records, scored, left, set(plan))
        g = groups.setdefault(gname, {"taught": {}, "untaught": {}, "runs": [], "views_per_class": []})
        g["taught"], g["untaught"] = add(g["taught"], s), add(g["untaught"], b)
        g["runs"].append({"accuracy": [s["correct"], s["matched"]],
                          "named": [s["named_right"], s["named"]],
                          "plan": {c: [f"{k}#{j}" for k, j in v] for c, v in plan.items()}})
        g["views_per_class"].append(float(np.mean([len(v) for v in plan.values()])) if plan else 0.0)
    for g in groups.values():
        accs = [a / n for a, n in (r["accuracy"] for r in g["runs"]) if n]
        g["views_per_class"] = float(np.mean(g["views_per_class"]))
        g["accuracy_per_run_min_max"] = [min(accs), max(accs)] if accs else None
    return groups


def summary(t: dict, u: dict) -> str:
    return (f"accuracy {pct(t['correct'], t['matched'])} (untaught {pct(u['correct'], u['matched'])}), "
            f"taught classes {pct(t['taught_correct'], t['taught_matched'])} "
            f"(untaught {pct(u['taught_correct'], u['taught_matched'])}), "
            f"named precision {pct(t['named_right'], t['named'])} (untaught {pct(u['named_right'], u['named'])})")


def dumps(obj, depth: int = 0, inline_at: int = 6) -> str:
    """JSON indented down to `inline_at` levels, one line each below: a run per line."""
    if depth >= inline_at or not isinstance(obj, (dict, list)) or not obj:
        return json.dumps(obj)
    pad = "\n" + " " * (depth + 1)
    items = ([f"{json.dumps(k)}: {dumps(v, depth + 1)}" for k, v in obj.items()] if isinstance(obj, dict)
             else [dumps(v, depth + 1) for v in obj])
    ends = "{}" if isinstance(obj, dict) else "[]"
    return ends[0] + pad + ("," + pad).join(items) + "\n" + " " * depth + ends[1]


def pct(a: int, n: int) -> str:
    return f"{100 * a / n:.1f}% ({a}/{n})" if n else "- (0)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bags", nargs="+", required=True, help="labelled bags of real frames (import-dataset)")
    ap.add_argument("--models", default="default", help="comma-separated: default or model files (kNN)")
    ap.add_argument("--variants", default="add,replace,unknowns")
    ap.add_argument("--protocols", default="draws1,draws2,draws3,lofo,cross")
    ap.add_argument("--draws", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--same-scene", default="uoc/2=uoc/3,ycbv/0=ycbv/1",
                    help="near-duplicate frames: an object taught in one is not scored in the other")
    ap.add_argument("--out", default="bench/results/teach_real_cpu.json")
    ap.add_argument("--params-file", help="node parameters (ROS 2 YAML, as the node reads it), e.g. teach.*: "
                    "what the teaching frames' views add")
    ap.add_argument("--append", action="store_true",
                    help="keep the other models' and runs' figures already in --out (runs of another invocation)")
    args = ap.parse_args()
    same: dict[str, str] = {}
    for pair in filter(None, args.same_scene.split(",")):
        a, b = pair.split("=")
        same[a], same[b] = b, a
    values = check_parameters(read_params_file(args.params_file) if args.params_file else {})
    frames = load_frames(args.bags)
    doc = {"machine": platform.processor() or platform.machine(), "code": git_commit(exclude=("bench/results",)),
           "frames": len(frames), "same_scene": args.same_scene, "draws": args.draws, "seed": args.seed,
           "parameters": {k: values[k] for k in ("min_score", "teach.jitter_crops", "teach.occluded_crops",
                                                 "teach.white_balance", "teach.mirror")}, "models": {}}
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        for name in args.models.split(","):
            path = str(default_model_path()) if name == "default" else name
            base = load_model(path, device="cpu")
            classes = [c for c in base.class_names if not is_negative(c)]
            taught = teachable(frames, FrameProcessor.from_parameters(base, values), classes)
            all_objects = {c: sum(g.label == c for f in frames for g in f.gt) for c in classes}
            t0 = time.perf_counter()
            base_records = evaluate(base, args.bags, values, tmp)
            everything = score(base_records, {f.key for f in frames}, set(), set())
            mdoc = {"file": Path(path).name, "meta_name": base.meta.get("name"),
                    "teachable": {c: f"{len(v)}/{all_objects[c]}" for c, v in taught[0].items()},
                    "untaught_all_frames": everything, "runs": {}}
            print(f"== {name}: teachable objects (segmented) per class: {mdoc['teachable']}")
            print(f"   untaught, all frames: accuracy {pct(everything['correct'], everything['matched'])}, "
                  f"named precision {pct(everything['named_right'], everything['named'])}")
            for variant in args.variants.split(","):
                for protocol in args.protocols.split(","):
                    rng = random.Random(f"{args.seed}-{protocol}")  # the same draws for every model and variant
                    groups = run_protocol(protocol, variant, path, taught, frames, base_records, values, same,
                                          args.draws, rng, tmp)
                    for gname, g in groups.items():
                        mdoc["runs"][f"{variant}/{gname}"] = g
                        print(f"   {variant:7s} {gname:22s} runs {len(g['runs']):2d} views/class "
                              f"{g['views_per_class']:.1f}: {summary(g['taught'], g['untaught'])}", flush=True)
            mdoc["wall_s"] = time.perf_counter() - t0
            doc["models"][name if name == "default" else Path(name).name] = mdoc
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.append and out.exists():
        old = json.loads(out.read_text())
        for name, mdoc in doc["models"].items():
            if name in old["models"]:
                mdoc["runs"] = {**old["models"][name]["runs"], **mdoc["runs"]}
                mdoc["wall_s"] += old["models"][name].get("wall_s", 0)
        doc["models"] = {**old["models"], **doc["models"]}
    out.write_text(dumps(doc) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
