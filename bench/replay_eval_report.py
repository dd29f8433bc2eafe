"""What the replay-eval report costs: seconds per frame of `replay_eval` with the report
(figures, failure gallery, HTML) on and off, runs alternating, in one process. Not a test.

  robot-classify make-bag --out /tmp/demo_bag --scenes 30 --seed 900   # the demo's frames
  python bench/replay_eval_report.py --bag /tmp/demo_bag [--runs 3] [--out bench/results/x.json]

Peer: the same replay with `report=False` (metrics.json only), measured in the same run; the
ratio is on / off. The model is the embedded default on the CPU.
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bag", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", help="JSON results file (new)")
    args = ap.parse_args()

    from robot_classify.data.bags import COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC
    from robot_classify.evaluation.replay_eval import replay_eval
    from robot_classify.runtime.default_model import get_default_model

    model = get_default_model(device="cpu")
    topics = (COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC)
    times: dict[str, list[float]] = {"on": [], "off": []}
    frames = 0
    with tempfile.TemporaryDirectory() as tmp:
        replay_eval(args.bag, model, Path(tmp) / "warm", topics, quiet=True)  # imports, first figures
        for run in range(args.runs):
            for mode in ("off", "on") if run % 2 else ("on", "off"):
                t0 = time.perf_counter()
                m = replay_eval(args.bag, model, Path(tmp) / f"{mode}{run}", topics, quiet=True, report=mode == "on")
                times[mode].append(time.perf_counter() - t0)
                frames = m["frames"]["processed"]
    per_frame = {k: float(np.median(v)) / frames * 1000 for k, v in times.items()}
    result = {"bag": args.bag, "frames": frames, "runs": args.runs, "cpu": platform.processor() or platform.machine(),
              "ms_per_frame_report_on": round(per_frame["on"], 1), "ms_per_frame_report_off": round(per_frame["off"], 1),
              "ratio_on_off": round(per_frame["on"] / per_frame["off"], 2),
              "seconds": {k: [round(x, 2) for x in v] for k, v in times.items()}}
    print(f"{frames} frames, median of {args.runs} runs each: report on {per_frame['on']:.1f} ms/frame, "
          f"off {per_frame['off']:.1f} ms/frame (on/off {result['ratio_on_off']:.2f}x)")
    if args.out:
        out = Path(args.out)
        if out.exists():
            raise SystemExit(f"{out} exists; choose a new file")
        out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
