"""Is the 32x32 crop what keeps real products apart from each other? Not a test.

`real_views_bench.py` found that real views of a product from other sources are nearest-right
no more often than the renders are. Its crops are the node's: 32x32, upsampled to 64 px for the
ConvNet. A label's print is a blur at 32 px, so the question is whether a larger crop of the same
segment, cut from the full-resolution frame, would carry what a camera-independent match needs.
The same segments (the default segmentation, matched to the ground truth as replay-eval
matches), each crop size, the ConvNet embedding (EfficientNet-Lite0, both layers the package
offers), L2:

  real views    each found class object's nearest crop among the *other* sources' class objects
                (`class refs`), and among everything segmented in their frames (`all refs`): what
                teaching from another camera could reach at best (real_views_bench's measure).
  renders       its nearest neighbour and 10-NN vote among the class crops of N rendered scenes
                (ground-truth boxes and masks, the recipe's renderer), cut at the same size:
                what a default trained on renders at that size could reach.

Crops of 32 px go to the network at 64 px (the default's `cnn` size); larger crops at their own
size. Only the embedding, no colour parts and no naming rules, so figures are comparable across
sizes, not with the node's.

    python bench/crop_resolution_bench.py --bags real_uoc real_posecnn ... [--scenes 450] [--out F]
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_views_bench import nearest_across_sources, segments, write_results  # noqa: E402
from teach_real_bench import load_frames  # noqa: E402  (also puts this checkout first on sys.path)

from robot_classify.data.datasets import PROPS_CLASSES  # noqa: E402
from robot_classify.evaluation.run_context import git_commit  # noqa: E402
from robot_classify.learn.cnn_trunk import backbone, embed  # noqa: E402
from robot_classify.learn.model_io import load_model  # noqa: E402
from robot_classify.runtime.default_model import default_model_path  # noqa: E402
from robot_classify.runtime.frame_processor import FrameProcessor  # noqa: E402
from robot_classify.runtime.parameters import check_parameters  # noqa: E402
from robot_classify.runtime.patches import crop_patch  # noqa: E402
from robot_classify.sim.scene_dataset import render_scenes  # noqa: E402

DEFAULT_NET_SIZE = 64  # the default's cnn size: a 32 px crop is upsampled to it


def real_crops(bags: list[str], sizes: list[int]) -> tuple[dict[int, np.ndarray], np.ndarray, np.ndarray]:
    """Every segment of the default segmentation cut at each size from the full-resolution colour
    image (the node's crop: mask, padding), its ground-truth label ("clutter" where it matches no
    box) and source."""
    model = load_model(str(default_model_path()), device="cpu")
    processor = FrameProcessor.from_parameters(model, check_parameters({}))
    crops: dict[int, list[np.ndarray]] = {s: [] for s in sizes}
    labels, sources = [], []
    for f, result, truth in segments(load_frames(bags), processor):
        for o in result.extraction.objects:
            for s in sizes:
                crops[s].append(crop_patch(result.color, o.bbox, mask=o.mask, size=s))
        labels += truth
        sources += [f.source] * len(truth)
    return {s: np.stack(c) for s, c in crops.items()}, np.array(labels), np.array(sources)


def render_crops(scenes: int, sizes: list[int], seed: int) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """The class objects of `scenes` rendered scenes (at least 30% visible, 120 px, as the recipe
    keeps them), cut around their ground-truth box and mask at each size; their class names."""
    crops: dict[int, list[np.ndarray]] = {s: [] for s in sizes}
    labels = []
    for scene in render_scenes(scenes, seed, workers=2, quiet=True):
        for obj in scene.meta["objects"]:
            if obj["class_name"] not in PROPS_CLASSES or obj["visible_fraction"] < 0.3 or obj["pixels"] < 120:
                continue
            b = obj["bbox"]
            box = (b["x_offset"], b["y_offset"], b["width"], b["height"])
            local = (scene.mask == obj["instance"])[box[1]:box[1] + box[3], box[0]:box[0] + box[2]]
            for s in sizes:
                crops[s].append(crop_patch(scene.color, box, 0.15, local, size=s))
            labels.append(obj["class_name"])
    return {s: np.stack(c) for s, c in crops.items()}, np.array(labels)


def embeddings(net, patches: np.ndarray, size: int, layer: str) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return torch.cat([embed(net, torch.from_numpy(patches[i:i + 64]), size, layer)
                          for i in range(0, len(patches), 64)]).numpy().astype(np.float64)


def nearest_renders(Q: np.ndarray, truth: np.ndarray, R: np.ndarray, render_labels: np.ndarray, k: int = 10
                    ) -> dict[str, int]:
    """Right answers of the real class crops `Q` by their nearest render and by a k-NN vote
    (ties to the nearer class, as the package's kNN breaks them)."""
    D = (Q * Q).sum(1)[:, None] + (R * R).sum(1)[None] - 2 * Q @ R.T
    order = np.argsort(D, axis=1)[:, :k]
    votes = 0
    for i in range(len(Q)):
        names, counts = np.unique(render_labels[order[i]], return_counts=True)
        best = [n for n, c in zip(names, counts) if c == counts.max()]
        first = next(n for n in render_labels[order[i]] if n in best)
        votes += bool(first == truth[i])
    return {"nearest": int((render_labels[order[:, 0]] == truth).sum()), f"vote_{k}": votes, "counted": len(Q)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bags", nargs="+", required=True, help="labelled bags of real frames (import-dataset)")
    ap.add_argument("--sizes", default="32,64,128,160,224", help="crop sizes, pixels (comma-separated)")
    ap.add_argument("--scenes", type=int, default=450, help="rendered scenes for the renders' references")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="bench/results/crop_resolution_cpu.json")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    sizes = [int(s) for s in args.sizes.split(",")]
    classes = list(PROPS_CLASSES)
    crops, labels, sources = real_crops(args.bags, sizes)
    rcrops, rlabels = render_crops(args.scenes, sizes, args.seed)
    is_class = np.isin(labels, classes)
    net = backbone("cpu")
    doc = {"machine": platform.processor() or platform.machine(), "code": git_commit(exclude=("bench/results",)),
           "bags": [Path(b).name for b in args.bags], "segments": len(labels), "class_objects": int(is_class.sum()),
           "rendered_scenes": args.scenes, "seed": args.seed, "render_crops": len(rlabels), "rows": []}
    print(f"{len(labels)} real segments, {int(is_class.sum())} class objects; {len(rlabels)} render crops "
          f"of {args.scenes} scenes")
    for size in sizes:
        for layer in ("blocks", "head"):
            t0 = time.perf_counter()
            net_size = max(DEFAULT_NET_SIZE, size)
            X = embeddings(net, crops[size], net_size, layer)
            R = embeddings(net, rcrops[size], net_size, layer)
            row = {"crop": size, "net": net_size, "layer": layer,
                   "real_class_refs": nearest_across_sources(X, labels, sources, classes, True),
                   "real_all_refs": nearest_across_sources(X, labels, sources, classes, False),
                   "renders": nearest_renders(X[is_class], labels[is_class], R, rlabels),
                   "s": round(time.perf_counter() - t0, 1)}
            doc["rows"].append(row)
            a, b, r = row["real_class_refs"], row["real_all_refs"], row["renders"]
            print(f"crop {size:3d} px (net {net_size:3d}, {layer:6s}): real views {a['right']}/{a['counted']} class "
                  f"refs, {b['right']}/{b['counted']} all refs; renders nearest {r['nearest']}/{r['counted']}, "
                  f"10-NN {r['vote_10']}/{r['counted']}", flush=True)
    write_results(doc, args.out)


if __name__ == "__main__":
    main()
