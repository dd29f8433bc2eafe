"""Cold start: seconds from launching classify_node with no model_path (the embedded default)
to its first /object_labels, over real Fast DDS. Not a test.

  python bench/cold_start.py [--runs 3]

A frame is published every 0.2 s from the moment the node is launched; the time of the first
label is what a robot sees after `ros2 launch robot_classify classify.launch.py`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "test"))


def one_run() -> dict:
    from ros_harness import RosHarness
    from scene_fixtures import camera_k, rendered

    s = rendered(900_000_000)
    t0 = time.monotonic()
    h = RosHarness("", params={"device": "cpu"})  # returns once the node is up and subscribed
    up = time.monotonic() - t0
    try:
        i = 0
        while not h.received and time.monotonic() - t0 < 120:
            h.publish_frame(s.color, s.depth, camera_k(s), 1_750_000_000_000_000_000 + i * 200_000_000,
                            info_lead=0.0)
            i += 1
            time.sleep(0.2)
        first = time.monotonic() - t0
    finally:
        h.close()
    return {"node_up_s": round(up, 2), "first_label_s": round(first, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    runs = [one_run() for _ in range(args.runs)]
    result = {"runs": runs, "first_label_s_max": max(r["first_label_s"] for r in runs), "cpu_cores": os.cpu_count()}
    print(json.dumps(result, indent=2))
    out = Path(__file__).parent / "results" / "cold_start_cpu.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    os.environ.setdefault("ROS_DOMAIN_ID", "78")
    main()
