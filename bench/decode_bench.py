"""What a compressed input costs the node: ms per 640x480 frame to turn each format into arrays.

Not a test: prints a table and writes bench/results/decode_cpu.json. The path timed is the one
the node and replay-eval run (`image_conversion.color_from_msg` / `depth_from_msg`, which
decode CompressedImage with `runtime.compressed`), on a rendered tabletop frame (pybullet) and
on its depth with sensor-like noise (2 mm) and 3% holes, which is what a real camera sends and
what PNG and RVL compress worst. Formats are encoded here as image_transport's publishers do.
Median and fastest of --reps runs (the fastest: the cost on an unshared CPU); one thread, as
the node runs. The JSON keeps the load average it ran under.

  python bench/decode_bench.py [--reps 30]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np

from robot_classify.runtime.compressed import encode_color, encode_depth
from robot_classify.runtime.image_conversion import array_to_fields, color_from_msg, depth_from_msg


def scene():
    from robot_classify.sim.scene_render import SceneRenderer

    with SceneRenderer() as r:
        s = r.render(900_000_001)
    rng = np.random.default_rng(0)
    noisy = np.clip(s.depth.astype(np.float64) + rng.normal(0, 2, s.depth.shape), 1, 65535).astype(np.uint16)
    noisy[(rng.random(noisy.shape) < 0.03) | (s.depth == 0)] = 0
    return s.color, s.depth, noisy


def time_ms(fn, reps: int) -> tuple[float, float]:
    """(median, fastest) ms: the fastest is what the code costs when the CPU is not shared."""
    fn()  # first-use costs
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return float(np.median(out)), float(np.min(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "decode_cpu.json"))
    args = ap.parse_args()
    cv2.setNumThreads(1)
    color, depth, noisy = scene()
    rows = []

    def add(stream: str, name: str, msg, convert) -> None:
        size = len(msg.data)
        ms, fastest = time_ms(lambda: convert(msg), args.reps)
        rows.append({"stream": stream, "format": name, "bytes": size, "ms_median": round(ms, 2),
                     "ms_fastest": round(fastest, 2)})
        print(f"{stream:12s} {name:34s} {size / 1024:8.0f} KiB {ms:8.2f} ms (fastest {fastest:.2f})")

    add("colour", "raw rgb8 (Image)", SimpleNamespace(**array_to_fields(color, "rgb8")), color_from_msg)
    for codec in ("jpeg", "png"):
        fmt, data = encode_color(color, codec)
        add("colour", fmt, SimpleNamespace(format=fmt, data=data), color_from_msg)
    for label, d in (("depth", depth), ("depth noisy", noisy)):
        add(label, "raw 16UC1 (Image)", SimpleNamespace(**array_to_fields(d, "16UC1")), depth_from_msg)
        for codec in ("png", "rvl"):
            fmt, data = encode_depth(d, codec)
            add(label, fmt, SimpleNamespace(format=fmt, data=data), depth_from_msg)
        metres = np.where(d > 0, d.astype(np.float32) / 1000, np.nan).astype(np.float32)
        for codec in ("png", "rvl"):
            fmt, data = encode_depth(metres, codec)
            add(label, fmt, SimpleNamespace(format=fmt, data=data), depth_from_msg)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"host": platform.node(), "cpu": platform.processor(), "reps": args.reps,
                                          "load_average_1min": round(os.getloadavg()[0], 2),
                                          "opencv": cv2.__version__, "numpy": np.__version__, "rows": rows},
                                         indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
