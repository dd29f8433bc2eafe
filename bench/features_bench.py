"""Features for kNN on held-out scenes: raw pixels, HOG + colour, EfficientNet-Lite0 (`cnn`, and
`cnn_color`: the embedding with hog_color's colour parts)
at several input sizes. Accuracy (k = 1, 3), few-shot 1-NN curves and feature time per
10-patch frame on this machine. Not a test.

  python bench/features_bench.py [--threads 1] [--sizes 32,48,64,96,128] [--repeats 5] [--only NAME,...]

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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1, help="torch/BLAS threads (the node runs with 1)")
    ap.add_argument("--sizes", default="32,48,64,96,128")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--plot-only", action="store_true", help="redraw docs/few_shot.png from the last results")
    ap.add_argument("--only", type=lambda s: s.split(","), default=None,
                    help="measure only these rows and merge them into the last results")
    args = ap.parse_args()
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
