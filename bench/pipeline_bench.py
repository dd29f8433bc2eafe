"""The node's frame pipeline (`FrameProcessor.process`) per stage, this checkout against another. Not a test.

Runs rendered 10-object frames (640x480, the node bench's scenes) through the embedded
default model of each checkout, set up as the node sets itself up (one BLAS/torch thread,
frame buffers kept, a warm-up, `gc.freeze`), and prints p50 / p99 per stage:
segmentation (`extract_objects`, and the crops it cut until 0.9.18, cut since when read:
`Extraction.patches_of`), features (the model's feature pipeline), classifier
(the rest of `process`: search, votes, calibration, open set, results), total; each as wall
time and as the process's CPU time (`cpu_*`), which other processes on a shared CPU disturb less.

  python bench/pipeline_bench.py [--frames FILE.npz (color, depth[, K])] [--rounds 6] [--reps 2]
      [--baseline PATH_TO_OLD_CHECKOUT] [--model FILE | --model 50k] [--device cpu|cuda] [--tag NAME]

With `--baseline`, each round runs one subprocess per checkout, alternating (the 2-core VM's
speed drifts by +-30% within minutes; alternating puts both versions in the same drifts), and
the table gives both and their ratio. A checkout is any tree of this repository
(`git worktree add DIR COMMIT`): the subprocess imports `robot_classify` from there and loads
that tree's own embedded default, as that version's node would. Older trees kept the modules
at the package's top level and timed no stages; the child times the stages itself.
Without `--frames`, 10 frames are rendered first (needs pybullet) and kept beside the results.
`--model FILE` runs that model file in every checkout instead of each one's embedded default;
`--model 50k` first builds `node_bench.py`'s 50,000-sample `hog_color` kNN (the search's cost
grows with the index, and the default's index is 8,000 rows).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
STAGES = ("segmentation", "features", "classifier", "total")
STAGES_ALL = STAGES + tuple(f"cpu_{s}" for s in STAGES)


def _child(root: str, frames: str, reps: int, model_file: str = "", device: str = "cpu") -> dict:
    """One checkout's run, in this process (the caller put `root` first on sys.path)."""
    import gc

    import cv2
    import torch
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # as the node's main(): one thread per step
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    # Decided by the tree, not by trying imports: an editable install of another checkout would
    # answer `robot_classify.runtime` for a tree that has none.
    if (Path(root) / "robot_classify" / "runtime").is_dir():  # the layout since the re-lay by job
        from robot_classify.runtime.allocator import keep_frame_buffers
        from robot_classify.runtime.camera import Intrinsics
        from robot_classify.runtime.default_model import get_default_model
        from robot_classify.runtime.frame_processor import FrameProcessor
        from robot_classify.runtime.patches import SegmentationParams
        from robot_classify.learn.model_io import load_model
    else:  # older trees: modules at the top level
        from robot_classify.allocator import keep_frame_buffers
        from robot_classify.camera import Intrinsics
        from robot_classify.default_model import get_default_model
        from robot_classify.frame_processor import FrameProcessor
        from robot_classify.patches import SegmentationParams
        from robot_classify.model_io import load_model
    keep_frame_buffers()
    import importlib

    data = np.load(frames)
    colors, depths = data["color"], data["depth"]
    model = load_model(model_file, device=device) if model_file else get_default_model(device=device)
    processor = FrameProcessor(model, SegmentationParams())
    # per-frame intrinsics (fx, fy, cx, cy) where the file has them (real frames of several cameras)
    Ks = [Intrinsics(*map(float, k)) for k in data["K"]] if "K" in data.files else \
        [Intrinsics(615.0, 615.0, 320.0, 240.0)] * len(colors)
    spent: dict[str, list[float]] = {"segmentation": [0.0, 0.0], "features": [0.0, 0.0]}

    def timed(stage: str, fn):
        """fn, adding its wall and CPU milliseconds to spent[stage]."""
        def run(*args, **kwargs):
            t, c = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[stage][0] += (time.perf_counter() - t) * 1000
                spent[stage][1] += (time.process_time() - c) * 1000
        return run

    fp_module = importlib.import_module(FrameProcessor.__module__)
    fp_module.extract_objects = timed("segmentation", fp_module.extract_objects)
    extraction = getattr(fp_module, "Extraction", None)
    if hasattr(extraction, "patches_of"):  # 0.9.19+: the crops are cut when read, still segmentation's work
        extraction.patches_of = timed("segmentation", extraction.patches_of)
    model.features.transform = timed("features", model.features.transform)
    processor.warm_up()
    for i in range(min(3, len(colors))):
        processor.process(colors[i], depths[i], Ks[i], (0, 0), "warm_up")
    gc.freeze()  # as the node does after its warm-up
    rows = []
    for _ in range(reps):
        for n, (c, d, K) in enumerate(zip(colors, depths, Ks)):
            for v in spent.values():
                v[:] = [0.0, 0.0]
            t, cpu = time.perf_counter(), time.process_time()
            r = processor.process(c, d, K, (0, 0), "camera")
            total = ((time.perf_counter() - t) * 1000, (time.process_time() - cpu) * 1000)
            row = {"frame": n, "objects": len(r.extraction.objects)}
            for i, kind in enumerate(("", "cpu_")):
                seg, feat = spent["segmentation"][i], spent["features"][i]
                row.update({f"{kind}segmentation": seg, f"{kind}features": feat,
                            f"{kind}classifier": total[i] - seg - feat, f"{kind}total": total[i]})
            rows.append(row)
    for name, module in list(sys.modules.items()):
        if name.startswith("robot_classify") and getattr(module, "__file__", None) \
                and not Path(module.__file__).resolve().is_relative_to(Path(root).resolve()):
            raise SystemExit(f"imported {name} from {module.__file__}, not from {root}")
    clf = model.classifier
    index = getattr(clf, "index_", None)
    return {"root": root, "rows": rows,
            "model": {"kind": model.kind, "classes": len(model.class_names),
                      "index_rows": int(index.ntotal) if index is not None else None,
                      "dims": int(index.d) if index is not None else None,
                      "k": int(getattr(clf, "n_neighbors_", 0)),
                      "class_weight": getattr(clf, "class_weight", None),
                      "calibrated": getattr(model, "calibration", None) is not None}}


def run_child(root: Path, frames: Path, reps: int, model_file: str = "", device: str = "cpu") -> dict:
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); sys.path.insert(1, sys.argv[2]); "
            "import pipeline_bench as b; "
            "print(json.dumps(b._child(sys.argv[1], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6])))")
    out = subprocess.run([sys.executable, "-c", code, str(root), str(HERE.parent), str(frames), str(reps), model_file,
                          device],
                         cwd=root, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if out.returncode != 0:
        raise SystemExit(f"the run in {root} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def summary(rows: list[dict]) -> dict:
    return {s: {"p50": float(np.percentile([r[s] for r in rows], 50)),
                "p99": float(np.percentile([r[s] for r in rows], 99)),
                "mean": float(np.mean([r[s] for r in rows]))} for s in STAGES_ALL}


def model_50k() -> Path:
    """`node_bench.py`'s 50,000-sample `hog_color` kNN, built once into TMPDIR and reused."""
    path = Path(os.environ.get("TMPDIR", "/tmp")) / "pipeline_bench_knn50k.safetensors"
    if not path.is_file():
        sys.path.insert(0, str(HERE.parent))
        from node_bench import big_model

        big_model(path)
    return path


def per_frame(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Total milliseconds per frame of the file (its index as the key): p50 and p90 over every
    pass and round."""
    by: dict[int, list[float]] = {}
    for row in rows:
        by.setdefault(row["frame"], []).append(row["total"])
    return {str(f): {"p50": float(np.percentile(t, 50)), "p90": float(np.percentile(t, 90))} for f, t in sorted(by.items())}


def render_frames(path: Path, n: int = 10) -> Path:
    sys.path.insert(0, str(HERE.parent))
    from node_bench import ten_object_frames

    scenes = ten_object_frames(n)
    np.savez_compressed(path, color=np.stack([s.color for s in scenes]), depth=np.stack([s.depth for s in scenes]))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=Path, help="npz with color (N, H, W, 3) uint8 and depth (N, H, W) uint16 mm, "
                    "optionally K (N, 4): fx, fy, cx, cy per frame (default 615, 615, 320, 240)")
    ap.add_argument("--baseline", type=Path, help="another checkout of this repository to compare with")
    ap.add_argument("--rounds", type=int, default=6, help="subprocesses per checkout, alternating")
    ap.add_argument("--reps", type=int, default=2, help="passes over the frames per subprocess")
    ap.add_argument("--model", default="", help="a model file for every checkout, or 50k (node_bench's); "
                    "default: each checkout's embedded default")
    ap.add_argument("--device", default="cpu", help="where the model runs (cpu, cuda): the node's `device`")
    ap.add_argument("--tag", default="", help="suffix of the result file name")
    args = ap.parse_args()
    results = HERE.parent / "results"
    model_file = str(model_50k()) if args.model == "50k" else args.model
    frames = args.frames or render_frames(Path(os.environ.get("TMPDIR", "/tmp")) / "pipeline_bench_frames.npz")
    roots = {"this": HERE.parents[1]}
    if args.baseline:
        roots = {"baseline": args.baseline.resolve(), **roots}
    rows: dict[str, list[dict]] = {name: [] for name in roots}
    per_round: dict[str, list[float]] = {name: [] for name in roots}
    models: dict[str, dict] = {}
    for r in range(args.rounds):
        for name, root in (roots.items() if r % 2 == 0 else reversed(list(roots.items()))):
            res = run_child(root, frames, args.reps, model_file, args.device)
            rows[name] += res["rows"]
            per_round[name].append(float(np.median([x["total"] for x in res["rows"]])))
            models[name] = res["model"]
            print(f"round {r + 1}/{args.rounds} {name}: total p50 {per_round[name][-1]:.1f} ms", flush=True)
    out = {"frames": str(frames), "model_file": model_file or None, "device": args.device, "rounds": args.rounds, "reps": args.reps, "cpu_cores": os.cpu_count(),
           "versions": {name: {"root": str(root), "commit": _commit(root), "model": models[name],
                               "stages_ms": summary(rows[name]), "round_total_p50_ms": per_round[name],
                               "frames": len(rows[name]), "per_frame_total_ms": per_frame(rows[name]),
                               "objects_median": float(np.median([x["objects"] for x in rows[name]]))}
                        for name, root in roots.items()}}
    print(f"\n{'stage':<14}" + "".join(f"{name + ' p50/p99 ms':>26}" for name in roots)
          + ("   ratio p50 / p99 (this / baseline)" if args.baseline else ""))
    for s in STAGES_ALL:
        cells = [out["versions"][n]["stages_ms"][s] for n in roots]
        line = f"{s:<14}" + "".join(f"{c['p50']:>15.2f} / {c['p99']:>7.2f}" for c in cells)
        if args.baseline:
            b, t = cells
            line += f"   {t['p50'] / max(b['p50'], 1e-9):.2f} / {t['p99'] / max(b['p99'], 1e-9):.2f}"
        print(line)
    if args.baseline:
        ratios = [t / b for b, t in zip(per_round["baseline"], per_round["this"])]
        print(f"per round, total p50 this / baseline: {', '.join(f'{x:.2f}' for x in ratios)}")
    # Each frame on its own: a p99 over a few frames is the shared CPU's worst spike, whichever
    # frame it hit; a frame's own p50 / p90 says whether that frame got faster.
    print("per frame, total p50 / p90 ms: " + "; ".join(
        f"{f}: " + " -> ".join(f"{out['versions'][n]['per_frame_total_ms'][f]['p50']:.1f} / "
                               f"{out['versions'][n]['per_frame_total_ms'][f]['p90']:.1f}" for n in roots)
        for f in out["versions"]["this"]["per_frame_total_ms"]))
    for name in roots:
        print(f"{name}: {out['versions'][name]['commit']} model {out['versions'][name]['model']}")
    path = results / f"pipeline_{args.device.split(':')[0]}{('_' + args.tag) if args.tag else ''}.json"
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")


def _commit(root: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty"], capture_output=True,
                              text=True, check=True).stdout.strip()  # -dirty: uncommitted changes ran
    except (OSError, subprocess.CalledProcessError):
        return ""


if __name__ == "__main__":
    main()
