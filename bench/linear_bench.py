"""Linear training speed, 50,000 x 3,072: ours vs scikit-learn's SGDClassifier in the same run.

`python bench/linear_bench.py` (the same measurement `knn_bench.py` makes after its search rows):
each classifier trains to its own stopping rule, then both are scored on the recipe's held-out
scenes. Writes bench/results/linear_<device>.json.
"""
from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

from knn_bench import bench_linear


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    import torch

    results: list = []
    bench_linear(args.device, results)
    out = Path(args.out or Path(__file__).parent / "results" / f"linear_{args.device}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": platform.processor() or platform.machine(), "device": args.device,
                               "torch_threads": torch.get_num_threads(), "results": results}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
