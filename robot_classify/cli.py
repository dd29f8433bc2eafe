"""`robot-classify`: train, evaluate and inspect models offline, generate data, replay bags.

Each subcommand is a small function over the ROS-free core; errors a user can cause (bad
paths, corrupt files, bad parameters) print one `error:` line and exit with status 2.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import math
import os
import shutil
import shlex
import signal
import sys
import tempfile
import threading
import warnings
import time
from pathlib import Path
from typing import Callable

import numpy as np

from . import __version__
from .runtime.allocator import keep_frame_buffers

TEACH_MAX_VIEWS = 200  # runtime.teaching.MAX_VIEWS, which the CLI does not import to parse (a test ties them)

log = logging.getLogger("robot_classify")


# Option types: a bad value fails while parsing, before any data loads, with one line saying
# what was expected (argparse prints an ArgumentTypeError's message as is).
def _named(parse: Callable, name: str) -> Callable:
    parse.__name__ = name  # what argparse shows if anything but ArgumentTypeError escapes
    return parse


def _int(lo: int, hi: int | None = None) -> Callable[[str], int]:
    span = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer {span}, got {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"must be an integer {span}, got {value}")
        return value

    return _named(parse, f"integer {span}")


def _float(lo: float, hi: float = math.inf, lo_open: bool = False, hi_open: bool = False) -> Callable[[str], float]:
    what = (f"> {lo:g}" if lo_open else f">= {lo:g}") if hi == math.inf else \
        f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number {what}, got {text!r}") from None
        if not math.isfinite(value) or value < lo or value > hi or (lo_open and value == lo) or \
                (hi_open and value == hi):
            raise argparse.ArgumentTypeError(f"must be a number {what}, got {text}")
        return value

    return _named(parse, f"number {what}")


def _k(text: str) -> str:
    """'auto' or a positive integer (kept as text: TrainOptions takes either)."""
    if text != "auto":
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise argparse.ArgumentTypeError(f"must be 'auto' or an integer >= 1, got {text!r}")
    return text


def _csv(item: Callable[[str], object] = str, choices: tuple[str, ...] | None = None) -> Callable[[str], list]:
    """A comma list of at least one item, each parsed by `item` or one of `choices`."""
    def parse(text: str) -> list:
        parts = [v for v in text.split(",") if v]
        if not parts:
            raise argparse.ArgumentTypeError(f"expected one or a comma list of values, got {text!r}")
        bad = [v for v in parts if choices is not None and v not in choices]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(bad)}; choose from {', '.join(choices)}")
        return [item(v) for v in parts]

    return _named(parse, "comma list")


def _topics_arg(text: str) -> tuple[str, str, str]:
    parts = text.split(",")
    if len(parts) != 3 or not all(parts):
        raise argparse.ArgumentTypeError(f"takes COLOR,DEPTH,CAMERA_INFO (three topic names), got {text!r}")
    return parts[0], parts[1], parts[2]


def _add_model_arg(p: argparse.ArgumentParser, params_file: bool = True) -> None:
    """`params_file`: the command also takes --params-file, whose values are the defaults."""
    p.add_argument("--model", help="model file (.safetensors), or 'default' for the embedded default model; "
                                   "default: " + ("the params file's model_path, else " if params_file else "") +
                                   "the embedded default model")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"],
                   help="default: " + ("the params file's, else " if params_file else "") + "auto")


# The segmentation options every command that runs the node's processing takes (`_segmentation_args`),
# and the node parameter each sets
SEGMENTATION_OPTIONS = (("mode", "segmentation.mode"), ("padding", "segmentation.padding"),
                        ("mask_background", "segmentation.mask_background"), ("scale", "segmentation.scale"))


def _node_parameters(args: argparse.Namespace) -> dict:
    """The node's parameters for this run: its params file (`--params-file`, the same YAML
    `ros2 launch ... params_file:=` takes) checked like the node checks it, then the options
    given on the command line on top. What the robot runs, offline."""
    from .runtime.parameters import check_parameters, read_params_file

    if "_node_values" in vars(args):  # read once: its warnings once (the model and the run both ask)
        return dict(args._node_values)
    values = (dict(read_params_file(args.params_file, namespace=getattr(args, "namespace", "/")))
              if getattr(args, "params_file", None) else {})
    for option, name in (*SEGMENTATION_OPTIONS, ("min_score", "min_score"), ("model", "model_path"),
                         ("device", "device")):
        if getattr(args, option, None) is not None:
            values[name] = args.__dict__[option]
    if values.get("model_path") == "default":  # --model default, as replay-eval --compare takes it
        values["model_path"] = ""  # the node's own word for the embedded default
    args._node_values = check_parameters(values)
    return dict(args._node_values)


def _load_model(args: argparse.Namespace):
    from .runtime.default_model import get_default_model
    from .learn.model_io import load_model

    values = _node_parameters(args)
    if values["model_path"]:
        return load_model(values["model_path"], device=values["device"])
    return get_default_model(device=values["device"])


def cmd_train(args: argparse.Namespace) -> int:
    from .data.datasets import get_split, load_dataset
    from .learn.model_io import save_model
    from .learn.training import TrainOptions, train_model

    if Path(args.out).exists():
        raise ValueError(f"{args.out} exists; choose a new path (train never overwrites a model)")
    if args.classifier == "knn" and (args.reg is not None or args.lr is not None):  # not ignored without a word
        raise ValueError("--reg and --lr are the linear classifier's; a kNN has none (--classifier linear)")
    if args.classifier == "linear" and (args.k != "auto" or args.metric != ["l2"]):  # found from outside
        raise ValueError("--k and --metric are the kNN's; a linear classifier has none (--classifier knn)")
    splits = load_dataset(args.dataset, args.format)
    opts = TrainOptions(classifier=args.classifier, k=args.k, metrics=args.metric, features=args.features,
                        pca_dims=args.pca, tune=args.tune, folds=args.folds, val_fraction=args.val_fraction,
                        loss=args.loss, regs=args.reg, lrs=args.lr, max_steps=args.max_steps, solver=args.solver,
                        mirror=args.mirror, device=args.device,
                        seed=args.seed, quiet=args.quiet, name=Path(args.out).stem)
    train = get_split(splits, "train")
    empty = [c for i, c in enumerate(train.class_names) if not (train.labels == i).any()]
    if empty:  # a class only another split holds: listed in the model (~/label_info), never named
        print(f"warning: {', '.join(empty)} {'has' if len(empty) == 1 else 'have'} no example in train/ (only in "
              f"another split): the model lists {'it' if len(empty) == 1 else 'them'} but can never name "
              f"{'it' if len(empty) == 1 else 'them'}", file=sys.stderr)
    negatives = 0
    if args.negatives == "recipe":
        given = len(train)
        train = _with_recipe_negatives(train, args.quiet)
        negatives = len(train) - given
    val = splits.get("val") if args.tune == "val" else None
    if args.tune != "val" and len(splits.get("val", ())):  # found from outside: it had lain unused unsaid
        print(f"note: the dataset's val split ({len(splits['val'])} patches) is not used with --tune {args.tune} "
              "(--tune val tunes on it, then trains on train and val)", file=sys.stderr)
    model = train_model(train, opts, val)
    if negatives:  # where the model's `unknown` examples came from, readable in the file's metadata
        model.meta.setdefault("training", {})["negatives"] = {"source": "recipe", "crops": negatives}
    save_model(model, args.out)
    if model.meta.get("tuning"):
        from .learn.tuning import TuneResult

        result = TuneResult(model.meta["tuning"]["strategy"], model.meta["tuning"]["rows"])
        print(result.table())
        print(f"best: {result.best['params']}  ({result.strategy} accuracy {result.best['mean']:.4f})")
    solver = getattr(model.classifier, "solver_", None)
    cal = model.calibration
    learned, given = model.meta["training"]["n_samples"], len(train) + (len(val) if val is not None else 0)
    print(f"saved {model.kind} model ({len(train)} training patches"
          + (f" and {len(val)} validation patches, the chosen setting trained on both" if val is not None else "")
          + (f", {learned} with their mirror images" if learned > given else "")
          + f", {len(model.known_class_names)} classes"
          + (f" and {len(model.class_names) - len(model.known_class_names)} negative label(s)"
             if len(model.class_names) > len(model.known_class_names) else "")
          + (f", {solver} solver" if solver else "")
          + (f"; calibrated: validation ECE {cal.ece:.3f}, default min_score {cal.min_score:.2f}" if cal else "")
          + f") to {args.out}")
    return 0


def _with_recipe_negatives(train, quiet: bool):
    """`train` plus the recipe's rendered objects of no class as `unknown` (outlier exposure): a
    team's own bag often holds only its objects, and a model that never saw anything else names
    whatever stands on the table (doc/accuracy.md, "A team's own bag without distractors")."""
    try:
        from .sim.default_recipe import recipe_negatives, with_negatives  # renders with pybullet
    except ImportError as e:
        raise ValueError(f"--negatives recipe renders the recipe's clutter once (then cached) and needs the sim "
                         f"extra: pip install -e '.[sim]' ({e})") from None
    negatives, scenes = recipe_negatives(quiet=quiet)
    # At most twice the largest class, as in the recipe (1,155 beside ~700 crops a class): a small
    # team set beside all of them would learn that most things are `unknown`.
    cap = 2 * int(np.bincount(train.labels).max()) if len(train.labels) else len(negatives)
    if len(negatives) > cap:
        keep = np.sort(np.random.default_rng(0).choice(len(negatives), cap, replace=False))
        negatives, scenes = negatives[keep], scenes[keep]
    out = with_negatives(train, negatives, scenes)
    if not quiet:
        print(f"--negatives recipe: {len(negatives)} rendered crops of objects of no class added as 'unknown'")
    return out


EVALUATE_MARKER = ".robot_classify_evaluate"
EVALUATE_PLOTS = ("confusion.png", "reliability.png", "coverage.png", "cv_curve.png", "templates.png")


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Top-1 accuracy over the crops of the model's classes, and the node's answers beside it:
    crops of a negative label (`unknown`, `distractor`: objects of no class, as `bag-to-dataset`
    writes them) have no right class at top-1, and are right when the node would say `unknown`."""
    from .data.datasets import get_split, load_dataset
    from .evaluation.metrics import classification_report, confusion_matrix, shown_rates
    from .learn.model import is_negative
    from .runtime.frame_processor import UNKNOWN, decide_label

    from .evaluation.owned_folder import prepare_owned_folder, refuse_existing

    if args.metrics_out:  # both before the evaluation runs
        refuse_existing(args.metrics_out, "robot-classify evaluate")
    if args.plots:
        if Path(args.plots).exists() and not Path(args.plots).is_dir():
            raise ValueError(f"--plots {args.plots}: is a file; --plots names a folder for the figures")
        prepare_owned_folder(Path(args.plots), EVALUATE_MARKER, EVALUATE_PLOTS, "robot-classify evaluate")
    model = _load_model(args)
    splits = load_dataset(args.dataset, args.format)
    data = get_split(splits, args.split)
    if args.split not in splits:  # found from outside: training accuracy had read as test accuracy
        print(f"warning: {args.dataset} has one split and no {args.split!r} one: evaluating on all of its {len(data)} "
              "patches (if the model was trained on this file, this is its training accuracy)", file=sys.stderr)
    missing = {n for n in data.class_names if not is_negative(n)} - set(model.class_names)
    if missing:
        raise ValueError(f"dataset classes not known to the model: {sorted(missing)}")
    # model class index per crop (-1: a label the model lacks); truth: -1 for a crop of no class
    own = np.array([model.class_names.index(n) if n in model.class_names else -1 for n in data.class_names],
                   np.int64)
    rows = own[data.labels] if len(data.labels) else np.zeros(0, np.int64)
    truth = np.where(np.isin(rows, model.negative_classes), -1, rows)
    real = truth >= 0
    from tqdm.auto import tqdm

    from .evaluation.calibration import expected_calibration_error

    preds, scores, known, winners = [], [], [], []
    for s in tqdm(range(0, len(data), 1024), desc="evaluate", disable=args.quiet):
        p = model.classify(data.images[s:s + 1024])
        preds.append(p.labels)
        scores.append(p.proba[np.arange(len(p.labels)), p.labels])
        known.append(p.known)
        winners.append(p.winner)
    pred = np.concatenate(preds) if preds else np.zeros(0, np.int64)
    won = np.concatenate(winners) if winners else np.zeros(0, np.int64)
    score = np.concatenate(scores) if scores else np.zeros(0)
    familiar = np.concatenate(known) if known else np.zeros(0, bool)
    report = classification_report(truth[real], pred[real], model.class_names)
    if not real.any():  # crops of no class alone: no top-1 accuracy to give
        report["accuracy"] = None
    # The confusion is over what won, a negative label included (the node says `unknown` there),
    # and its rows of the model's negative labels hold the crops of that label: both had been zero
    report["confusion"]["matrix"] = confusion_matrix(rows[rows >= 0], won[rows >= 0],
                                                     len(model.class_names)).tolist()
    report["confusion"]["note"] = ("rows: the crops' labels; columns: the class that won, a negative label "
                                   "included (the node says unknown there); accuracy is top-1 over the real classes")
    report.update({"model": model.meta.get("name"), "split": args.split, "dataset": str(args.dataset)})
    ece = expected_calibration_error(score[real], pred[real] == truth[real])
    min_score = model.default_min_score
    report["calibration"] = {"ece": None if not np.isfinite(ece) else ece, "calibrated": model.calibration is not None,
                             "default_min_score": min_score,
                             "kept_at_default_min_score": float((score[real] >= min_score).mean())
                             if real.any() else None}
    # What the node would publish (min_score, the open-set verdict, negative classes never named)
    named = np.array([decide_label(model.class_names[lab], float(sc), min_score, bool(k)) != UNKNOWN
                      for lab, sc, k in zip(pred, score, familiar)], bool)
    report["answers"] = {"min_score": min_score, "class_crops": int(real.sum()),
                         "class_crops_named_right": int((named & real & (pred == truth)).sum()),
                         "class_crops_unknown": int((~named & real).sum()),
                         "no_class_crops": int((~real).sum()), "no_class_unknown": int((~named & ~real).sum())}
    a = report["answers"]
    scores_are = "calibrated" if model.calibration is not None else "raw scores: a model file without calibration"
    accuracy = "n/a" if report["accuracy"] is None else f"{report['accuracy']:.4f}"
    print(f"accuracy {accuracy} (top-1) on {report['n']} {args.split} patches of the model's classes; "
          f"ECE {'n/a' if not np.isfinite(ece) else f'{ece:.4f}'} ({scores_are}), default min_score {min_score:.2f}")
    no_class = (f"; {a['no_class_unknown']} of {a['no_class_crops']} crops of no class (unknown, distractor) unknown"
                if a["no_class_crops"] else "")
    print(f"as the node answers: {a['class_crops_named_right']} of {a['class_crops']} named right, "
          f"{a['class_crops_unknown']} unknown{no_class}")
    for name, r in report["per_class"].items():
        if not is_negative(name):  # n/a: never predicted, or not in the split (as replay-eval says it)
            precision, recall, _ = shown_rates(r)
            print(f"  {name:<18} precision {precision} recall {recall} (n={r['support']})")
    if args.metrics_out:
        Path(args.metrics_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.metrics_out).write_text(json.dumps(report, indent=2))
    if args.plots:
        _write_plots(model, report, Path(args.plots), score[real], pred[real] == truth[real])
    return 0


def _write_plots(model, report: dict, out: Path, score: np.ndarray, correct: np.ndarray) -> None:
    from .evaluation.calibration import coverage_curve, reliability_bins
    from .evaluation.plots import image_grid, plot_confusion, plot_coverage, plot_reliability
    from .evaluation.plots import plot_knn_curve, plot_linear_curve
    from .learn.features import PATCH_SIZE
    from .learn.tuning import TuneResult

    out.mkdir(parents=True, exist_ok=True)
    plot_confusion(np.array(report["confusion"]["matrix"]), model.class_names, out / "confusion.png",
                   f"{model.meta.get('name')}: accuracy "
                   + ("n/a" if report["accuracy"] is None else f"{report['accuracy']:.3f}"))
    if len(score):  # which min_score to pick: is a score of 0.9 right 90% of the time, and what is kept
        plot_reliability(reliability_bins(score, correct), out / "reliability.png", report["calibration"]["ece"])
        plot_coverage(coverage_curve(score, correct, np.linspace(0, 1, 101)), out / "coverage.png",
                      model.default_min_score)
    tuning = model.meta.get("tuning") or {}
    if tuning:  # the search's own figure: accuracy vs k (kNN) or vs reg (linear)
        result = TuneResult(tuning["strategy"], tuning["rows"])
        (plot_knn_curve if "k" in result.rows[0]["params"] else plot_linear_curve)(result, str(out / "cv_curve.png"))
    templates = getattr(model.classifier, "templates", None)
    if templates is not None and model.classifier.coef_.shape[1] == PATCH_SIZE * PATCH_SIZE * 3:
        t = model.classifier.templates()
        image_grid([[img] for img in t], [model.class_names[c] for c in model.classifier.classes_],
                   out / "templates.png", scale=0.9)
    print(f"plots in {out}")


def cmd_predict(args: argparse.Namespace) -> int:
    """Label crops with the node's rule (`frame_processor.decide_label`): `unknown` below
    min_score or outside the classes, printed with the score that decided it and the top class."""
    from .data.datasets import read_image, to_patch
    from .runtime.frame_processor import UNKNOWN, alternatives, decide_label

    patches, names, errors = [], [], []
    for f in args.images:
        try:
            patches.append(to_patch(read_image(f)))
            names.append(f)
        except (ValueError, FileNotFoundError) as e:
            errors.append(e)
            if len(args.images) > 1:  # the others still get labels
                print(f"warning: {e}", file=sys.stderr)
    if not patches:
        if len(errors) == 1:
            raise errors[0]
        raise ValueError("no readable images")
    model = _load_model(args)
    min_score = _node_parameters(args)["min_score"]
    if min_score < 0:  # the model's own default, as the node takes it
        min_score = model.default_min_score
    pred = model.classify(np.stack(patches))
    rows = []
    for f, lab, p, known in zip(names, pred.labels, pred.proba, pred.known):
        top, score = model.class_names[lab], float(p[lab])
        label = decide_label(top, score, min_score, bool(known))
        reason = None
        if label == UNKNOWN:
            reason = (f"score below min_score {min_score:.3f}" if known else
                      "unlike the classes: farther from the training data than validation allows, or nearer the "
                      "unknown examples")
        order = alternatives(p, model.class_names, 3)
        rows.append({"image": str(f), "label": label, "score": round(score, 6), "top_class": top if score > 0 else None,
                     "unknown_reason": reason,
                     "top_k": [[model.class_names[i], round(float(p[i]), 6)] for i in order]})
    partly = 1 if errors else 0  # as `cat a b` with one missing: the others labelled, and a script told
    if args.format == "json":
        print(json.dumps({"model": str(model.meta.get("name", "model")), "min_score": round(min_score, 6),
                          "predictions": rows}, indent=1))
        return partly
    for r in rows:
        line = f"{r['image']}\t{r['label']}\t{r['score']:.3f}"
        if r["label"] == UNKNOWN:
            top = f"{r['top_class']} {r['score']:.3f}" if r["top_class"] else "none (no class scores above 0)"
            line += f"\ttop class: {top} ({r['unknown_reason']})"
        print(line)
    return partly


def cmd_generate(args: argparse.Namespace) -> int:
    """Rendered into a hidden folder beside --out and renamed when complete: an existing --out
    had mixed two runs' scenes and patches without a word (found from outside), and an interrupted
    run had left part of one."""
    from .sim.scene_dataset import generate

    out = Path(args.out)
    if args.no_scenes and not args.patches:
        raise ValueError("--no-scenes without --patches would write nothing")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} exists and is not an empty folder; choose a new one (generate never writes among "
                         "files)")
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
    try:
        partial.mkdir(parents=True)
        splits = generate(partial, args.scenes, args.seed, with_patches=args.patches,
                          write_scenes=not args.no_scenes, workers=args.workers, test_fraction=args.test_fraction,
                          jitters=args.jitters, quiet=args.quiet)
        if out.is_dir():
            out.rmdir()  # empty (checked above)
        partial.replace(out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    print(f"wrote {args.scenes} scenes to {Path(args.out) / 'scenes'}" if not args.no_scenes else "")
    if splits:
        print(f"patch dataset (PROPS layout) in {Path(args.out) / 'patches'}: "
              f"{len(splits['train'])} train / {len(splits['test'])} test patches (test = held-out scenes)")
    return 0


def _segmentation_params(args: argparse.Namespace):
    from .runtime.parameters import segmentation

    return segmentation(_node_parameters(args))


PATCHES_MARKER = ".robot_classify_patches"
PATCHES_OUTPUTS = ("objects.json", "overlay.png", "patch_*.png")  # crops numbered per run: all of them go


def cmd_patches(args: argparse.Namespace) -> int:
    import cv2

    from .runtime.camera import Intrinsics
    from .data.datasets import read_image, read_image_unchanged
    from .runtime.patches import check_inputs, extract_objects
    from .evaluation.owned_folder import prepare_owned_folder
    from .runtime.visualize import draw_objects

    color = read_image(args.color)
    if color.ndim == 2:
        color = cv2.cvtColor(color, cv2.COLOR_GRAY2RGB)
    color = np.ascontiguousarray(color[:, :, :3])
    depth = read_image_unchanged(args.depth) if args.depth else None
    mask = read_image_unchanged(args.mask) if args.mask else None
    K = Intrinsics.parse(args.intrinsics) if args.intrinsics else None
    params = _segmentation_params(args)
    check_inputs(color, depth, K, params, mask)
    out = Path(args.out)  # the inputs are read and fit together: now the folder (a run into it replaces what it wrote)
    prepare_owned_folder(out, PATCHES_MARKER, PATCHES_OUTPUTS, "robot-classify patches")
    ex = extract_objects(color, depth, K, params, instance_mask=mask)
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
    from .evaluation.patch_eval import evaluate_scenes

    params = _segmentation_params(args)  # a bad params file fails before any scene is read
    root = Path(args.scenes)
    if not root.is_dir():
        raise FileNotFoundError(f"no such folder: {root}")
    folders = sorted(p.parent for p in root.glob("*/scene.json")) or sorted(p.parent for p in root.glob("*/*/scene.json"))
    if not folders:
        raise ValueError(f"{root}: no scene folders (*/scene.json, as `robot-classify generate` writes)")
    if args.limit:
        folders = folders[: args.limit]
    if args.metrics_out:
        from .evaluation.owned_folder import refuse_existing

        refuse_existing(args.metrics_out, "robot-classify eval-patches")
    model = None if args.no_model else _load_model(args)
    report = evaluate_scenes(folders, params, model, quiet=args.quiet)
    print(json.dumps({k: v for k, v in report.items() if k != "counts"}, indent=2))
    if args.metrics_out:
        Path(args.metrics_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.metrics_out).write_text(json.dumps(report, indent=2))
    return 0


DEMO_MARKER = ".robot_classify_demo"
DEMO_OUTPUTS = ("demo_bag", "report")  # what a demo run writes in its folder, besides the marker


def prepare_demo_out(out: Path) -> None:
    """Make `out` ready for a demo run without deleting anything the demo did not write
    (`evaluation.owned_folder`): `--out .` must never cost a user a file."""
    from .evaluation.owned_folder import prepare_owned_folder

    prepare_owned_folder(out, DEMO_MARKER, DEMO_OUTPUTS, "robot-classify demo")


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job on the embedded default: model -> demo bag -> live node -> labels -> report."""
    from .data.bags import COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC, write_bag
    from .runtime.default_model import default_model_path
    from .evaluation.replay_eval import replay_eval
    from .sim.scene_dataset import render_scenes

    t0 = time.perf_counter()
    parameters = _node_parameters(args)  # a bad params file fails before anything is written
    out = Path(args.out)
    prepare_demo_out(out)  # a folder it must not touch fails before anything loads
    bag = out / "demo_bag"
    model = _load_model(args)
    model_file = parameters["model_path"] or str(default_model_path())
    print(f"[{time.perf_counter() - t0:5.0f} s] model ready: {model.meta.get('name')}; writing a {args.frames}-frame "
          f"demo bag of scenes it never saw -> {bag}")
    write_bag(bag, render_scenes(args.frames, 900, workers=2, quiet=True))
    topics = (COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC)
    if importlib.util.find_spec("rclpy") is None:
        print("rclpy is not installed (pip install -e '.[ros]'): skipping the live node part")
    else:
        from .ros.demo_live import run_live

        print(f"[{time.perf_counter() - t0:5.0f} s] starting classify_node and replaying the bag into it")
        labelled, frames = run_live(model_file, bag, topics, parameters["device"], args.params_file)
        print(f"labelled {labelled}/{frames} frames live (/object_labels documents with a stamp from the bag)")
    print(f"[{time.perf_counter() - t0:5.0f} s] replay-eval on the same bag (the node's processing, offline)")
    m = replay_eval(bag, model, out / "report", topics, parameters, quiet=True)
    print(_headline(m))
    print(f"[{time.perf_counter() - t0:5.0f} s] report: {out / 'report' / 'report.html'}")
    return 0


def _skipped_note(skipped: dict[str, int], details: dict[str, str] | None = None) -> str:
    """' (N frames skipped: reason n, ...)' or '': the frames a command could not process, by
    kind, as the node logs them (found from outside: replay-eval said only "frames 5/9")."""
    n = sum(skipped.values())
    if not n:
        return ""
    details = details or {}
    return (f" ({n} frame{'s' * (n != 1)} skipped: "
            + ", ".join(f"{r} {k}" + (f" [{details[r]}]" if r in details else "") for r, k in skipped.items()) + ")")


def _headline(m: dict) -> str:
    """replay-eval's headline in one line, with the report's own figures (`report_html._headline`):
    named precision beside accuracy (what a grasp planner acts on), time over every stage."""
    from .evaluation.report_html import _headline as report_headline

    v = {name: value for name, value, _ in report_headline(m)}
    nm = m["named"]
    return (f"object accuracy {v['object accuracy']}  named precision {v['named precision']} ({nm['right']} of "
            f"{nm['named']} names)  detection recall {v['detection recall']}  precision {v['detection precision']}  "
            f"processing p50 / p99 {v['processing p50 / p99']}  frames {m['frames']['processed']}/{m['frames']['pairs']}"
            + _skipped_note({r: n for r, n in m["frames"]["skipped"].items() if r != "no ground truth"}))


def _topics(args: argparse.Namespace) -> tuple[str, str, str]:
    from .data.bags import COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC

    return args.topics or (COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC)  # checked by the parser (_topics_arg)


def cmd_make_bag(args: argparse.Namespace) -> int:
    from .data.bags import write_bag
    from .sim.scene_dataset import render_scenes

    out = Path(args.out)
    if out.exists():
        raise ValueError(f"{out} exists; choose a new path (bags are never overwritten)")
    if not args.sequence and (args.arc is not None or args.stretches is not None):  # not ignored without a word
        raise ValueError("--arc and --stretches shape a --sequence; give --sequence FRAMES too")
    if args.sequence and args.layout != "apart":
        raise ValueError("--layout crowded renders single views; it does not combine with --sequence")
    args.arc = 60.0 if args.arc is None else args.arc
    args.stretches = 1 if args.stretches is None else args.stretches
    if args.sequence:
        from .sim.scene_dataset import render_sequences

        scenes = render_sequences(args.scenes, args.sequence, args.seed, args.arc, args.stretches, args.quiet)
    else:
        scenes = render_scenes(args.scenes, args.seed, args.workers, args.quiet, layout=args.layout)
    write_bag(out, scenes, args.storage, color_format=args.color_format, depth_format=args.depth_format,
              rate_hz=args.rate)
    images = "raw images" if args.color_format == args.depth_format == "raw" else \
        f"colour {args.color_format}, depth {args.depth_format}"
    what = f"{args.scenes} sequences of {args.sequence} frames" if args.sequence else f"{args.scenes} frames"
    print(f"wrote {what} ({args.storage}, {images}, {args.rate:g} Hz) to {out}")
    return 0


def cmd_import_dataset(args: argparse.Namespace) -> int:
    import difflib

    from .data import bop
    from .data.frames import CLASS_MAP, load_class_map, ycbv_class_map
    from .data.import_dataset import import_dataset
    from .learn.model import is_negative

    one_scene = False
    if args.class_map is None:
        # A draft (`draft-labels`) names its segments by ids of its own: without its map every
        # object would be a distractor of the built-in YCB-V map. One scene of a draft has the map
        # a folder up.
        here = Path(args.input).expanduser().resolve()
        folders = (here, here.parent) if bop.is_scene(here) else (here,)
        found = [f / CLASS_MAP for f in folders if (f / CLASS_MAP).is_file()]
        one_scene = bool(found) and found[0].parent != here  # the other scenes' ids are not in these frames
        if found:
            args.class_map = str(found[0])
            # said under --quiet too: which map labelled the objects is part of the result
            where = "in the folder above this scene" if one_scene else "beside the scenes"
            print(f"class map: {args.class_map} (found {where}; --class-map to choose another)", file=sys.stderr)
    class_map = load_class_map(args.class_map) if args.class_map else None
    counts: dict[str, int] = {}
    scored: dict[str, int] = {}
    n = import_dataset(args.input, args.out, args.format, class_map, args.scenes, args.every, args.max_frames,
                       args.rate, args.storage, progress=not args.quiet, counts=counts, scored=scored)
    if class_map is None:
        print("class map: the built-in YCB-V map (obj_ids 1-6, 8, 9, 14 and 18 are the default's classes; "
              "--class-map for another dataset's ids)", file=sys.stderr)
    listed = ", ".join(f"{v} {k}" for k, v in sorted(counts.items(), key=lambda kv: (kv[0] == "distractor", kv[0])))
    total, hidden = sum(counts.values()), sum(counts.values()) - sum(scored.values())
    print(f"wrote {n} frame{'s' * (n != 1)} ({args.storage}) to {args.out}: {total} objects"
          f"{': ' + listed if listed else ''}"
          + (f" ({hidden} of them less than half in view, which replay-eval does not score)" if hidden > 0 else ""))
    default = set(ycbv_class_map().class_names)  # the embedded default's classes
    other = sorted(c for c in set(counts) - default if not is_negative(c))
    if other:  # a team's own classes, or a typo in the class map: either way, say it before any evaluation
        near = {c: difflib.get_close_matches(c.lower(), sorted(default), n=1, cutoff=0.8) for c in other}
        named = ", ".join(c + (f" (did you mean {near[c][0]}?)" if near[c] else "") for c in other)
        print(f"note: {named} {'is' if len(other) == 1 else 'are'} not among the embedded default model's classes; "
              "it scores them as wrong unless a model taught them is used", file=sys.stderr)
    if class_map is not None and class_map.draft_settings:  # segments cut at other settings match no others
        print(f"note: the draft was made with {class_map.draft_settings}: evaluate and calibrate this bag with the "
              "same options, or the node cuts other segments than the ones labelled", file=sys.stderr)
    unlisted = [] if class_map is None else class_map.unlisted_ids()
    if unlisted and class_map.from_draft:  # a draft's map lists every segment of its draft: this one is another draft's
        print(f"warning: {len(unlisted)} objects have no line in the draft's class map {args.class_map} (ids "
              f"{', '.join(map(str, unlisted[:5]))}{', ...' if len(unlisted) > 5 else ''}): they are distractors. "
              "Is it the class map of another draft?", file=sys.stderr)
    elif unlisted:  # as the spec says, but a forgotten or mistyped id changes the ground truth: say which
        head = list(map(str, unlisted[:8])) + ([f"{len(unlisted) - 8} more"] if len(unlisted) > 8 else [])
        shown = " and ".join([", ".join(head[:-1]), head[-1]]) if len(head) > 1 else head[0]
        print(f"note: the class map does not list the id{'s' * (len(unlisted) > 1)} {shown}: "
              f"{'their objects are' if len(unlisted) > 1 else 'its objects are'} distractors", file=sys.stderr)
    unused = [] if class_map is None or one_scene else class_map.unused_ids()
    if unused:  # a mistyped id leaves its object a distractor; a partial import leaves ids unused too
        shown = ", ".join(map(str, unused[:8])) + (f" and {len(unused) - 8} more" if len(unused) > 8 else "")
        print(f"note: no object in these frames has the class map's id{'s' * (len(unused) > 1)} {shown}",
              file=sys.stderr)
    unused_names = [] if class_map is None or one_scene else class_map.unused_names()
    if unused_names:  # a name key matches YCB-Video's object names only: a typo, or a BOP import
        shown = ", ".join(unused_names[:8]) + (f" and {len(unused_names) - 8} more" if len(unused_names) > 8 else "")
        print(f"note: no object in these frames has the class map's name{'s' * (len(unused_names) > 1)} {shown} "
              "(names match YCB-Video's object names such as 025_mug; BOP objects match by obj_id only)",
              file=sys.stderr)
    if counts and set(counts) == {"distractor"}:  # a typo, or another dataset's ids
        if class_map is None:
            print("warning: the built-in YCB-V map gave no object a class (every object is a distractor): are these "
                  "another dataset's ids? Give its map with --class-map", file=sys.stderr)
        else:
            keys = [k for ks in class_map.unused().values() for k in ks]
            print(f"warning: the class map gave no object a class (every object is a distractor): no object in these "
                  f"frames is {', '.join(map(str, keys))} (ids are BOP's obj_id or YCB-Video's class index, names "
                  "YCB-Video's box.txt names; the map replaces the built-in one)", file=sys.stderr)
    return 0


def cmd_replay_eval(args: argparse.Namespace) -> int:
    from .evaluation.replay_eval import replay_eval
    from .evaluation.report_html import summary_markdown

    if args.report is None:
        if not args.no_report or args.compare:
            raise ValueError("--report FOLDER is required for what replay-eval writes (or --no-report without it, "
                             "to print the figures and keep no file)")
        with tempfile.TemporaryDirectory(prefix="replay-eval-") as tmp:  # the figures printed, no file kept
            args.report, args.keep_report = tmp, False
            return cmd_replay_eval(args)
    run = dict(gallery=args.gallery, quiet=args.quiet, report=not args.no_report, gt_topic=args.ground_truth_topic,
               params_file=args.params_file)
    if args.compare:  # two models (run here, one report each in REPORT/a and REPORT/b) or two report folders
        from .evaluation.compare import COMPARE_OUTPUTS, compare_reports
        from .evaluation.owned_folder import prepare_owned_folder
        from .evaluation.replay_eval import REPORT_MARKER
        from .learn.model_io import load_model
        from .runtime.default_model import get_default_model

        parameters, folders = _node_parameters(args), []
        if args.params_file and all(Path(item).is_dir() for item in args.compare):
            print(f"warning: --params-file {args.params_file} is not used: both reports were made before, with the "
                  "parameters their metrics.json records", file=sys.stderr)
        # Both models loaded (checked) before either runs: a missing or corrupt B had cost a whole
        # run of A, and left A's report behind.
        models = {item: (get_default_model(parameters["device"]) if item == "default"
                         else load_model(item, device=parameters["device"]))
                  for item in args.compare if not Path(item).is_dir()}
        prepare_owned_folder(Path(args.report), REPORT_MARKER, COMPARE_OUTPUTS, "robot-classify replay-eval")
        for tag, item in zip("ab", args.compare):
            if Path(item).is_dir():
                folders.append(Path(item))
                continue
            model = models[item]
            folders.append(Path(args.report) / tag)
            replay_eval(args.bag, model, folders[-1], _topics(args),
                        {**parameters, "model_path": "" if item == "default" else item}, args.ground_truth, **run)
        r = compare_reports(folders[0], folders[1], args.report, bag=args.bag)
        if args.format == "md":
            print((Path(args.report) / "compare.md").read_text(), end="")
            return 0
        a, b = r["names"]
        for key, v in r["headline"].items():
            print(f"{key:20s} {a}: {v['a']:.3f}  {b}: {v['b']:.3f}  ({v['delta'] * 100:+.1f} points)")
        d = r["disagreements"]
        print(f"they label {d['n']} of {r['shared_objects']} objects differently ({a} right on {d['a_right']}, "
              f"{b} on {d['b_right']})")
        print(f"comparison: {Path(args.report) / 'compare.html'}")
        return 0
    m = replay_eval(args.bag, _load_model(args), args.report, _topics(args), _node_parameters(args),
                    args.ground_truth, **run)
    if args.format == "md":
        print(summary_markdown(m), end="")
        return 0
    print(_headline(m))
    c = m["centroid_error_mm"]
    if c["n"]:
        print(f"3D centroid error median {c['median']:.1f} mm  p90 {c['p90']:.1f} mm  max {c['max']:.1f} mm  "
              f"failures {m['failures']['total']}")
    t = m.get("tracking")
    if t and t["accuracy"]["n"] and not t.get("persistent_ids", True):
        print(f"tracks: not measured: the ground truth's instance ids do not persist across frames ({t['id_reuse']}); "
              "tracks need labels that keep one id per object from frame to frame (make-bag --sequence renders "
              "such a bag)")
    elif t and t["accuracy"]["n"]:
        print(f"tracks: accuracy per frame {t['accuracy']['single_frame']:.3f} fused {t['accuracy']['fused']:.3f}  "
              f"id switches {t['id_switches']} ({t['id_switches_per_500'] or 0:.2f} per 500 object-frames)  "
              f"fragmentations {t['fragmentations']}  fused label changes "
              f"{t['label_changes']['fused_per_100'] or 0:.2f} per 100 track-frames"
              + (f"  over {t['sequences']} recordings" if t.get("sequences", 1) > 1 else ""))
    if getattr(args, "keep_report", True):
        print(f"report: {Path(args.report) / ('metrics.json' if args.no_report else 'report.html')}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Refit a model's scores on labelled real frames; the model's examples stay as they are."""
    from .evaluation.recalibrate import recalibrate
    from .learn.model import derived_name
    from .learn.model_io import save_model

    out = Path(args.out)
    if out.exists():
        raise ValueError(f"{out} exists; choose a new path (calibrate never overwrites a model)")
    model = _load_model(args)
    before = model.calibration
    cal, counts = recalibrate(args.bag, model, _topics(args), _node_parameters(args), args.ground_truth_topic,
                              args.ground_truth, args.quiet)
    model.calibration = cal
    model.meta["name"] = derived_name(model.meta.get("name"), "calibrated")
    model.meta["training"] = {**model.meta.get("training", {}),
                              "recalibrated_on": {"bag": Path(args.bag).name, **{k: v for k, v in counts.items()
                                                                                 if k != "bag"}}}
    save_model(model, out)
    was = ("none" if before is None else
           f"ECE {before.ece:.3f} on its own validation data, min_score {before.min_score:.2f}")
    print(f"{counts['detections']} detections in {counts['frames']} frames ({counts['class_objects']} of the "
          f"model's classes, {counts['no_class']} of none; {counts['ruled_out']} more left out: their class "
          f"ruled out by size or pose); the model named {counts['named_before']}, {counts['right_before']} right")
    here = "" if counts["ece_before"] is None else f"ECE {counts['ece_before']:.3f} on these frames before the fit, "
    print(f"calibration: was {was}; {here}now ECE {cal.ece:.3f} on these frames (every name the node would give, "
          f"clutter named counting as wrong), min_score {cal.min_score:.2f} -> {out}")
    print("  both ECEs on these frames are in-sample: to compare models, run replay-eval on other labelled frames "
          "(its ECE is over matched objects of the model's classes)")
    if counts["named_before"] and counts["right_before"] == counts["named_before"]:
        # An unedited draft is the node's own answers: fitted to it, every name scores near 1.
        print(f"warning: all {counts['named_before']} names the model gives on {args.bag} are right, so the fitted "
              "scores say every name is sure. Is its ground truth the node's own answers (a draft from draft-labels "
              "imported without correcting it)? Correct the draft, or calibrate on frames labelled apart from the "
              "model", file=sys.stderr)
    return 0


def cmd_bag_to_dataset(args: argparse.Namespace) -> int:
    from .evaluation.replay_eval import bag_to_dataset
    from .learn.model import is_negative

    counts = bag_to_dataset(args.bag, _load_model(args), args.out, _topics(args), _node_parameters(args),
                            args.ground_truth, args.split_by_time, args.quiet, gt_topic=args.ground_truth_topic)
    for k, v in sorted(counts.items()):
        print(f"  {k}: {v}")
    if not any(k.startswith("test/") for k in counts):
        why = "only one frame has objects" if args.split_by_time < 1 else "--split-by-time 1 puts every frame in train/"
        print(f"  (no test split: {why}; evaluate the model on another bag)")
    else:  # found from outside: a split of 0.67 left test/ without one class object, and `evaluate` said "n/a"
        classes = {part: {c for k in counts if k.startswith(part + "/")
                          for c in [k.split("/", 1)[1]] if c != "_unlabelled" and not is_negative(c)}
                   for part in ("train", "test")}
        missing = sorted(classes["train"] - classes["test"])
        if missing:
            whole = not classes["test"]
            print(f"warning: test/ holds {'no crop of any class' if whole else 'no crop of ' + ', '.join(missing)}"
                  f"{'' if whole else ', which train/ has'}: `evaluate` cannot score "
                  f"{'the model' if whole else 'them'} on this split; its frames come last in the bag "
                  f"(--split-by-time {args.split_by_time:g}). Evaluate on another bag, or raise the test share",
                  file=sys.stderr)
    print(f"image-folder dataset in {args.out} (train it with: robot-classify train --dataset {args.out} ...)")
    return 0


def cmd_draft_labels(args: argparse.Namespace) -> int:
    from .data.frames import CLASS_MAP
    from .evaluation.draft_labels import draft_labels

    out = Path(args.out).expanduser()
    given = [("--no-mask-background" if option == "mask_background" else f"--{option} {getattr(args, option)}")
             for option, _ in SEGMENTATION_OPTIONS if getattr(args, option) is not None]
    made_with = " ".join(([f"--params-file {shlex.quote(str(args.params_file))}"] if args.params_file else []) + given)
    made_with = f"({made_with})" if made_with else ""
    counts = draft_labels(args.bag, _load_model(args), out, _topics(args), _node_parameters(args), args.every,
                          args.max_frames, args.quiet, made_with)
    why = _skipped_note(counts["skipped"])
    scenes = f"{len(args.bag)} BOP scenes" if len(args.bag) > 1 else "a BOP scene"
    print(f"{counts['objects']} segment{'s' * (counts['objects'] != 1)} in {counts['frames']} "
          f"frame{'s' * (counts['frames'] != 1)}{why}, {counts['named']} of them named: {scenes} in {out}")
    print(f"next: correct the names in {out / CLASS_MAP} (ids and outlines in {out / 'overlays'}), then")
    print(f"  robot-classify import-dataset {out} --out BAG --class-map {out / CLASS_MAP}")
    return 0


def cmd_teach(args: argparse.Namespace) -> int:
    """The node's live teaching on recorded data: the same Teacher, fed by the same FrameProcessor."""
    from .runtime.frame_processor import FrameProcessor, FrameSkipped
    from .runtime.teaching import Teacher, check_label

    out = Path(args.out)
    if out.exists():
        raise ValueError(f"{out} exists; choose a new path (teach never overwrites a model)")
    check_label(args.label)  # before the model and the bag load (the teacher checks it again, with the model)
    values = _node_parameters(args)
    processor = FrameProcessor.from_parameters(_load_model(args), values)
    teacher = Teacher(processor, math.inf, values["teach.jitter_crops"], values["teach.mirror"],
                      values["teach.occluded_crops"], values["teach.white_balance"])  # the node's examples
    skipped: dict[str, int] = {}
    details: dict[str, str] = {}  # a reason's first frame and detail
    if args.images:
        for option, value, picks in (("--frames", args.frames, "frames"), ("--select", args.select, "an object")):
            if value:  # not ignored without a word
                raise ValueError(f"{option} picks {picks} of a --bag; with --images every crop is a view "
                                 "(--views N: the first N)")
        status = teacher.add_views(args.label, _crops_from_folder(Path(args.images), args.views))
    else:
        from .data.bags import read_frames
        from .runtime.teaching import parse_teach_request, select_object

        start, stop = args.frames or (0, None)
        views = args.views or (10 if stop is None else min(10, stop - start))
        request = json.dumps({"label": args.label, "views": views, "select": args.select or "center"})
        status = teacher.request(request)
        where = parse_teach_request(request).select if status.state == "collecting" else None  # as the teacher reads it
        frames, index = 0, -1
        for index, frame in enumerate(read_frames(args.bag, _topics(args), need_info=processor.params.mode == "depth")):
            if status.state != "collecting" or (stop is not None and index >= stop):
                break
            if index < start:
                continue
            frames += 1
            try:
                result = processor.process_messages(frame.color, frame.depth, frame.info)
            except FrameSkipped as e:  # counted, and said with the outcome: a failed teach said only "0/1 views"
                skipped[e.reason] = skipped.get(e.reason, 0) + 1
                details.setdefault(e.reason, f"frame {index}: {e.detail}")
                continue
            taken = status.views
            for status in teacher.offer(result):
                if not args.quiet and status.views > taken:  # which frame and object gave the view
                    h, w = result.color.shape[:2]
                    x, y, bw, bh = result.extraction.objects[select_object(result.extraction.objects, where, w,
                                                                           h)].bbox
                    print(f"  view {status.views}/{status.views_wanted}: frame {index}, the object in box "
                          f"x {x}, y {y}, {bw}x{bh} px")
        if status.state == "collecting":
            status = teacher.cancel(f"the frames ended after {frames} of them{_skipped_note(skipped, details)}"
                                    if frames or not args.frames else f"the bag has no frame {start} (it has {index + 1})")
    if status.state != "done":
        fewer = 0 < status.views < status.views_wanted  # a short bag: say how to take the views it has
        raise ValueError(f"teaching {args.label!r} failed: {status.reason}"
                         + (f"; --views {status.views} takes the views there are" if fewer else ""))
    teacher.save(out)
    views = f"{status.views} view{'s' * (status.views != 1)}"
    print(f"taught {status.label!r}: {views}, {status.n_samples} examples of it; {len(status.known_classes)} classes "
          f"-> {out}")
    if status.reason:  # what teaching took in the last view's frame
        print(f"note: {status.reason}", file=sys.stderr)
    if skipped:
        print(f"note: not every frame could be used{_skipped_note(skipped, details)}", file=sys.stderr)
    return 0


def _crops_from_folder(folder: Path, limit: int | None):
    """Every image in `folder` (sorted by name), resized to the model's patch like the loaders do."""
    from .data.datasets import IMAGE_SUFFIXES, read_image, to_patch

    if not folder.is_dir():
        raise FileNotFoundError(f"no such folder: {folder}")
    files = [f for f in sorted(folder.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()]
    if (folder / "objects.json").is_file():  # a `patches` folder: its crops, not the whole frame's overlay.png
        files = [f for f in files if f.name.startswith("patch_")]
    crops = []
    for f in files[:limit]:
        try:
            crops.append(to_patch(read_image(f)))
        except ValueError as e:
            log.warning("skipping %s", e)
    if not crops:
        raise ValueError(f"{folder}: no readable images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return np.stack(crops)


def cmd_replay(args: argparse.Namespace) -> int:
    from .ros.replay import replay  # without rclpy: main() names the [ros] extra (or a sourced ROS 2)

    n = replay(args.bag, args.rate, args.loop, args.qos, args.keep_stamps, topics=args.topics,
               wait_for_subscribers=args.wait or None)
    print(f"published {n} messages")
    return 0


def cmd_build_default_model(args: argparse.Namespace) -> int:
    from .sim.default_recipe import build_default_model  # renders with pybullet: imported only here

    path = build_default_model(args.out, seed=args.seed, scenes=args.scenes, device=args.device, quiet=args.quiet,
                               workers=args.workers, data_dir=args.data_dir, camera_effects=args.camera_effects)
    effects = f", camera effects {'+'.join(args.camera_effects)}" if args.camera_effects else ""
    print(f"wrote the default model ({args.scenes} scenes, seed {args.seed}{effects}) to {path}")
    return 0


def _namespace_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--namespace", default="/", help="the node's namespace, whose sections of the params file apply "
                                                    "(as launch's namespace:=, e.g. left_arm); default: none")


def _segmentation_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params-file", help="the node's ROS 2 params YAML (config/classify.yaml's shape): run with "
                                         "exactly the robot's settings; the options below override it")
    _namespace_arg(p)
    p.add_argument("--mode", choices=["depth", "mask", "full"], help="segmentation.mode (default depth)")
    p.add_argument("--padding", type=_float(0, 2), help="segmentation.padding (default 0.15)")
    p.add_argument("--no-mask-background", dest="mask_background", action="store_false", default=None,
                   help="keep the background in crops (models trained here expect it greyed out)")
    p.add_argument("--scale", type=int, choices=[0, 1, 2, 4],
                   help="segment at 1/scale resolution (default 0: auto, a grid about 320 samples wide: "
                        "2 for 640x480, 4 for 1280x720, the grid the steps are tuned on; 1 = full resolution)")


def _bag_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bag", required=True, help="the rosbag2 folder to read")
    p.add_argument("--topics", type=_topics_arg, help="COLOR,DEPTH,CAMERA_INFO (default: realsense2_camera names)")
    p.add_argument("--ground-truth", help="JSON-lines sidecar of ground truth keyed by stamp")
    p.add_argument("--ground-truth-topic", help="the bag's ground-truth topic: /object_labels JSON (std_msgs/String) "
                   "or vision_msgs/Detection2DArray, e.g. another detector's recorded detections "
                   "(default /ground_truth/object_labels)")
    _add_model_arg(p)
    _segmentation_args(p)


def _dataset_args(p: argparse.ArgumentParser) -> None:
    from .data.datasets import FORMATS

    p.add_argument("--dataset", required=True,
                   help="the dataset: a PROPS folder, CIFAR-10 python batches, a folder of class folders of images, "
                        "or an .npz (images, labels, class_names)")
    p.add_argument("--format", default="auto", choices=FORMATS, help="the dataset's layout (default: recognised)")


def _train_args(p: argparse.ArgumentParser) -> None:
    from .learn.distances import METRICS
    from .learn.features import FEATURE_KINDS

    _dataset_args(p)
    p.add_argument("--classifier", default="knn", choices=["knn", "linear"],
                   help="knn: k nearest neighbours, majority vote; linear: f(x) = Wx + b with --loss (default knn)")
    p.add_argument("--k", type=_k, default="auto", help="auto (tuned over 1..15) or a number")
    p.add_argument("--metric", type=_csv(choices=tuple(METRICS)), default=["l2"],
                   help=f"one or a comma list of {METRICS}")
    p.add_argument("--features", type=_csv(choices=tuple(FEATURE_KINDS)), default=["hog_color"],
                   help=f"one or a comma list of {FEATURE_KINDS} (default hog_color: no network; the embedded "
                        "default model is a cnn_color kNN)")
    p.add_argument("--pca", type=_int(0), default=0, help="reduce features to this many PCA dims (0 = off)")
    p.add_argument("--tune", default="cv", choices=["cv", "val", "none"],
                   help="how comma lists of values are chosen: cv = k-fold cross-validation on the training split, "
                        "val = the dataset's val split (else --val-fraction of training held out), none = the "
                        "first values; never on test (default cv)")
    p.add_argument("--folds", type=_int(2), default=5, help="folds for --tune cv (default 5)")
    p.add_argument("--val-fraction", type=_float(0, 1, lo_open=True, hi_open=True), default=0.2,
                   help="--tune val without a val split: the share of the training split held out (default 0.2)")
    p.add_argument("--loss", default="softmax", choices=["svm", "softmax"],
                   help="linear: multiclass hinge (svm) or cross-entropy (softmax), with L2 --reg (default softmax)")
    p.add_argument("--reg", type=_csv(_float(0)), default=None, help="L2 strength(s), comma list to tune")
    p.add_argument("--lr", type=_csv(_float(0, lo_open=True)), default=None,
                   help="learning rate(s), comma list to tune")
    p.add_argument("--max-steps", type=_int(1), default=5000,
                   help="linear: budget of gradient steps (SGD) or iterations (L-BFGS); training stops earlier "
                        "when the objective stops improving")
    p.add_argument("--solver", default="auto", choices=["auto", "sgd", "lbfgs"],
                   help="linear: auto = L-BFGS when samples x features <= 2e7, else minibatch SGD with momentum")
    p.add_argument("--mirror", default="auto", choices=["auto", "on", "off"],
                   help="also learn each patch mirrored left-right; auto = for training sets under 5,000 patches "
                        "whose mirror images keep their class (a 1-NN check: tabletop objects yes, digits no)")
    p.add_argument("--negatives", default="none", choices=["none", "recipe"],
                   help="recipe: also learn the default recipe's rendered desk clutter (cups, bowls, tools, "
                        "random shapes; rendered once and cached; needs the sim extra) as 'unknown', "
                        "for a dataset with no objects of no class (default none)")
    p.add_argument("--seed", type=_int(0), default=0, help="seed of the folds, the hold-out and SGD's minibatches")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where features and training run (default auto: cuda when there is one)")
    p.add_argument("--out", required=True, help="the model file to write (.safetensors)")


def _evaluate_args(p: argparse.ArgumentParser) -> None:
    _add_model_arg(p, params_file=False)
    _dataset_args(p)
    p.add_argument("--split", default="test", help="the split to score (default test)")
    p.add_argument("--metrics-out", help="also write the report (accuracy, per class, calibration) to this new JSON "
                   "file (never overwritten)")
    p.add_argument("--plots", help="write figures into this folder: confusion matrix, reliability, coverage, "
                                   "the tuning curve, examples (new, empty, or an earlier run's, whose figures it "
                                   "replaces)")


def _predict_args(p: argparse.ArgumentParser) -> None:
    _add_model_arg(p)
    p.add_argument("--min-score", type=_float(-1, 1), help="below it: unknown (default: the params file's, else "
                                                           "the model's own, as the node)")
    p.add_argument("--params-file", help="the node's ROS 2 params YAML (its model_path, device, min_score)")
    _namespace_arg(p)
    p.add_argument("--format", choices=["text", "json"], default="text",
                   help="text: IMAGE<tab>LABEL<tab>SCORE[<tab>top class: ...] per image; json: one document")
    p.add_argument("images", nargs="+", help="image files, each one object's crop (resized to 32x32)")


def _demo_args(p: argparse.ArgumentParser) -> None:
    _add_model_arg(p)
    p.add_argument("--params-file", help="the node's ROS 2 params YAML, for the live node and replay-eval alike")
    p.add_argument("--frames", type=_int(1), default=30, help="rendered frames in the demo bag (default 30)")
    p.add_argument("--out", default="demo_out",
                   help="a new or empty folder, or a previous demo's (only its demo_bag/ and report/ are replaced; "
                        "default demo_out)")


def _effect_names(text: str) -> tuple[str, ...]:
    from .sim.camera_effects import EFFECTS  # numpy and OpenCV only

    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in EFFECTS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown camera effect(s) {', '.join(unknown)}; "
                                         f"choose from {', '.join(EFFECTS)}")
    return names


def _build_default_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="the model file to write (never overwritten)")
    p.add_argument("--seed", type=_int(0), default=0, help="the recipe's seed (default 0, as the shipped model)")
    p.add_argument("--scenes", type=_int(1), default=600, help="rendered scenes (default 600, as the shipped model)")
    p.add_argument("--workers", type=_int(1), default=2, help="rendering processes (default 2)")
    p.add_argument("--data-dir", help="keep the rendered patch set here (default: a temporary folder)")
    p.add_argument("--camera-effects", type=_effect_names, default=(), metavar="NAME,NAME",
                   help="replace half the training crops by what a real camera makes of them, with these "
                        "effects of sim.camera_effects (e.g. glare; default: none, as the shipped model)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where features run (default auto: cuda when there is one)")


def _generate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="folder for scenes/ (and patches/ with --patches)")
    p.add_argument("--scenes", type=_int(1), default=20, help="rendered tabletop scenes (default 20)")
    p.add_argument("--seed", type=_int(0), default=0, help="the scenes' seed: the same seed, the same scenes")
    p.add_argument("--patches", action="store_true", help="also write a PROPS-layout 32x32 patch dataset")
    p.add_argument("--no-scenes", action="store_true", help="do not write the scene images (patches only)")
    p.add_argument("--jitters", type=_int(1), default=2, help="crops per object (the first unjittered)")
    p.add_argument("--test-fraction", type=_float(0, 1, hi_open=True), default=0.2,
                   help="share of whole scenes held out for test")
    p.add_argument("--workers", type=_int(1), default=2, help="rendering processes (default 2)")


def _patches_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--color", required=True, help="the colour image (PNG or JPEG)")
    p.add_argument("--depth", help="16-bit PNG, millimetres (needed in depth mode)")
    p.add_argument("--intrinsics", help="FX,FY,CX,CY")
    p.add_argument("--mask", help="instance-id image for --mode mask")
    _segmentation_args(p)
    p.add_argument("--out", required=True, help="folder for patch_NNN.png, objects.json and overlay.png: new, empty, "
                   "or an earlier run's (whose outputs it replaces)")


def _eval_patches_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenes", required=True, help="folder holding scene folders (scene.json, color/depth/mask.png)")
    p.add_argument("--limit", type=_int(0), default=0, help="at most this many scenes (0 = all)")
    p.add_argument("--no-model", action="store_true", help="measure extraction only")
    _add_model_arg(p)
    _segmentation_args(p)
    p.add_argument("--metrics-out", help="also write the measures to this new JSON file (never overwritten)")


def _make_bag_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="the bag to write (a new path: bags are never overwritten)")
    p.add_argument("--storage", default="mcap", choices=["mcap", "sqlite3"], help="rosbag2 storage (default mcap)")
    p.add_argument("--color-format", default="raw", choices=["raw", "jpeg", "png"],
                   help="raw Image, or image_transport's <topic>/compressed (JPEG quality 90, or PNG)")
    p.add_argument("--depth-format", default="raw", choices=["raw", "png", "rvl"],
                   help="raw Image, or image_transport's <topic>/compressedDepth (PNG or RVL, lossless)")
    p.add_argument("--scenes", type=_int(1), default=30, help="scenes (with --sequence: sequences; default 30)")
    p.add_argument("--seed", type=_int(0), default=1,
                   help="the scenes' seed: the same seed, the same scenes (default 1)")
    p.add_argument("--workers", type=_int(1), default=2, help="rendering processes (default 2)")
    p.add_argument("--layout", default="apart", choices=["apart", "crowded"],
                   help="apart: objects stand where they do not overlap (the training scenes); crowded: 4-8 "
                        "objects, most in contact with a neighbour and small products standing on boxes, "
                        "as on real tables, where touching objects are the hard case (default apart)")
    p.add_argument("--sequence", type=_int(1), default=0, metavar="FRAMES",
                   help="FRAMES views per scene from a camera moving along an arc (ground-truth ids persist "
                        "across the frames: for tracking); default: one view per scene")
    p.add_argument("--arc", type=float, default=None, help="with --sequence: degrees the camera turns over a "
                                                            "sequence (default 60)")
    p.add_argument("--stretches", type=_int(1), default=None,
                   help="with --sequence: between stretches one object is moved to another spot (default 1)")
    p.add_argument("--rate", type=float, default=30.0, help="frames per second (stamps)")


def _import_dataset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="a BOP split or scene folder (scene_camera.json, scene_gt*.json, rgb/, depth/, "
                                 "mask_visib/), or YCB-Video's root, data/ or one NNNN folder")
    p.add_argument("--out", required=True, help="the bag to write (a new path: bags are never overwritten)")
    p.add_argument("--format", choices=["auto", "bop", "ycbv"], default="auto",
                   help="BOP or YCB-Video's own layout (default: recognised)")
    p.add_argument("--class-map", help="YAML 'dataset object id or name: class name'; unlisted objects are "
                                       "'distractor', 'ignore' leaves one out (default: the class_map.yaml beside "
                                       "the scenes, as draft-labels writes it, else the built-in YCB-V map)")
    p.add_argument("--scenes", type=_csv(), help="comma list of scene folders (48 = 000048 / 0048; default all)")
    p.add_argument("--every", type=_int(1), default=1,
                   help="take every N-th frame, counted over all scenes in order (not per scene)")
    p.add_argument("--max-frames", type=_int(1), help="stop after this many frames")
    p.add_argument("--rate", type=_float(0, lo_open=True), default=30.0, help="stamp spacing in frames per "
                                                                                "second (default 30)")
    p.add_argument("--storage", default="mcap", choices=["mcap", "sqlite3"], help="rosbag2 storage (default mcap)")


def _replay_eval_args(p: argparse.ArgumentParser) -> None:
    _bag_args(p)
    p.add_argument("--min-score", type=_float(-1, 1), help="min_score (default: the params file's, else the "
                   "model's own, chosen on its validation data; -1 = the model's own)")
    p.add_argument("--report", help="folder for metrics.json, report.html, summary.md, figures (required, "
                                    "but for --no-report alone): new or empty, or a previous report's, whose "
                                    "own files are replaced (other files in it stay)")
    p.add_argument("--gallery", type=_int(0), default=40, help="failures shown in the report, worst first")
    p.add_argument("--no-report", action="store_true",
                   help="metrics.json, objects.jsonl and object_labels.jsonl only (in --report): no figures, crops "
                        "or HTML; without --report, the figures are printed and no file is kept")
    p.add_argument("--format", choices=["text", "md"], default="text",
                   help="md: print the headline table as markdown (also written as summary.md)")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"),
                   help="two model files ('default' = the embedded one) or two report folders: side by side on "
                        "the bag, with the objects they label differently (compare.html in --report)")


def _bag_to_dataset_args(p: argparse.ArgumentParser) -> None:
    _bag_args(p)
    p.add_argument("--out", required=True, help="folder for the image-folder dataset (train/ and test/, a folder "
                                                "per class)")
    p.add_argument("--split-by-time", type=_float(0, 1, lo_open=True), default=0.8,
                   help="share of the frames, earliest first, that goes to train/ (at least one; 1: all); the "
                        "rest to test/")


def _draft_labels_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bag", required=True, nargs="+", help="the rosbag2 folder(s) to read (your own recordings): "
                                                            "a BOP scene each, object ids unique over them all")
    p.add_argument("--topics", type=_topics_arg, help="COLOR,DEPTH,CAMERA_INFO (default: realsense2_camera names)")
    _add_model_arg(p)
    _segmentation_args(p)
    p.add_argument("--out", required=True, help="the draft: a new or empty folder (BOP scenes, class_map.yaml, "
                                                "overlays/)")
    p.add_argument("--every", type=_int(1), default=1, help="take every N-th frame of each bag (the others are not "
                                                              "processed)")
    p.add_argument("--max-frames", type=_int(1), help="stop after this many frames of each bag")


def _calibrate_args(p: argparse.ArgumentParser) -> None:
    _bag_args(p)
    p.add_argument("--out", required=True, help="the recalibrated model (a new file)")


def _select_arg(text: str) -> str | dict:
    if text in ("center", "largest"):
        return text
    parts = text.split(",")
    if len(parts) == 2 and all(p.strip().isdigit() for p in parts):
        return {"x": int(parts[0]), "y": int(parts[1])}
    if len(parts) == 2 and all(p.strip().lstrip("-").isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"pixel {text!r} is outside the image: x and y count from 0 at the "
                                         "top left")
    raise argparse.ArgumentTypeError(f"takes center, largest or X,Y (a pixel), got {text!r}")


def _frame_range(text: str) -> tuple[int, int | None]:
    """N -> (N, N + 1); A:B -> (A, B); either end may be empty (0, and the bag's end)."""
    try:
        if ":" not in text:
            n = int(text)
            if n >= 0:
                return n, n + 1
        else:
            a, b = text.split(":")
            start, stop = int(a or 0), (int(b) if b else None)
            if start >= 0 and (stop is None or stop > start):
                return start, stop
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"takes a frame N or a range A:B of frames (0-based, A < B), got {text!r}")


def _teach_args(p: argparse.ArgumentParser) -> None:
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--bag", help="take the views from this bag's frames, as the node takes them live")
    source.add_argument("--images", help="a folder of crops of the object (any size; resized to 32x32)")
    p.add_argument("--label", required=True, help="the class to teach (new, or an existing one to add views to)")
    p.add_argument("--views", type=_int(1, TEACH_MAX_VIEWS),
                   help=f"views to take (bag: default 10, at most {TEACH_MAX_VIEWS}; images: default all)")
    p.add_argument("--select", type=_select_arg,
                   help="bag: which object of a frame: center (default), largest or X,Y (the object at that pixel)")
    p.add_argument("--frames", type=_frame_range, metavar="N or A:B",
                   help="bag: the frames to take views from, counted from 0 in stamp order: one (N) or a range "
                        "(A:B, B not included; either end may be left out); default: from the first. With a "
                        "closed range, --views defaults to its length (at most 10)")
    p.add_argument("--out", required=True, help="the taught model (a new file)")
    p.add_argument("--topics", type=_topics_arg, help="COLOR,DEPTH,CAMERA_INFO (default: realsense2_camera names)")
    _add_model_arg(p)
    _segmentation_args(p)


def _replay_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bag", required=True, help="the rosbag2 folder to play")
    p.add_argument("--rate", type=_float(0, lo_open=True), default=1.0,
                   help="speed factor on the bag's own timing (default 1.0; 2 = twice as fast); a silence "
                        "that ends every track (over 5 s: between two imported scenes) still plays 6 s")
    p.add_argument("--loop", action="store_true", help="play again from the start until interrupted")
    p.add_argument("--qos", default="reliable", choices=["reliable", "best_effort"],
                   help="the publishers' reliability (default reliable, as camera drivers publish)")
    p.add_argument("--keep-stamps", action="store_true",
                   help="keep the recorded header stamps (default: now + each message's offset in the bag, "
                        "divided by --rate)")
    p.add_argument("--topics", type=_csv(), metavar="T1,T2,...",
                   help="play only these topics (each with its compressed transports where the bag has them); "
                        "default: every topic")
    p.add_argument("--wait", type=_float(0), default=10.0, metavar="SECONDS",
                   help="before the first message, wait up to this long until every camera topic played (every "
                        "topic, where none is a camera's) has a subscriber, and stop with an error if one has none; "
                        "then 1 s more, for the subscribers to discover the replay in turn (default 10; 0: start "
                        "after half a second whoever listens, as ros2 bag play does)")


# Every subcommand: name, help, its arguments, what runs it. The whole command line at a glance.
AddArguments = Callable[[argparse.ArgumentParser], None]
COMMANDS: tuple[tuple[str, str, AddArguments, Callable[[argparse.Namespace], int]], ...] = (
    ("train", "train a kNN or linear model from a dataset",
     _train_args, cmd_train),
    ("evaluate", "accuracy, per-class metrics and plots on a dataset split",
     _evaluate_args, cmd_evaluate),
    ("predict", "label and score for each image",
     _predict_args, cmd_predict),
    ("demo", "default model -> demo bag -> live classify_node -> /object_labels -> report",
     _demo_args, cmd_demo),
    ("build-default-model", "render scenes and train the default model recipe into a new file (pybullet)",
     _build_default_model_args, cmd_build_default_model),
    ("generate", "render RGB-D tabletop scenes (pybullet) and optionally a patch set",
     _generate_args, cmd_generate),
    ("patches", "find objects in one RGB-D frame; write crops, objects.json, overlay",
     _patches_args, cmd_patches),
    ("eval-patches", "recall / precision / centroid error (+ labels) on generated scenes",
     _eval_patches_args, cmd_eval_patches),
    ("make-bag", "a ROS 2 bag of rendered RGB-D frames with ground truth",
     _make_bag_args, cmd_make_bag),
    ("import-dataset", "a real RGB-D dataset (BOP or YCB-Video) into a bag with ground truth",
     _import_dataset_args, cmd_import_dataset),
    ("replay-eval", "run the node's processing over a bag; metrics + HTML report",
     _replay_eval_args, cmd_replay_eval),
    ("calibrate", "refit a model's scores and min_score on a labelled bag of your own camera's frames",
     _calibrate_args, cmd_calibrate),
    ("draft-labels", "the node's segments and guesses on your own bag, as ground truth to correct by hand "
     "(BOP + class map)", _draft_labels_args, cmd_draft_labels),
    ("bag-to-dataset", "label the node's crops from a bag's ground truth; image folders",
     _bag_to_dataset_args, cmd_bag_to_dataset),
    ("teach", "add an object's views to a kNN model from a bag or a folder of crops (the node's ~/teach offline)",
     _teach_args, cmd_teach),
    ("replay", "publish a bag through rclpy with its original timing",
     _replay_args, cmd_replay),
)


class _Parser(argparse.ArgumentParser):
    """Usage errors as one `error:` line, as every other error is (doc/cli.md), with where to
    find the usage instead of printing it before the line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (`{self.prog} --help` for the options)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="robot-classify", description=__doc__.splitlines()[0])
    parser.add_argument("--quiet", action="store_true", help="no progress bars or info logs")
    parser.add_argument("--version", action="version", version=f"robot-classify {__version__}")
    # Every subcommand takes --quiet too (after its name); SUPPRESS keeps one given before it.
    common = _Parser(add_help=False)
    common.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="no progress bars or info logs")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text, add_arguments, run in COMMANDS:
        p = sub.add_parser(name, help=help_text, parents=[common])
        add_arguments(p)
        p.set_defaults(func=run)
    return parser

# Third-party modules of the optional extras (setup.py): the runtime install has none of them.
EXTRAS = {"pybullet": "sim", "pybullet_data": "sim", "matplotlib": "eval", "rosbags": "eval", "rclpy": "ros"}


class Terminated(SystemExit):
    """SIGTERM, raised where the process stands so that it unwinds as Ctrl-C does."""


def _terminated(signum: int, frame) -> None:
    raise Terminated(128 + signum)


def main(argv: list[str] | None = None) -> int:
    # SIGTERM (`kill`, a CI job's timeout, systemd) ends Python where it stands by default, past
    # the cleanup that removes a half-written bag or folder: found from outside, an import killed
    # so left an 11 MB hidden `.partial` bag. Raised as an exception it unwinds like Ctrl-C.
    # Only where nobody chose another handler (an embedding program, a test runner).
    own = threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    if own:
        signal.signal(signal.SIGTERM, _terminated)
    shown = warnings.showwarning
    warnings.showwarning = _one_line_warning
    try:
        return _main(argv)
    except KeyboardInterrupt:  # also while the heavy modules load, before a command runs
        _close_progress_bars()
        return 130
    except Terminated as e:
        _close_progress_bars()
        return int(e.code)
    except BrokenPipeError as e:
        if not _stdout_gone():
            _close_progress_bars()
            print(f"error: {e}", file=sys.stderr)
            return 2
        # Output piped into a reader that stopped early (`replay-eval ... | head -1`): stop as Unix
        # tools do, without "error: [Errno 32] Broken pipe" (from outside), and without Python's
        # own complaint when it flushes stdout at exit.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError):  # stdout is no file of the process (captured): nothing flushes it
            pass
        return 141
    finally:
        warnings.showwarning = shown
        if own:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A library's warning (scikit-learn's ConvergenceWarning, ...) as the command's own warnings
    read, one line: Python's form had shown our source path and line (found from outside)."""
    _close_progress_bars()
    print(f"warning: {_one_line(message)}", file=file or sys.stderr)


def _one_line(text: object) -> str:
    """An error's or a warning's text on one line, whatever a library put in it (pickle's messages
    hold a newline; found from outside)."""
    return " ".join(str(text).split())


def _stdout_gone() -> bool:
    """Whether standard output is a pipe whose reader went away (poll says so on the write end)."""
    import select

    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poll.poll(0))
    except (OSError, ValueError, AttributeError):  # no file descriptor (captured), or no poll here
        return False


def _close_progress_bars() -> None:
    """An error's line on a line of its own, not after a progress bar's last update."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", ()) or ()):
        bar.close()


# What each command reads (bags, datasets of frames, crops to teach) and the option it writes to: never one
# inside the other. (`train` may write its model beside its image folders: nothing reads it as data.)
READS_AND_WRITES = {"teach": (("bag", "images"), "out"), "calibrate": (("bag",), "out"),
                    "bag-to-dataset": (("bag",), "out"), "import-dataset": (("input",), "out"),
                    "replay-eval": (("bag",), "report"), "draft-labels": (("bag",), "out")}


OUTPUT_OPTIONS = ("out", "report", "metrics_out", "plots")  # paths a command writes


def _refuse_empty_outputs(args: argparse.Namespace) -> None:
    """An empty output path is the current folder to pathlib ("error:  exists", from outside)."""
    for name in OUTPUT_OPTIONS:
        if getattr(args, name, None) == "":
            raise ValueError(f"--{name.replace('_', '-')} is empty: give the path to write")


def _refuse_writing_into_inputs(args: argparse.Namespace) -> None:
    from .data.bags import refuse_output_inside

    reads, writes = READS_AND_WRITES.get(args.command, ((), None))
    out = getattr(args, writes, None) if writes else None
    if out is not None:
        given = [getattr(args, name, None) for name in reads]
        inputs = [v for g in given for v in (g if isinstance(g, list) else [g]) if v is not None]  # --bag: one or more
        refuse_output_inside(out, inputs, f"--{writes}")


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    keep_frame_buffers()
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    from .learn.model_io import ModelFormatError

    try:
        _refuse_empty_outputs(args)
        _refuse_writing_into_inputs(args)
        return int(args.func(args) or 0)
    except ModuleNotFoundError as e:  # an extra this command needs is not installed
        extra = EXTRAS.get((e.name or "").split(".")[0])
        if extra is None:
            raise
        _close_progress_bars()
        print(f"error: {args.command} needs {e.name}, which comes with the [{extra}] extra: "
              f"pip install 'robot_classify[{extra}]'", file=sys.stderr)
        return 2
    except BrokenPipeError:
        raise  # the reader went away: not the command's error (`main`)
    except (ValueError, ModelFormatError, OSError, RuntimeError, FloatingPointError) as e:
        # OSError: missing, existing, timed out; FloatingPointError: a diverged fit (`learn.linear`)
        _close_progress_bars()
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
