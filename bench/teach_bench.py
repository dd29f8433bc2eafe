"""Live teaching, measured. Not a test.

Ten objects no model here has seen (`sim.object_catalog.NOVEL_CATALOG`: new packaging and
proportions) are taught from single-object frames, then labelled on new multi-object scenes
of those objects (seeds never used for teaching). A detection counts as right when it carries
the taught label at the node's default min_score (below it: `unknown`, wrong). Objects at least
half visible are scored, as `replay-eval` scores them; the rate over objects at least 30%
visible is reported beside it.

  python bench/teach_bench.py curve [--views 1,3,5,10,20] [--features default,hog_color,cnn,cnn_color] [--repeats 3]
      accuracy against views per object, offline through `Teacher` (the node's code), on the
      embedded default model (`default`: whatever the package ships; a cnn_color kNN since 0.3.0) and
      kNNs of those features trained on the default recipe's patches;
  python bench/teach_bench.py live [--model default|hog_color|cnn|cnn_color|FILE] [--views 10] [--draws 3] [--tag T]
      through classify_node over real DDS: ~/teach, 10 views per object published as frames,
      the done latency (last view published -> done received), accuracy on new scenes, then
      ~/save_model, a restart from the saved file, and the accuracy again; per draw (disjoint
      views, a fresh node each).

Other scene sets: --seed 920000000 or 940000000 render new views and scenes of the same objects.
Ablations (one choice off, 10 views): --white-balance 0, --occluded-crops 0 --jitter-crops 6,
--no-mirror, --taught-k 20, each with --tag NAME.

Results: bench/results/teach_curve[_TAG].json, bench/results/teach_live_{default,cnn,cnn_color}[_seedN][_TAG].json.
Before 0.9.27 `hog_color` in `curve` meant the embedded default, which was a hog_color kNN only in
0.2.0: the committed `teach_curve*.json` and `teach_live_default*.json` files of 0.2.0-0.5.0 are
named so.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "test"))
RESULTS = Path(__file__).parent / "results"
K = [615.0, 0, 320.0, 0, 615.0, 240.0, 0, 0, 1]
POOL, TEST_SCENES = 30, 60


SEED = 900_000_000  # views: SEED + 1000 * object + view; test scenes: SEED + 10,000,000 + scene
RECIPE_FEATURES = ("hog_color", "cnn", "cnn_color")  # kNNs trained on the default recipe's patches (`recipe_model`)


def render_novel(cache: Path, seed: int = SEED) -> tuple[dict, list]:
    """Per object POOL single-object frames (teaching views) and TEST_SCENES multi-object scenes;
    rendered once, kept in `cache` (npz) for the next run."""
    from robot_classify.sim.object_catalog import NOVEL_CATALOG
    from robot_classify.sim.scene_render import SceneRenderer, read_scene, write_scene

    done = cache / "done"
    if not done.exists():
        with SceneRenderer() as r:
            for oi, name in enumerate(NOVEL_CATALOG):
                for v in range(POOL):
                    s = r.render(seed + oi * 1000 + v, n_objects=(1, 1), max_distractors=0,
                                 catalog={name: NOVEL_CATALOG[name]})
                    write_scene(s, cache / "views" / name / f"{v:03d}")
            for i in range(TEST_SCENES):
                s = r.render(seed + 10_000_000 + i, n_objects=(3, 6), max_distractors=0, catalog=NOVEL_CATALOG)
                write_scene(s, cache / "test" / f"{i:03d}")
        done.write_text("ok")
    views = {name: [read_scene(cache / "views" / name / f"{v:03d}") for v in range(POOL)] for name in NOVEL_CATALOG}
    tests = [read_scene(cache / "test" / f"{i:03d}") for i in range(TEST_SCENES)]
    return views, tests


def cache_of(args) -> Path:
    return Path(args.cache) if args.seed == SEED else Path(f"{args.cache}-{args.seed}")


def intrinsics(scene):
    from robot_classify.runtime.camera import Intrinsics

    return Intrinsics(**scene.meta["intrinsics"])


# Objects scored: at least half visible, as `replay-eval` counts them; also at least 30% visible
# (up to 70% hidden behind a neighbour), reported beside it.
MIN_VISIBLE = (0.5, 0.3)


def gt_boxes(scene, min_visible: float) -> list[tuple[str, tuple[int, int, int, int]]]:
    from robot_classify.evaluation.matching import bbox_tuple

    return [(o["class_name"], bbox_tuple(o["bbox"])) for o in scene.meta["objects"]
            if o["visible_fraction"] >= min_visible]


def score_labels(pred: list[tuple[str, tuple]], scene) -> np.ndarray:
    """(right, total) per MIN_VISIBLE over ground-truth objects matched by a detection (IoU >= 0.5)."""
    from robot_classify.evaluation.matching import match_boxes

    out = []
    for v in MIN_VISIBLE:
        gt = gt_boxes(scene, v)
        pairs = match_boxes([b for _, b in pred], [b for _, b in gt])
        out.append((sum(pred[i][0] == gt[j][0] for i, j, _ in pairs), len(pairs)))
    return np.array(out)


def recipe_model(features: str) -> Path:
    """A kNN on the default model's recipe patches with these features (`robot-classify train`), cached."""
    from robot_classify.cli import main as cli
    from robot_classify.learn.cache import cache_dir
    from robot_classify.sim.default_recipe import recipe_patches

    path = cache_dir() / "bench" / f"recipe-{features.replace('_', '-')}-knn.safetensors"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        assert cli(["train", "--dataset", str(recipe_patches()), "--features", features, "--classifier", "knn",
                    "--out", str(path), "--quiet"]) == 0
    return path


def trained_class_patches(model) -> tuple[np.ndarray, np.ndarray]:
    """The recipe's held-out test patches of the model's own (named) classes, as features: what
    teaching may cost the classes the model was trained on."""
    from robot_classify.data.datasets import load_dataset
    from robot_classify.learn.model import is_negative
    from robot_classify.sim.default_recipe import recipe_patches

    test = load_dataset(recipe_patches())["test"]
    truth = np.array(test.class_names)[test.labels]
    keep = np.array([not is_negative(t) for t in truth])
    return model.features.transform(test.images[keep]), truth[keep]


def trained_top1(model, X: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(np.array(model.class_names)[model.classify_features(X).labels] == truth))


def curve(args) -> None:
    from robot_classify.learn.model_io import load_model
    from robot_classify.runtime.default_model import default_model_path
    from robot_classify.runtime.frame_processor import FrameProcessor
    from robot_classify.runtime.parameters import check_parameters
    from robot_classify.runtime.patches import Extraction
    from robot_classify.runtime.teaching import Teacher

    import robot_classify.learn.model as model_module

    model_module.TAUGHT_K = args.taught_k  # an ablation knob; the node always uses the module's own
    views, tests = render_novel(cache_of(args), args.seed)
    params = check_parameters({})
    out = {"taught_k": args.taught_k, "views_per_object": args.views, "jitter_crops": args.jitter_crops,
           "occluded_crops": args.occluded_crops, "white_balance": args.white_balance, "mirror": args.mirror, "objects": list(views), "test_scenes": len(tests), "repeats": args.repeats,
           "min_score": params["min_score"], "results": {}}
    for kind in args.features:
        path = default_model_path() if kind == "default" else recipe_model(kind)
        model = load_model(path, device="cpu")
        p = FrameProcessor.from_parameters(model, params)
        # Every view frame through the node's processing once; a teach request takes views from them.
        pool = {name: [r for r in (p.process(s.color, s.depth, intrinsics(s), (0, 0), "cam") for s in scenes)
                       if r.extraction.objects] for name, scenes in views.items()}
        trained = trained_class_patches(model)
        before = trained_top1(model, *trained)
        print(f"{kind:9s} trained classes' held-out patches, top-1 before teaching: {before:.3f}")
        rows = []
        for v in args.views:
            accs, accs_03, kept = [], [], []
            for rep in range(args.repeats):
                rng = np.random.default_rng(rep)
                t = Teacher(p, jitter_crops=args.jitter_crops, mirror=args.mirror,
                            occluded_crops=args.occluded_crops, white_balance=args.white_balance)
                for name, results in pool.items():
                    assert t.request(json.dumps({"label": name, "views": v})).state == "collecting"
                    for i in rng.choice(len(results), size=min(v, len(results)), replace=False):
                        # views of other scenes: the object lifted out of view and put down again
                        # between them (a frame without it; `runtime.teaching.SAME_SHIFT`)
                        t.offer(replace(results[i], extraction=Extraction()))
                        statuses = t.offer(results[i])
                    assert statuses[-1].state == "done", statuses
                counts = np.zeros((len(MIN_VISIBLE), 2), np.int64)
                t0 = time.perf_counter()
                for scene in tests:
                    labels = p.process(scene.color, scene.depth, intrinsics(scene), (0, 0), "cam").labels
                    counts += score_labels([(o.label, o.bbox) for o in labels.objects], scene)
                (right, total), (right_03, total_03) = counts
                kept.append(trained_top1(model, *trained))
                for name in pool:
                    assert t.forget(name).state == "done"
                accs.append(right / total)
                accs_03.append(right_03 / total_03)
            rows.append({"views": v, "accuracy_mean": float(np.mean(accs)), "accuracy_min": float(np.min(accs)),
                         "accuracy_max": float(np.max(accs)), "objects_scored": int(total),
                         "visible_0.3": {"accuracy_mean": float(np.mean(accs_03)), "objects_scored": int(total_03)},
                         "trained_classes_top1_mean": float(np.mean(kept))})
            print(f"{kind:9s} {v:3d} views/object: {np.mean(accs):.3f} (min {np.min(accs):.3f}; "
                  f">= 30% visible: {np.mean(accs_03):.3f} of {total_03}; trained classes {np.mean(kept):.3f}; "
                  f"{total} objects x {args.repeats} repeats, {time.perf_counter() - t0:.1f} s per pass)")
        out["results"][kind] = {"model": str(path), "trained_classes_top1_before": before, "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"teach_curve{'_' + args.tag if args.tag else ''}.json"
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")


def live(args) -> None:
    from ros_harness import RosHarness
    from test_node_teach import TeachClient

    from robot_classify.learn.model_io import file_sha256

    views, tests = render_novel(cache_of(args), args.seed)
    tmp = Path(tempfile.mkdtemp())
    stamp = iter(range(1_000_000_000, 10**13, 50_000_000))
    model = "" if args.model == "default" else str(recipe_model(args.model)) if args.model in RECIPE_FEATURES \
        else args.model
    result: dict = {"views_per_object": args.views, "objects": list(views), "test_scenes": len(tests),
                    "model": args.model, "draws": []}

    def label_tests(h) -> dict:
        counts = np.zeros((len(MIN_VISIBLE), 2), np.int64)
        for scene in tests:
            st = next(stamp)
            h.publish_frame(scene.color, scene.depth, K, st, info_lead=0.0)
            doc = h.wait_for(st)
            pred = [(o["label"], tuple(o["bbox"][k] for k in ("x_offset", "y_offset", "width", "height")))
                    for o in doc["objects"]]
            counts += score_labels(pred, scene)
        (right, total), (right_03, total_03) = counts
        return {"accuracy": right / total, "objects_scored": int(total), "model_sha256": doc["model"]["sha256"],
                "visible_0.3": {"accuracy": right_03 / total_03, "objects_scored": int(total_03)}}

    # Disjoint draws: frames d*views .. (d+1)*views - 1 of each object, each draw on a fresh node.
    for d in range(min(args.draws, POOL // args.views)):
        saved = tmp / f"taught{d}.safetensors"
        draw: dict = {"frames": [d * args.views, (d + 1) * args.views - 1]}
        h = RosHarness(model, params={"teach.save_path": str(saved)})
        try:
            t = TeachClient(h)
            latencies, without = [], 0
            for name, scenes in views.items():
                t.send(t.teach_pub, json.dumps({"label": name, "views": args.views}))
                t.wait_status(name, ("collecting",))
                # The draw's frames, then the next ones, as a camera goes on: a frame in which
                # nothing is segmented gives no view (the node skips it and waits for another).
                taken = sent = 0
                for s in scenes[d * args.views:] + scenes[:d * args.views]:
                    # each view is another scene: the object lifted out of view (a frame without
                    # depth, nothing segmented) and put down again (`runtime.teaching.SAME_SHIFT`)
                    st = next(stamp)
                    h.publish_frame(s.color, np.zeros_like(s.depth), K, st, info_lead=0.0)
                    h.wait_for(st)
                    st = next(stamp)
                    h.publish_frame(s.color, s.depth, K, st, info_lead=0.0)
                    last = time.monotonic()
                    taken += bool(h.wait_for(st)["objects"])
                    sent += 1
                    if taken == args.views:
                        break
                status = t.wait_status(name)
                latencies.append(time.monotonic() - last)
                assert status["state"] == "done", status
                without += sent - taken
            draw["done_latency_s"] = {"max": max(latencies), "median": float(np.median(latencies))}
            draw["frames_without_object"] = without
            draw["after_teaching"] = label_tests(h)
            response = t.call_save()
            assert response.success, response.message
            draw["saved_sha256"] = file_sha256(saved)
        finally:
            h.close()
        h = RosHarness(str(saved))
        try:
            draw["after_restart"] = label_tests(h)
        finally:
            h.close()
        a, r = draw["after_teaching"], draw["after_restart"]
        print(f"draw {d}: {a['accuracy']:.3f} [{a['visible_0.3']['accuracy']:.3f}] after teaching, "
              f"{r['accuracy']:.3f} after a restart from the saved file; done "
              f"{1000 * draw['done_latency_s']['median']:.0f} ms (max {1000 * draw['done_latency_s']['max']:.0f}) "
              "after the last view")
        result["draws"].append(draw)
    accs = [dr["after_teaching"]["accuracy"] for dr in result["draws"]]
    result["accuracy_mean"], result["accuracy_min"] = float(np.mean(accs)), float(np.min(accs))
    result["restart_same_accuracy"] = all(dr["after_restart"]["accuracy"] == dr["after_teaching"]["accuracy"]
                                          for dr in result["draws"])
    print(f"mean {result['accuracy_mean']:.3f} (min {result['accuracy_min']:.3f}) over {len(accs)} draws")
    RESULTS.mkdir(exist_ok=True)
    name = Path(args.model).stem if args.model not in ("default", *RECIPE_FEATURES) else args.model
    out = RESULTS / (f"teach_live_{name}{'' if args.seed == SEED else f'_seed{args.seed // 1_000_000}'}"
                     f"{'_' + args.tag if args.tag else ''}.json")
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


def main() -> None:
    from robot_classify.learn.model import TAUGHT_K

    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="mode", required=True)
    c = sub.add_parser("curve")
    c.add_argument("--views", type=lambda s: [int(v) for v in s.split(",")], default=[1, 3, 5, 10, 20])
    c.add_argument("--features", type=lambda s: s.split(","), default=["default", "cnn"],
                   help="default (the embedded model) and/or kNNs of these features on the recipe's patches")
    c.add_argument("--repeats", type=int, default=3)
    c.add_argument("--jitter-crops", type=int, default=3, help="teach.jitter_crops")
    c.add_argument("--occluded-crops", type=int, default=3, help="teach.occluded_crops")
    c.add_argument("--white-balance", type=float, default=0.15, help="teach.white_balance")
    c.add_argument("--tag", default="", help="suffix of the result file name (ablations)")
    c.add_argument("--taught-k", type=int, default=TAUGHT_K, help="learn.model.TAUGHT_K")
    c.add_argument("--no-mirror", dest="mirror", action="store_false", help="teach.mirror false")
    lv = sub.add_parser("live")
    lv.add_argument("--views", type=int, default=10)
    lv.add_argument("--draws", type=int, default=3, help="disjoint sets of views, each on a fresh node")
    lv.add_argument("--model", default="default", help="default (the shipped model), hog_color, cnn or cnn_color "
                                                       "(a kNN on the recipe's patches with those features) or a model file")
    lv.add_argument("--tag", default="", help="suffix of the result file name")
    for p in (c, lv):
        p.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "robot_classify_teach_bench"))
        p.add_argument("--seed", type=int, default=SEED, help="render seeds (another value: new views and scenes "
                                                            "of the same objects, e.g. 920000000)")
    args = ap.parse_args()
    curve(args) if args.mode == "curve" else live(args)


if __name__ == "__main__":
    os.environ.setdefault("ROS_DOMAIN_ID", "78")
    main()
