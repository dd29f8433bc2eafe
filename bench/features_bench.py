"""Features for kNN on held-out scenes: raw pixels, HOG + colour, EfficientNet-Lite0 (`cnn`, and
`cnn_color`: the embedding with hog_color's colour parts)
at several input sizes. Accuracy (k = 1, 3), few-shot 1-NN curves and feature time per
10-patch frame on this machine. Not a test.

  python bench/features_bench.py [--threads 1] [--sizes 32,48,64,96,128] [--repeats 5] [--only NAME,...]
  PYTHONPATH=. python bench/features_bench.py --engines [--runs 200] [--heldout] [--speed-only] [--out NAME.json]

--engines: PyTorch eager against ONNX Runtime fp32 and int8 (learn/cnn_onnx.py, cnn_int8.py) in
one run, `cnn_color` at 64 px on a 10-patch frame, 1 and 2 threads, the three's calls alternating
so that the shared CPU's load hits them alike, each ratio against PyTorch eager of the same run;
the first build (export + check, then quantisation + check) in an empty cache; cold start (fresh
process to first embedding) with and without the built cache; the largest |difference| between
the engines' embeddings (and int8's cosines to fp32), and with --heldout the kNN labels of all
three on the recipe's held-out scenes (the kNN fitted on each one's own training embeddings, and
on fp32's, as a model file made before int8 is). Writes bench/results/features_engines_cpu.json
(or --out).

--only measures those rows alone (e.g. "cnn_color 64px blocks") and puts them into the last
results, in place of rows of the same name.

Data: the default recipe's patch set (rendered once into the cache): train = the default
model's training scenes, test = whole scenes it never saw. Writes
bench/results/features_<device>.json and docs/few_shot.png.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).parents[1]


def knn_accuracy(Xtr, ytr, Xte, yte, k: int, metric: str = "l2") -> float:
    from robot_classify.learn.knn import KNNClassifier

    return float((KNNClassifier(k, metric, device="cpu").fit(Xtr, ytr).predict(Xte) == yte).mean())


def frame_ms(pipe, patches: np.ndarray, runs: int = 20) -> float:
    """Median time for one frame's 10 patches, after a warm-up."""
    batch = patches[:10]
    pipe.transform(batch)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        pipe.transform(batch)
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times))


def few_shot(Xtr, ytr, Xte, yte, shots: list[int], repeats: int, seed: int = 0) -> dict[int, float]:
    rng = np.random.default_rng(seed)
    out = {}
    for n in shots:
        accs = []
        for _ in range(repeats):
            idx = np.concatenate([rng.choice(np.flatnonzero(ytr == c), n, replace=False) for c in np.unique(ytr)])
            accs.append(knn_accuracy(Xtr[idx], ytr[idx], Xte, yte, 1))
        out[n] = float(np.mean(accs))
    return out


def plot(result: dict) -> None:
    """The few-shot curves: pixels, hog_color and the cnn settings worth comparing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = ("pixels", "hog_color", "cnn 32px", "cnn 64px", "cnn 64px blocks", "cnn_color 64px blocks")
    fig, ax = plt.subplots(figsize=(6, 4))
    for row in result["rows"]:
        if row["features"] in shown:
            shots = [int(n) for n in row["few_shot_1nn"]]
            label = row["features"] + (" (cnn default)" if row["features"] == "cnn 64px blocks" else "")
            ax.plot(shots, list(row["few_shot_1nn"].values()), marker="o", label=label)
    ax.set_xscale("log")
    ax.set_xticks(shots, [str(n) for n in shots])
    ax.set_xlabel("training crops per class")
    ax.set_ylabel("1-NN accuracy, held-out scenes")
    ax.set_title(f"few-shot kNN ({result['test']} test crops, mean of {result.get('repeats', 5)} draws)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "few_shot.png", dpi=110)
    print(f"wrote {ROOT / 'docs' / 'few_shot.png'}")


RUNS = (("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "int8"))  # (engine, precision)

COLD_START = """
import time; t0 = time.perf_counter()
import numpy as np, torch
torch.set_num_threads(1)  # as the node
from robot_classify.learn.features import FeaturePipeline
X = FeaturePipeline(kind="cnn_color").transform(np.full((10, 32, 32, 3), 100, np.uint8))
print(time.perf_counter() - t0)
"""


def cold_start_s(engine: str, cache_home: str, precision: str = "fp32") -> float:
    """Seconds from launching a fresh interpreter to its first cnn_color embedding of a frame."""
    import subprocess

    env = {**os.environ, "XDG_CACHE_HOME": cache_home, "ROBOT_CLASSIFY_CNN_ENGINE": engine,
           "ROBOT_CLASSIFY_CNN_PRECISION": precision}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", COLD_START], env=env, check=True, capture_output=True, cwd=ROOT)
    return round(time.perf_counter() - t0, 2)


def engine_crops(n: int, seed: int) -> np.ndarray:
    """Object-like crops when no rendered set is used: the engines' tests' own (test/conftest.py)."""
    sys.path.insert(0, str(ROOT / "test"))
    from conftest import object_crops

    return object_crops(seed, n)


def use(engine: str, precision: str) -> None:
    from robot_classify.learn import cnn_onnx

    os.environ[cnn_onnx.ENGINE_ENV], os.environ[cnn_onnx.PRECISION_ENV] = engine, precision


def name(engine: str, precision: str) -> str:
    return "torch" if engine == "torch" else f"onnxruntime {precision}"


def first_build(args, result: dict) -> None:
    """The first build (export + check, quantisation + check) in an empty cache, and cold starts."""
    import shutil
    import tempfile

    from robot_classify.learn import cnn_int8, cnn_onnx

    with tempfile.TemporaryDirectory(prefix="onnx_bench_") as home:  # the first build, in an empty cache
        os.environ["XDG_CACHE_HOME"] = home
        (Path(home) / "robot_classify").mkdir()
        for f in cnn_onnx.cache_dir().glob("efficientnet-lite0-*.safetensors*"):  # the converted weights only
            shutil.copy(f, Path(home) / "robot_classify" / f.name)
        t0 = time.perf_counter()
        graph = cnn_onnx.build(64, "blocks")  # export, check against PyTorch, write
        t1 = time.perf_counter()
        diff = cnn_onnx.max_difference(graph, 64, "blocks")  # the check alone, again
        t2 = time.perf_counter()
        int8 = cnn_onnx.build(64, "blocks", "int8")  # quantise, check against fp32, write
        t3 = time.perf_counter()
        images = np.concatenate([cnn_onnx.check_crops(), cnn_int8.check_images()])
        mean, lowest, int8_diff = cnn_int8.drift(cnn_onnx.OrtTrunk(graph, 1)(images), cnn_onnx.OrtTrunk(int8, 1)(images))
        result["first_build_s"] = {"export_check_write": round(t1 - t0, 2),
                                   "of_which_check": round(t2 - t1, 2), "check_max_abs_diff": diff,
                                   "int8_quantize_check_write": round(t3 - t2, 2),
                                   "int8_check": {"mean_cosine": mean, "lowest_cosine": lowest, "max_abs_diff": int8_diff}}
        cold: dict[str, list[float]] = {}
        for _ in range(args.cold_runs):
            for engine, precision in RUNS:
                cold.setdefault(name(engine, precision) + ", cache built", []).append(
                    cold_start_s(engine, home, precision))
            for engine, precision in RUNS[1:]:
                for f in Path(home, "robot_classify").glob("*.onnx*"):
                    f.unlink()
                cold.setdefault(name(engine, precision) + ", no cache", []).append(
                    cold_start_s(engine, home, precision))
        result["cold_start_s"] = {k: {"runs": v, "median": float(np.median(v))} for k, v in cold.items()}
        print(json.dumps({"first_build_s": result["first_build_s"], "cold_start_s": result["cold_start_s"]}))
        del os.environ["XDG_CACHE_HOME"]


def engines(args) -> dict:
    """PyTorch eager vs ONNX Runtime fp32 and int8 for cnn_color, side by side (module docstring)."""
    import torch
    from threadpoolctl import threadpool_limits

    from robot_classify.learn import cnn, cnn_int8, cnn_onnx
    from robot_classify.learn.features import FeaturePipeline

    result: dict = {"features": "cnn_color 64px blocks", "patches_per_frame": 10, "runs": args.runs,
                    "cpu_cores": os.cpu_count(), "note": "2-core CPU shared with other work: absolute times vary "
                    "between runs; the ratio is within one run"}
    cnn.backbone("cpu")  # the converted weights, as a process that ran before has them
    if not args.speed_only:
        first_build(args, result)

    pipe = FeaturePipeline(kind="cnn_color", size=64, layer="blocks")
    frame = engine_crops(10, 0)
    speed = []
    print(f"{'engine':18s} {'threads':>7s} {'p50 ms':>8s} {'p90 ms':>8s} {'vs PyTorch p50':>15s} {'p90':>6s}")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        with threadpool_limits(threads):
            times: dict[str, list[float]] = {name(*r): [] for r in RUNS}
            for i in range(args.runs + 5):  # the first 5 warm up
                for engine, precision in RUNS if i % 2 else RUNS[::-1]:
                    use(engine, precision)
                    t0 = time.perf_counter()
                    pipe.transform(frame)
                    if i >= 5:
                        times[name(engine, precision)].append((time.perf_counter() - t0) * 1000)
        row: dict = {"threads": threads}
        for key, t in times.items():
            row[key] = {"p50_ms": round(float(np.median(t)), 2), "p90_ms": round(float(np.percentile(t, 90)), 2)}
        for key in times:
            row[key]["speedup_p50"] = round(row["torch"]["p50_ms"] / row[key]["p50_ms"], 2)
            row[key]["speedup_p90"] = round(row["torch"]["p90_ms"] / row[key]["p90_ms"], 2)
            print(f"{key:18s} {threads:7d} {row[key]['p50_ms']:8.1f} {row[key]['p90_ms']:8.1f} "
                  f"{row[key]['speedup_p50']:14.2f}x {row[key]['speedup_p90']:5.2f}x")
        speed.append(row)
    result["speed"] = speed

    torch.set_num_threads(2)
    check = engine_crops(200, 1)
    X = {}
    for engine, precision in RUNS:
        use(engine, precision)
        X[name(engine, precision)] = {f"{size}px {layer}": FeaturePipeline(kind="cnn", size=size, layer=layer)
                                      .transform(check) for size, layer in ((64, "blocks"), (64, "head"), (48, "blocks"))
                                      if precision == "fp32" or (size, layer) == (64, "blocks")}
    result["max_abs_diff_200_crops"] = {key: float(np.abs(X["torch"][key] - X["onnxruntime fp32"][key]).max())
                                       for key in X["onnxruntime fp32"]}
    mean, lowest, diff = cnn_int8.drift(X["onnxruntime fp32"]["64px blocks"], X["onnxruntime int8"]["64px blocks"])
    result["int8_vs_fp32_200_crops"] = {"features": "cnn 64px blocks", "mean_cosine": mean, "lowest_cosine": lowest,
                                        "max_abs_diff": diff}
    if args.heldout:
        from robot_classify.data.datasets import load_dataset
        from robot_classify.sim.default_recipe import recipe_patches

        splits = load_dataset(recipe_patches(), "props")
        train, test = splits["train"], splits["test"]
        from robot_classify.learn.knn import KNNClassifier

        labels, feats = {}, {}
        for engine, precision in RUNS:
            use(engine, precision)
            key = name(engine, precision)
            feats[key] = (pipe.transform(train.images), pipe.transform(test.images))
            labels[key] = KNNClassifier(3, "l2", device="cpu").fit(feats[key][0], train.labels).predict(feats[key][1])
        # A model file made before int8 existed: its index holds fp32 embeddings, its queries come in int8.
        labels["onnxruntime int8 on an fp32 index"] = KNNClassifier(3, "l2", device="cpu").fit(
            feats["onnxruntime fp32"][0], train.labels).predict(feats["onnxruntime int8"][1])
        fp32, int8 = feats["onnxruntime fp32"][1], feats["onnxruntime int8"][1]
        mean, lowest, diff = cnn_int8.drift(fp32[:, :320], int8[:, :320])
        result["heldout"] = {
            "train": len(train), "test": len(test),
            "max_abs_diff": float(max(np.abs(a - b).max() for a, b in zip(feats["torch"], feats["onnxruntime fp32"]))),
            "int8_vs_fp32_embedding": {"mean_cosine": mean, "lowest_cosine": lowest, "max_abs_diff": diff},
            "knn_k3_labels_identical_to_torch": {key: int((y == labels["torch"]).sum()) for key, y in labels.items()},
            "knn_k3_accuracy": {key: float((y == test.labels).mean()) for key, y in labels.items()}}
    for var in (cnn_onnx.ENGINE_ENV, cnn_onnx.PRECISION_ENV):
        os.environ.pop(var, None)
    print(json.dumps({k: result[k] for k in ("max_abs_diff_200_crops", "int8_vs_fp32_200_crops", "heldout")
                      if k in result}))
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1, help="torch/BLAS threads (the node runs with 1)")
    ap.add_argument("--sizes", default="32,48,64,96,128")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--plot-only", action="store_true", help="redraw docs/few_shot.png from the last results")
    ap.add_argument("--only", type=lambda s: s.split(","), default=None,
                    help="measure only these rows and merge them into the last results")
    ap.add_argument("--engines", action="store_true", help="PyTorch eager vs ONNX Runtime, side by side")
    ap.add_argument("--runs", type=int, default=200, help="--engines: timed frames per engine and thread count")
    ap.add_argument("--cold-runs", type=int, default=2, help="--engines: fresh processes per cold-start case")
    ap.add_argument("--heldout", action="store_true", help="--engines: also compare on the recipe's scenes")
    ap.add_argument("--speed-only", action="store_true",
                    help="--engines: only the frame times (graphs from the user's cache), then the embeddings' differences")
    ap.add_argument("--out", default="features_engines_cpu.json", help="--engines: result file in bench/results")
    args = ap.parse_args()
    if args.engines:
        result = engines(args)
        out = ROOT / "bench" / "results" / args.out
        out.write_text(json.dumps(result, indent=2))
        return print(f"wrote {out}")
    out = ROOT / "bench" / "results" / "features_cpu.json"
    if args.plot_only:
        return plot(json.loads(out.read_text()))
    import torch
    from threadpoolctl import threadpool_limits

    from robot_classify.data.datasets import load_dataset
    from robot_classify.learn.features import FeaturePipeline
    from robot_classify.sim.default_recipe import recipe_patches

    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    splits = load_dataset(recipe_patches(), "props")
    train, test = splits["train"], splits["test"]
    configs = [("pixels", {"kind": "pixels", "center": False}), ("hog_color", {"kind": "hog_color"})]
    configs += [(f"cnn {s}px", {"kind": "cnn", "size": int(s)}) for s in args.sizes.split(",")]
    configs.append(("cnn 64px blocks", {"kind": "cnn", "size": 64, "layer": "blocks"}))
    configs.append(("cnn_color 64px blocks", {"kind": "cnn_color", "size": 64, "layer": "blocks"}))
    if args.only:
        unknown = set(args.only) - {name for name, _ in configs}
        if unknown:
            ap.error(f"--only: no such rows {sorted(unknown)}; they are {[name for name, _ in configs]}")
        configs = [(name, cfg) for name, cfg in configs if name in args.only]
    shots = [1, 2, 5, 10, 20]
    rows = []
    for name, cfg in configs:
        pipe = FeaturePipeline(**cfg).fit(train.images)
        t0 = time.perf_counter()
        Xtr, Xte = pipe.transform(train.images), pipe.transform(test.images)
        extract_s = time.perf_counter() - t0
        row = {"features": name, "config": cfg, "dims": int(Xtr.shape[1]),
               "knn_k1": knn_accuracy(Xtr, train.labels, Xte, test.labels, 1),
               "knn_k3": knn_accuracy(Xtr, train.labels, Xte, test.labels, 3),
               "frame_ms_10_patches": frame_ms(pipe, test.images),
               "extract_s_all": extract_s,
               "few_shot_1nn": few_shot(Xtr, train.labels, Xte, test.labels, shots, args.repeats)}
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "config"}))
    if args.only:  # the other rows as last measured
        rows = [r for r in json.loads(out.read_text())["rows"] if r["features"] not in args.only] + rows
    result = {"train": len(train), "test": len(test), "threads": args.threads, "device": "cpu", "repeats": args.repeats,
              "cpu_cores": os.cpu_count(), "rows": rows}
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")

    plot(result)


if __name__ == "__main__":
    sys.exit(main())
