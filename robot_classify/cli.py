"""`robot-classify`: train, evaluate and inspect models offline, generate data, replay bags.

Each subcommand is a small function over the ROS-free core; errors a user can cause (bad
paths, corrupt files, bad parameters) print one `error:` line and exit with status 2.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from .allocator import keep_frame_buffers

log = logging.getLogger("robot_classify")


def _csv(kind: Callable = str) -> Callable[[str], list]:
    return lambda s: [kind(v) for v in s.split(",") if v]


def _add_model_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model file (.safetensors); default: the embedded default model")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])


def _load_model(args: argparse.Namespace):
    from .default_model import get_default_model
    from .model_io import load_model

    if args.model:
        return load_model(args.model, device=args.device)
    return get_default_model(device=args.device, quiet=args.quiet)


def cmd_train(args: argparse.Namespace) -> int:
    from .datasets import get_split, load_dataset
    from .model_io import save_model
    from .training import TrainOptions, train_model

    splits = load_dataset(args.dataset, args.format)
    opts = TrainOptions(classifier=args.classifier, k=args.k, metrics=args.metric, features=args.features,
                        pca_dims=args.pca, tune=args.tune, folds=args.folds, val_fraction=args.val_fraction,
                        loss=args.loss, regs=args.reg, lrs=args.lr, epochs=args.epochs, device=args.device,
                        seed=args.seed, quiet=args.quiet, name=Path(args.out).stem)
    train = get_split(splits, "train")
    val = splits.get("val") if args.tune == "val" else None
    model = train_model(train, opts, val)
    save_model(model, args.out)
    if model.meta.get("tuning"):
        from .tuning import TuneResult

        result = TuneResult(model.meta["tuning"]["strategy"], model.meta["tuning"]["rows"])
        print(result.table())
        print(f"best: {result.best['params']}  ({result.strategy} accuracy {result.best['mean']:.4f})")
    print(f"saved {model.kind} model ({len(train)} training patches, {len(model.class_names)} classes) to {args.out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .datasets import get_split, load_dataset
    from .metrics import classification_report

    model = _load_model(args)
    data = get_split(load_dataset(args.dataset, args.format), args.split)
    if data.class_names != model.class_names:
        missing = set(data.class_names) - set(model.class_names)
        if missing:
            raise ValueError(f"dataset classes not known to the model: {sorted(missing)}")
        remap = np.array([model.class_names.index(n) for n in data.class_names])
        data.labels = remap[data.labels]
    from tqdm.auto import tqdm

    preds = []
    for s in tqdm(range(0, len(data), 1024), desc="evaluate", disable=args.quiet):
        preds.append(model.predict(data.images[s:s + 1024])[0])
    pred = np.concatenate(preds) if preds else np.zeros(0, np.int64)
    report = classification_report(data.labels, pred, model.class_names)
    report.update({"model": model.meta.get("name"), "split": args.split, "dataset": str(args.dataset)})
    print(f"accuracy {report['accuracy']:.4f} on {report['n']} {args.split} patches")
    for name, r in report["per_class"].items():
        print(f"  {name:<18} precision {r['precision']:.3f} recall {r['recall']:.3f} (n={r['support']})")
    if args.metrics_out:
        Path(args.metrics_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.metrics_out).write_text(json.dumps(report, indent=2))
    if args.plots:
        _write_plots(model, report, Path(args.plots))
    return 0


def _write_plots(model, report: dict, out: Path) -> None:
    from .plots import image_grid, plot_confusion
    from .tuning import TuneResult, plot_knn_curve

    out.mkdir(parents=True, exist_ok=True)
    plot_confusion(np.array(report["confusion"]["matrix"]), model.class_names, out / "confusion.png",
                   f"{model.meta.get('name')}: accuracy {report['accuracy']:.3f}")
    tuning = model.meta.get("tuning") or {}
    if tuning and model.kind == "knn":
        plot_knn_curve(TuneResult(tuning["strategy"], tuning["rows"]), str(out / "cv_curve.png"))
    if model.kind == "linear" and model.classifier.coef_.shape[1] == 32 * 32 * 3:
        t = model.classifier.templates()
        image_grid([[img] for img in t], [model.class_names[c] for c in model.classifier.classes_],
                   out / "templates.png", scale=0.9)
    print(f"plots in {out}")


def cmd_predict(args: argparse.Namespace) -> int:
    from .datasets import read_image, to_patch

    model = _load_model(args)
    patches, names = [], []
    for f in args.images:
        try:
            patches.append(to_patch(read_image(f)))
            names.append(f)
        except ValueError as e:
            print(f"warning: {e}", file=sys.stderr)
    if not patches:
        raise ValueError("no readable images")
    labels, proba = model.predict(np.stack(patches))
    for f, lab, p in zip(names, labels, proba):
        print(f"{f}\t{model.class_names[lab]}\t{p[lab]:.3f}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from .scene_dataset import generate

    splits = generate(args.out, args.scenes, args.seed, with_patches=args.patches, write_scenes=not args.no_scenes,
                      workers=args.workers, test_fraction=args.test_fraction, jitters=args.jitters, quiet=args.quiet)
    print(f"wrote {args.scenes} scenes to {Path(args.out) / 'scenes'}" if not args.no_scenes else "")
    if splits:
        print(f"patch dataset (PROPS layout) in {Path(args.out) / 'patches'}: "
              f"{len(splits['train'])} train / {len(splits['test'])} test patches (test = held-out scenes)")
    return 0


def _segmentation_params(args: argparse.Namespace):
    from .patches import SegmentationParams

    return SegmentationParams(mode=args.mode, padding=args.padding, mask_background=args.mask_background,
                              scale=args.scale)


def cmd_patches(args: argparse.Namespace) -> int:
    import cv2

    from .camera import Intrinsics
    from .datasets import read_image
    from .patches import extract_objects
    from .visualize import draw_objects

    color = read_image(args.color)
    if color.ndim == 2:
        color = cv2.cvtColor(color, cv2.COLOR_GRAY2RGB)
    color = np.ascontiguousarray(color[:, :, :3])
    depth = cv2.imread(args.depth, cv2.IMREAD_UNCHANGED) if args.depth else None
    if args.depth and depth is None:
        raise ValueError(f"{args.depth}: not a readable depth image")
    mask = cv2.imread(args.mask, cv2.IMREAD_UNCHANGED) if args.mask else None
    K = Intrinsics.parse(args.intrinsics) if args.intrinsics else None
    ex = extract_objects(color, depth, K, _segmentation_params(args), instance_mask=mask)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    objects = []
    for o in ex.objects:
        cv2.imwrite(str(out / f"patch_{o.instance:03d}.png"), cv2.cvtColor(o.patch, cv2.COLOR_RGB2BGR))
        objects.append({"instance": o.instance, "bbox": o.bbox_dict(), "centroid": o.centroid_dict(),
                        "pixels": o.pixels})
    doc = {"objects": objects, "ms": round(ex.ms, 2)}
    if ex.warning:
        doc["warning"] = ex.warning
        print(f"warning: {ex.warning}", file=sys.stderr)
    (out / "objects.json").write_text(json.dumps(doc, indent=2))
    overlay = draw_objects(color, [(o.bbox, f"#{o.instance}", None) for o in ex.objects])
    cv2.imwrite(str(out / "overlay.png"), cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
    print(f"{len(objects)} objects in {ex.ms:.1f} ms -> {out / 'objects.json'}")
    return 0


def cmd_eval_patches(args: argparse.Namespace) -> int:
    from .patch_eval import evaluate_scenes

    root = Path(args.scenes)
    folders = sorted(p.parent for p in root.glob("*/scene.json")) or sorted(p.parent for p in root.glob("*/*/scene.json"))
    if args.limit:
        folders = folders[: args.limit]
    model = None if args.no_model else _load_model(args)
    report = evaluate_scenes(folders, _segmentation_params(args), model, quiet=args.quiet)
    print(json.dumps({k: v for k, v in report.items() if k != "counts"}, indent=2))
    if args.metrics_out:
        Path(args.metrics_out).write_text(json.dumps(report, indent=2))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job on the embedded default: model -> demo bag -> live node -> labels -> report."""
    import time

    from .bags import COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC, write_bag
    from .default_model import default_model_path
    from .replay_eval import replay_eval
    from .scene_dataset import render_scenes

    t0 = time.perf_counter()
    model = _load_model(args)
    model_file = args.model or str(default_model_path())
    out = Path(args.out)
    bag = out / "demo_bag"
    if out.exists():
        import shutil

        shutil.rmtree(out)
    out.mkdir(parents=True)
    print(f"[{time.perf_counter() - t0:5.0f} s] model ready: {model.meta.get('name')}; writing a {args.frames}-frame "
          f"demo bag of scenes it never saw -> {bag}")
    write_bag(bag, render_scenes(args.frames, 900, workers=2, quiet=True))
    topics = (COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC)
    try:
        import rclpy  # noqa: F401
    except ImportError:
        print("rclpy is not installed (pip install -e '.[ros]'): skipping the live node part")
    else:
        print(f"[{time.perf_counter() - t0:5.0f} s] starting classify_node and replaying the bag into it")
        _demo_live(model_file, bag, topics, args.device)
    print(f"[{time.perf_counter() - t0:5.0f} s] replay-eval on the same bag (the node's processing, offline)")
    m = replay_eval(bag, model, out / "report", topics, quiet=True)
    print(f"object accuracy {m['object_accuracy']:.1%}  detection recall {m['detection_recall']:.1%}  "
          f"precision {m['detection_precision']:.1%}  latency p50 {m['latency_ms']['p50']:.0f} ms  "
          f"p99 {m['latency_ms']['p99']:.0f} ms over {m['frames']['processed']} frames")
    print(f"[{time.perf_counter() - t0:5.0f} s] report: {out / 'report' / 'report.html'}")
    return 0


def _demo_live(model_file: str, bag: Path, topics: tuple[str, str, str], device: str, show: int = 5) -> None:
    import os
    import subprocess
    import threading

    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")  # the demo talks to itself only
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    from .replay import replay

    node_proc = subprocess.Popen(
        [sys.executable, "-m", "robot_classify.node", "--ros-args", "-p", f"model_path:={model_file}",
         "-p", "qos.reliability:=reliable", "-p", f"device:={device}", "-r", f"color/image_raw:={topics[0]}",
         "-r", f"depth/image_raw:={topics[1]}", "-r", f"color/camera_info:={topics[2]}"])
    rclpy.init()
    listener = rclpy.create_node("robot_classify_demo")
    shown = []

    def on_labels(msg: String) -> None:
        if len(shown) < show:
            shown.append(msg.data)
            doc = json.loads(msg.data)
            objs = ", ".join(f"{o['label']} {o['score']:.2f}" for o in doc["objects"])
            print(f"  /object_labels stamp {doc['header']['stamp']['sec']}.{doc['header']['stamp']['nanosec']:09d}: "
                  f"{objs}")

    listener.create_subscription(String, "/object_labels", on_labels,
                                 QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE))
    ex = SingleThreadedExecutor()
    ex.add_node(listener)
    threading.Thread(target=ex.spin, daemon=True).start()
    try:
        deadline = time.time() + 120
        while listener.count_publishers("/object_labels") == 0 and time.time() < deadline:
            if node_proc.poll() is not None:
                raise RuntimeError("classify_node exited early")
            time.sleep(0.2)
        replay(bag, rate=0.2, keep_stamps=True, topics=list(topics))
        time.sleep(1.0)
    finally:
        node_proc.terminate()
        node_proc.wait(10)
        ex.shutdown()
        listener.destroy_node()
        rclpy.try_shutdown()


def _topics(args: argparse.Namespace) -> tuple[str, str, str]:
    from .bags import COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC

    if not args.topics:
        return COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC
    parts = args.topics.split(",")
    if len(parts) != 3:
        raise ValueError("--topics takes COLOR,DEPTH,CAMERA_INFO")
    return parts[0], parts[1], parts[2]


def cmd_make_bag(args: argparse.Namespace) -> int:
    from .bags import write_bag
    from .scene_dataset import render_scenes

    out = Path(args.out)
    if out.exists():
        raise ValueError(f"{out} exists; choose a new path (bags are never overwritten)")
    write_bag(out, render_scenes(args.scenes, args.seed, args.workers, args.quiet), args.storage)
    print(f"wrote {args.scenes} frames ({args.storage}) to {out}")
    return 0


def cmd_replay_eval(args: argparse.Namespace) -> int:
    from .replay_eval import replay_eval

    model = _load_model(args)
    m = replay_eval(args.bag, model, args.report, _topics(args), _segmentation_params(args), args.ground_truth,
                    args.min_score, quiet=args.quiet)
    print(f"object accuracy {m['object_accuracy']:.3f}  detection recall {m['detection_recall']:.3f}  "
          f"precision {m['detection_precision']:.3f}  latency p50 {m['latency_ms']['p50']:.1f} ms "
          f"p99 {m['latency_ms']['p99']:.1f} ms  frames {m['frames']['processed']}/{m['frames']['pairs']}")
    print(f"report: {Path(args.report) / 'report.html'}")
    return 0


def cmd_bag_to_dataset(args: argparse.Namespace) -> int:
    from .replay_eval import bag_to_dataset

    counts = bag_to_dataset(args.bag, _load_model(args), args.out, _topics(args), _segmentation_params(args),
                            args.ground_truth, args.split_by_time, args.quiet)
    for k, v in sorted(counts.items()):
        print(f"  {k}: {v}")
    print(f"image-folder dataset in {args.out} (train it with: robot-classify train --dataset {args.out} ...)")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from .replay import replay

    n = replay(args.bag, args.rate, args.loop, args.qos, args.keep_stamps)
    print(f"published {n} messages")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .datasets import FORMATS
    from .distances import METRICS
    from .features import FEATURE_KINDS

    parser = argparse.ArgumentParser(prog="robot-classify", description=__doc__.splitlines()[0])
    parser.add_argument("--quiet", action="store_true", help="no progress bars or info logs")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a kNN or linear model from a dataset")
    p.add_argument("--dataset", required=True)
    p.add_argument("--format", default="auto", choices=FORMATS)
    p.add_argument("--classifier", default="knn", choices=["knn", "linear"])
    p.add_argument("--k", default="auto", help="auto (tuned over 1..15) or a number")
    p.add_argument("--metric", type=_csv(), default=["l2"], help=f"one or a comma list of {METRICS}")
    p.add_argument("--features", type=_csv(), default=["hog_color"], help=f"one or a comma list of {FEATURE_KINDS}")
    p.add_argument("--pca", type=int, default=0, help="reduce features to this many PCA dims (0 = off)")
    p.add_argument("--tune", default="cv", choices=["cv", "val", "none"])
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--loss", default="softmax", choices=["svm", "softmax"])
    p.add_argument("--reg", type=_csv(float), default=None, help="L2 strength(s), comma list to tune")
    p.add_argument("--lr", type=_csv(float), default=None, help="learning rate(s), comma list to tune")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="accuracy, per-class metrics and plots on a dataset split")
    _add_model_arg(p)
    p.add_argument("--dataset", required=True)
    p.add_argument("--format", default="auto", choices=FORMATS)
    p.add_argument("--split", default="test")
    p.add_argument("--metrics-out")
    p.add_argument("--plots")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="label and score for each image")
    _add_model_arg(p)
    p.add_argument("images", nargs="+")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("demo", help="default model -> demo bag -> live classify_node -> /object_labels -> report")
    _add_model_arg(p)
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--out", default="demo_out")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("generate", help="render RGB-D tabletop scenes (pybullet) and optionally a patch set")
    p.add_argument("--out", required=True)
    p.add_argument("--scenes", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--patches", action="store_true", help="also write a PROPS-layout 32x32 patch dataset")
    p.add_argument("--no-scenes", action="store_true", help="do not write the scene images (patches only)")
    p.add_argument("--jitters", type=int, default=2, help="crops per object (the first unjittered)")
    p.add_argument("--test-fraction", type=float, default=0.2, help="share of whole scenes held out for test")
    p.add_argument("--workers", type=int, default=2)
    p.set_defaults(func=cmd_generate)

    def seg_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--mode", default="depth", choices=["depth", "mask", "full"])
        p.add_argument("--padding", type=float, default=0.15)
        p.add_argument("--no-mask-background", dest="mask_background", action="store_false",
                       help="keep the background in crops (models trained here expect it greyed out)")
        p.add_argument("--scale", type=int, default=1, help="segment at 1/scale resolution (2 = faster)")

    p = sub.add_parser("patches", help="find objects in one RGB-D frame; write crops, objects.json, overlay")
    p.add_argument("--color", required=True)
    p.add_argument("--depth", help="16-bit PNG, millimetres (needed in depth mode)")
    p.add_argument("--intrinsics", help="FX,FY,CX,CY")
    p.add_argument("--mask", help="instance-id image for --mode mask")
    seg_args(p)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_patches)

    p = sub.add_parser("eval-patches", help="recall / precision / centroid error (+ labels) on generated scenes")
    p.add_argument("--scenes", required=True, help="folder holding scene folders (scene.json, color/depth/mask.png)")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--no-model", action="store_true", help="measure extraction only")
    _add_model_arg(p)
    seg_args(p)
    p.add_argument("--metrics-out")
    p.set_defaults(func=cmd_eval_patches)
    def bag_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--bag", required=True)
        p.add_argument("--topics", help="COLOR,DEPTH,CAMERA_INFO (default: realsense2_camera names)")
        p.add_argument("--ground-truth", help="JSON-lines sidecar of ground truth keyed by stamp")
        _add_model_arg(p)
        seg_args(p)

    p = sub.add_parser("make-bag", help="a ROS 2 bag of rendered RGB-D frames with ground truth")
    p.add_argument("--out", required=True)
    p.add_argument("--storage", default="mcap", choices=["mcap", "sqlite3"])
    p.add_argument("--scenes", type=int, default=30)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workers", type=int, default=2)
    p.set_defaults(func=cmd_make_bag)

    p = sub.add_parser("replay-eval", help="run the node's processing over a bag; metrics + HTML report")
    bag_args(p)
    p.add_argument("--min-score", type=float, default=0.5)
    p.add_argument("--report", required=True)
    p.set_defaults(func=cmd_replay_eval)

    p = sub.add_parser("bag-to-dataset", help="label the node's crops from a bag's ground truth; image folders")
    bag_args(p)
    p.add_argument("--out", required=True)
    p.add_argument("--split-by-time", type=float, default=0.8)
    p.set_defaults(func=cmd_bag_to_dataset)

    p = sub.add_parser("replay", help="publish a bag through rclpy with its original timing")
    p.add_argument("--bag", required=True)
    p.add_argument("--rate", type=float, default=1.0)
    p.add_argument("--loop", action="store_true")
    p.add_argument("--qos", default="reliable", choices=["reliable", "best_effort"])
    p.add_argument("--keep-stamps", action="store_true")
    p.set_defaults(func=cmd_replay)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    keep_frame_buffers()
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    from .model_io import ModelFormatError

    try:
        return int(args.func(args) or 0)
    except (ValueError, ModelFormatError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
