"""A team's own bag without distractors: models trained from it with and without `train
--negatives recipe`, scored by `replay-eval` on a bag that holds distractors. Not a test.

The case of issue 25: a team records its objects alone, runs `bag-to-dataset` and the default
`train`; on a table with other things the model either names them (it never saw anything else)
or, with its distance threshold, rejects them and some right answers too. Everything is the
command line's, as a user runs it:

  make-bag --scenes 150 --seed 31   -> bag-to-dataset -> the `distractor` folders removed
  make-bag --scenes 40 --seed 32    -> the test bag (distractors included; --seeds for others)
  train --classifier knn|linear [--negatives recipe] -> replay-eval --no-report

  python bench/own_bag_negatives_bench.py [--work DIR] [--features hog_color] [--seeds 31,32] [--out NAME.json]

`--work` keeps the bags and datasets between runs (default: a temporary folder).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def cli(*args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "robot_classify.cli", *args], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"robot-classify {' '.join(args)} failed:\n{out.stderr[-2000:]}")
    return out.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, help="folder for the bags and datasets (kept; default: temporary)")
    ap.add_argument("--features", default="hog_color")
    ap.add_argument("--seeds", default="31,32", help="TRAIN,TEST: make-bag's seeds for the two bags")
    ap.add_argument("--out", default="own_bag_negatives_cpu.json")
    args = ap.parse_args()
    from robot_classify.learn.model_io import load_model

    work = args.work or Path(tempfile.mkdtemp(prefix="own_bag_"))
    work.mkdir(parents=True, exist_ok=True)
    train_seed, test_seed = args.seeds.split(",")
    if not (work / "train_bag").exists():
        cli("make-bag", "--out", str(work / "train_bag"), "--scenes", "150", "--seed", train_seed, "--quiet")
    if not (work / "test_bag").exists():
        cli("make-bag", "--out", str(work / "test_bag"), "--scenes", "40", "--seed", test_seed, "--quiet")
    data = work / "dataset"
    if not data.exists():
        cli("bag-to-dataset", "--bag", str(work / "train_bag"), "--out", str(data), "--quiet")
        for split in data.iterdir():  # the team's bag held its objects alone
            if (split / "distractor").is_dir():
                shutil.rmtree(split / "distractor")
    rows = []
    for classifier in ("knn", "linear"):
        for negatives in ("none", "recipe"):
            model = work / f"{classifier}_{args.features}_{negatives}.safetensors"
            if not model.exists():
                cli("train", "--dataset", str(data), "--classifier", classifier, "--features", args.features,
                    "--negatives", negatives, "--out", str(model), "--quiet")
            report = work / f"report_{model.stem}"
            shutil.rmtree(report, ignore_errors=True)
            cli("replay-eval", "--bag", str(work / "test_bag"), "--model", str(model), "--report", str(report),
                "--quiet", "--no-report")
            m = json.loads((report / "metrics.json").read_text())
            meta = load_model(model, device="cpu").meta
            nc, named = m["non_class_objects"], m["named"]
            rows.append({"classifier": classifier, "negatives": negatives, "features": args.features, "seeds": args.seeds,
                         "object_accuracy": m["object_accuracy"], "non_class_matched": nc["matched"],
                         "non_class_named": nc["named"], "non_class_unknown": nc["labelled_unknown"],
                         "named": named["named"], "named_right": named["right"], "named_precision": named["precision"],
                         "class_objects": named["class_objects"], "model": model.name,
                         "negative_crops": meta.get("training", {}).get("negatives", {}).get("crops", 0)})
            r = rows[-1]
            print(f"{classifier:6s} negatives {negatives:6s}  object accuracy {r['object_accuracy']:.3f}  "
                  f"objects of no class named {r['non_class_named']} of {r['non_class_matched']}  "
                  f"named precision {r['named_right']}/{r['named']}", flush=True)
    (HERE / "results" / args.out).write_text(json.dumps({"work": str(work), "rows": rows}, indent=2))
    print(f"wrote {HERE / 'results' / args.out}")


if __name__ == "__main__":
    main()
