"""The CUDA path beside the CPU engines, in one process on a machine with a GPU. Not a test.

`cnn_color` features of one 10-patch frame (64 px, `blocks`), each engine timed in turn (the
GPU machine is not shared, unlike the 2-core VM):
PyTorch eager on CUDA as 0.9.2 ran it (the frame as it comes, cuDNN's default TF32), eager in
strict fp32 and under fp16 autocast, and this version's path (learn/cnn_cuda.py: the frame
padded to a bucket, a captured CUDA graph replayed, strict fp32), beside PyTorch eager and ONNX
Runtime fp32 / int8 on one CPU thread of the same machine. Then every engine's embeddings of the
recipe's crops, fed in frames of 10, against PyTorch fp32 on the CPU (largest difference, kNN
k=3 labels); then the kNN search of the frame's 10 embeddings in a 50,000-sample index (the
recipe's crops shifted and mirrored, as node_bench's) on CUDA and on the CPU.

  python bench/gpu_bench.py --bench-data FILE.npz [--runs 300] [--out gpu_cuda.json]

FILE.npz is what `bench/node_bench.py --save-bench-data` writes on a machine with the renderer.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def timed_ms(fn, runs: int) -> dict:
    for _ in range(5):
        fn()
    t = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        t.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": round(float(np.median(t)), 3), "p99_ms": round(float(np.percentile(t, 99)), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench-data", type=Path, required=True)
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--index-size", type=int, default=50_000)
    ap.add_argument("--out", default="gpu_cuda.json")
    args = ap.parse_args()

    import torch
    from threadpoolctl import threadpool_limits

    from robot_classify.learn import cnn, cnn_onnx
    from robot_classify.learn.features import FeaturePipeline
    from robot_classify.learn.knn import KNNClassifier

    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this bench measures the GPU path")
    torch.set_num_threads(1)  # the CPU engines as the node runs them: one thread per worker
    threadpool_limits(1)
    data = np.load(args.bench_data)
    train_x, train_y = data["train_images"], data["train_labels"]
    test_x, test_y = data["test_images"], data["test_labels"]
    frame = test_x[:10]
    result: dict = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "cpu_cores": os.cpu_count(),
                    "features": "cnn_color 64px blocks", "patches_per_frame": 10, "runs": args.runs}

    cpu = FeaturePipeline(kind="cnn_color", size=64, layer="blocks")
    gpu = FeaturePipeline(kind="cnn_color", size=64, layer="blocks").to("cuda")
    net = cnn.backbone("cuda")

    def on_cpu(engine: str, precision: str):
        def run(x):
            os.environ[cnn_onnx.ENGINE_ENV], os.environ[cnn_onnx.PRECISION_ENV] = engine, precision
            return cpu.transform(x)
        return run

    def eager(tf32: bool, fp16: bool = False):
        """PyTorch eager on CUDA, the patches as they come (0.9.2's path: cuDNN's TF32 default)."""
        def run(x):
            torch.backends.cudnn.allow_tf32 = tf32
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=fp16):
                out = cnn.embed(net, torch.from_numpy(x).cuda(), 64, "blocks").float()
            out = torch.cat([out, torch.from_numpy(gpu.extractor._color(x)).cuda()], 1)
            return out.cpu().numpy()  # back on the host, as the frame's results go
        return run

    def graph(x):
        """This version: the frame padded to a bucket and replayed from its captured graph (learn/cnn_cuda.py)."""
        os.environ[cnn_onnx.ENGINE_ENV], os.environ[cnn_onnx.PRECISION_ENV] = "torch", "fp32"
        torch.backends.cudnn.allow_tf32 = False
        return gpu.transform(x)

    t0 = time.perf_counter()
    gpu.warm_up()
    result["graph_capture_s"] = round(time.perf_counter() - t0, 2)
    engines = {"cpu torch fp32": on_cpu("torch", "fp32"), "cpu onnxruntime fp32": on_cpu("onnxruntime", "fp32"),
               "cpu onnxruntime int8": on_cpu("onnxruntime", "int8"),
               "cuda eager tf32 (0.9.2)": eager(True), "cuda eager strict fp32": eager(False),
               "cuda eager fp16 autocast": eager(True, True), "cuda graph strict fp32 (this)": graph}
    speed = {name: timed_ms(lambda fn=fn: fn(frame), args.runs if name.startswith("cuda") else max(20, args.runs // 5))
             for name, fn in engines.items()}
    base = speed["cpu torch fp32"]["p50_ms"]
    for name, row in speed.items():
        row["speedup_vs_cpu_torch_p50"] = round(base / row["p50_ms"], 2)
        print(f"{name:32s} p50 {row['p50_ms']:8.2f} ms  p99 {row['p99_ms']:8.2f} ms  x{row['speedup_vs_cpu_torch_p50']}")
    result["features_speed"] = speed

    # Equality on the recipe's crops, fed as the node feeds them (frames of 10), against PyTorch fp32 on the CPU.
    torch.set_num_threads(os.cpu_count() or 1)
    emb = {name: tuple(np.concatenate([fn(x[i:i + 10]) for i in range(0, len(x), 10)]) for x in (train_x, test_x))
           for name, fn in engines.items() if name != "cuda eager strict fp32"}
    ref = emb["cpu torch fp32"]
    labels = {name: KNNClassifier(3, "l2", device="cpu").fit(tr, train_y).predict(te) for name, (tr, te) in emb.items()}
    result["heldout"] = {"train": len(train_x), "test": len(test_x), **{name: {
        "max_abs_diff_vs_cpu_torch": float(max(np.abs(a - b).max() for a, b in zip(e, ref))),
        "knn_k3_labels_identical": int((labels[name] == labels["cpu torch fp32"]).sum()),
        "knn_k3_accuracy": round(float((labels[name] == test_y).mean()), 4)} for name, e in emb.items()}}
    # A refused int8 graph runs fp32 (one warning): then its embeddings are fp32's.
    result["int8_ran"] = bool(max(np.abs(a - b).max() for a, b in zip(emb["cpu onnxruntime int8"],
                                                                     emb["cpu onnxruntime fp32"])) > 1e-5)
    print(json.dumps(result["heldout"], indent=1), "int8 ran:", result["int8_ran"])

    # The search: 10 queries in an index of --index-size rows, CUDA against the CPU.
    torch.set_num_threads(1)
    os.environ[cnn_onnx.ENGINE_ENV], os.environ[cnn_onnx.PRECISION_ENV] = "torch", "fp32"
    torch.backends.cudnn.allow_tf32 = False
    sys.path.insert(0, str(HERE))
    from node_bench import shifted_copies

    shifted, y = shifted_copies(train_x, train_y, args.index_size)
    X = gpu.transform(shifted)
    q = gpu.transform(frame)
    search = {}
    for device in ("cuda", "cpu"):
        knn = KNNClassifier(3, "l2", device=device).fit(X, y)
        search[device] = timed_ms(lambda: knn.predict(q), args.runs if device == "cuda" else max(20, args.runs // 5))
        search[device]["labels"] = knn.predict(q).tolist()
    search["labels_identical"] = search["cuda"]["labels"] == search["cpu"]["labels"]
    search["index"] = {"rows": int(len(X)), "dims": int(X.shape[1])}
    print(json.dumps(search))
    result["knn_search_10_queries"] = search
    out = HERE / "results" / args.out
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
