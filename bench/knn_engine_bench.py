"""This checkout's exact kNN search (`ExactIndex`) against another checkout's, same data. Not a test.

Each round runs one subprocess per checkout, alternating (the 2-core VM's speed drifts by
+-30% within minutes), one BLAS / torch / OpenCV thread as in the node. Each builds the same
indexes and times `search` on the same queries, and the neighbours must come out identical:
- `pixels`: 50,000 uint8 32x32x3 photo crops (`knn_bench.photo_crops`), 20 and 1,000 queries, k 7;
- `default`: the embedded default's index (ConvNet + colour, ~8,000 x 440 float32), the
  crops of `pipeline_bench.py`'s 10-object frames, 10 queries a call (a frame), k 1;
- `50k`: `node_bench.py`'s 50,000-sample `hog_color` index, the same frames' queries.

  python bench/knn_engine_bench.py --baseline PATH_TO_OLD_CHECKOUT [--rounds 3] [--tag NAME]

A checkout is any tree of this repository since the `learn` layout (`git worktree add DIR COMMIT`).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()

CHILD = r'''
import json, sys, time
import cv2, numpy as np, torch
from threadpoolctl import threadpool_limits
threadpool_limits(1); torch.set_num_threads(1); cv2.setNumThreads(1)
from robot_classify.learn.neighbors import ExactIndex
cases = json.loads(sys.argv[1])
out = {}
for name, case in cases.items():
    with np.load(case["data"]) as z:
        X, Q = z["x"], z["q"]
    index = ExactIndex("l2", "cpu")
    index.add(X)
    found, times = [], []
    for rep in range(case["reps"]):
        for s in range(0, len(Q), case["batch"]):
            t = time.perf_counter()
            _, i = index.search(Q[s:s + case["batch"]], case["k"])
            times.append(time.perf_counter() - t)
            if rep == 0:
                found.append(i)
    np.save(case["out"], np.concatenate(found))
    out[name] = {"p50_ms": float(np.median(times) * 1000), "calls": len(times)}
print(json.dumps(out))
'''


def prepare(tmp: Path) -> dict[str, dict]:
    """The cases' data files (built once, by this checkout)."""
    sys.path.insert(0, str(HERE.parent))
    from knn_bench import photo_crops
    from pipeline_bench import model_50k, render_frames

    from robot_classify.learn.model_io import load_model
    from robot_classify.runtime.camera import Intrinsics
    from robot_classify.runtime.default_model import default_model_path
    from robot_classify.runtime.patches import extract_objects

    cases = {}
    np.savez(tmp / "pixels.npz", x=photo_crops(50_000, 0), q=photo_crops(1_000, 1))
    cases["pixels, 20 queries"] = {"data": str(tmp / "pixels.npz"), "batch": 20, "k": 7, "reps": 5}
    cases["pixels, 1,000 queries"] = {"data": str(tmp / "pixels.npz"), "batch": 1000, "k": 7, "reps": 2}
    frames = Path(os.environ.get("TMPDIR", "/tmp")) / "pipeline_bench_frames.npz"
    if not frames.is_file():
        render_frames(frames)
    with np.load(frames) as z:
        colors, depths = z["color"], z["depth"]
    K = Intrinsics(615.0, 615.0, 320.0, 240.0)
    patches = [extract_objects(c, d, K).patches for c, d in zip(colors, depths)]
    for name, path in (("default", default_model_path()), ("50k", model_50k())):
        model = load_model(path, device="cpu")
        queries = np.concatenate([model.features.transform(p) for p in patches]).astype(np.float32)
        np.savez(tmp / f"{name}.npz", x=np.asarray(model.classifier.index_.data), q=queries)
        cases[f"{name} index, frames"] = {"data": str(tmp / f"{name}.npz"), "batch": 10, "k": 1, "reps": 10}
    return cases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", type=Path, required=True, help="another checkout of this repository")
    ap.add_argument("--rounds", type=int, default=3, help="subprocesses per checkout, alternating")
    ap.add_argument("--tag", default="", help="suffix of the result file name")
    args = ap.parse_args()
    import tempfile

    roots = {"baseline": args.baseline.resolve(), "this": HERE.parents[1]}
    with tempfile.TemporaryDirectory(prefix="knn_engine_") as tmp_name:
        tmp = Path(tmp_name)
        cases = prepare(tmp)
        times: dict[str, dict[str, list[float]]] = {n: {c: [] for c in cases} for n in roots}
        identical = {c: True for c in cases}
        for r in range(args.rounds):
            order = list(roots.items()) if r % 2 == 0 else list(reversed(roots.items()))
            for name, root in order:
                spec = {c: {**v, "out": str(tmp / f"{name}_{i}.npy")} for i, (c, v) in enumerate(cases.items())}
                env = {**os.environ, "PYTHONPATH": str(root), "PYTHONWARNINGS": "ignore"}
                out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], cwd=root, env=env,
                                     capture_output=True, text=True)
                if out.returncode != 0:
                    raise SystemExit(f"the run in {root} failed:\n{out.stderr[-3000:]}")
                for c, v in json.loads(out.stdout.strip().splitlines()[-1]).items():
                    times[name][c].append(v["p50_ms"])
            for i, c in enumerate(cases):
                identical[c] &= np.array_equal(np.load(tmp / f"baseline_{i}.npy"), np.load(tmp / f"this_{i}.npy"))
            print(f"round {r + 1}/{args.rounds} done", flush=True)
    print(f"\n{'case':<24}{'baseline ms':>14}{'this ms':>10}{'this / baseline':>18}  identical")
    rows = {}
    for c in cases:
        b, t = float(np.median(times["baseline"][c])), float(np.median(times["this"][c]))
        rows[c] = {"baseline_ms": b, "this_ms": t, "ratio": t / b, "identical": identical[c],
                   "rounds": {n: times[n][c] for n in roots}}
        print(f"{c:<24}{b:>14.2f}{t:>10.2f}{t / b:>18.2f}  {identical[c]}")
    path = HERE.parent / "results" / f"knn_engine_cpu{('_' + args.tag) if args.tag else ''}.json"
    path.write_text(json.dumps({"roots": {n: str(r) for n, r in roots.items()}, "cpu_cores": os.cpu_count(),
                                "cases": rows}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
