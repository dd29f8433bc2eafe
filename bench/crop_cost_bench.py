"""What cutting the node's 32x32 crops costs: `patches.crop_patch` against OpenCV's INTER_AREA on
the same crops. Not a test.

`crop_patch` averages a large crop down through its integral image (`patches.area_mean`) where
OpenCV's INTER_AREA, whose scale is mostly not a whole number there, takes ~1 ns a channel sample.
Large crops are the large objects near a camera: the real GraspNet pile at 1280x720. This runs
the node's segmentation on each frame, takes the crops of every segment some class's size and
pose fit (the ones the node classifies, `FrameProcessor`), and times both ways of averaging the
same greyed crops down, in alternating rounds in one process (the VM's speed drifts), one thread.

    python bench/crop_cost_bench.py --frames FILE.npz (color, depth, K) [--rounds 20] [--out F]
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import cv2
import numpy as np

from robot_classify.evaluation.run_context import git_commit
from robot_classify.learn.features import PATCH_SIZE
from robot_classify.runtime.camera import Intrinsics
from robot_classify.runtime.default_model import get_default_model
from robot_classify.runtime.frame_processor import FrameProcessor, any_class_fits
from robot_classify.runtime.patches import SegmentationParams, crop_region, extract_objects, shrink


def classified_crops(color: np.ndarray, depth: np.ndarray, K: Intrinsics, processor: FrameProcessor) -> list[np.ndarray]:
    """The full-size (greyed) crop of each segment the node would classify in this frame: those
    some class's size and pose fit."""
    ex = extract_objects(color, depth, K, processor.params)
    names = list(processor.model.class_names)
    asked = any_class_fits(processor.size_and_pose(ex, names, processor.model.resting), names)
    return [crop_region(color, o.bbox, processor.params.padding, o.mask if processor.params.mask_background else None)
            for n, o in enumerate(ex.objects) if asked is None or asked[n]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", required=True, help="NPZ with color, depth and K (fx, fy, cx, cy) per frame")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--out", default="bench/results/crop_cost_cpu.json")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    data = np.load(args.frames)
    processor = FrameProcessor(get_default_model(), SegmentationParams())
    frames = []
    for i in range(len(data["color"])):
        K = Intrinsics(*map(float, data["K"][i]))
        frames.append([np.ascontiguousarray(c) for c in classified_crops(data["color"][i], data["depth"][i], K, processor)])
    ways = {"opencv INTER_AREA": lambda c: cv2.resize(c, (PATCH_SIZE, PATCH_SIZE), interpolation=cv2.INTER_AREA),
            "crop_patch's": lambda c: shrink(c, PATCH_SIZE)}
    spent = {w: np.zeros((args.rounds, len(frames))) for w in ways}
    for r in range(args.rounds):
        for w in (ways if r % 2 == 0 else reversed(list(ways))):
            for f, crops in enumerate(frames):
                t = time.perf_counter()
                for c in crops:
                    ways[w](c)
                spent[w][r, f] = (time.perf_counter() - t) * 1000
    differ = sum(int(not np.array_equal(*(ways[w](c) for w in ways))) for crops in frames for c in crops)
    rows = []
    print(f"{'frame':>5} {'crops':>5} {'largest':>10} " + " ".join(f"{w + ' ms':>20}" for w in ways) + "   ratio")
    for f, crops in enumerate(frames):
        med = [float(np.median(spent[w][:, f])) for w in ways]
        big = max(crops, key=lambda c: c.shape[0] * c.shape[1]).shape[:2] if crops else (0, 0)
        rows.append({"frame": f, "crops": len(crops), "largest": list(big), **dict(zip(ways, med))})
        print(f"{f:>5} {len(crops):>5} {big[0]:>4}x{big[1]:<5} " + " ".join(f"{m:>20.3f}" for m in med)
              + (f"   {med[1] / med[0]:.2f}" if med[0] else ""))
    total = [float(np.median(spent[w].sum(1))) for w in ways]
    print(f"all frames, median over rounds: {total[0]:.2f} ms (OpenCV) -> {total[1]:.2f} ms (crop_patch's), "
          f"ratio {total[1] / total[0]:.2f}; crops whose 32x32 differ in any value: {differ} of "
          f"{sum(map(len, frames))}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"frames": args.frames, "rounds": args.rounds, "commit": git_commit(),
                               "machine": platform.machine(), "per_frame": rows, "total_ms": dict(zip(ways, total)),
                               "differing_crops": differ}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
