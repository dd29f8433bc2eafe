"""How near real views of a product are to each other across sources, per feature kind. Not a test.

Teaching a class from one real frame (`teach_real_bench.py`) helps on another camera's frames
only if, in the model's features, a real view of the product is nearer to the same product
under that camera than to anything else the model holds. This bench measures that directly,
without the renders and without the node's naming rules: every class object the node finds
(matched to its ground-truth box, as replay-eval matches) is a query; its references are the
crops of the frames of every *other* source, with their labels.

  class refs    only the other sources' class objects are references: what teaching every
                class from every other source's views could reach at best, with nothing else
                in the index (an upper bound for "teach from one frame, score on the others").
  all refs      their distractors and clutter too: a query whose nearest crop is one of them
                is wrong, as a taught index that also holds taught `unknown`s would be.
  renders       the untaught default's nearest training example (renders), for comparison;
                and `renders + class refs` / `renders + all refs`: the nearest of either, what
                the default with every other source's views taught into it would answer at k 1.

Feature kinds: `cnn_color` (the default's extractor: EfficientNet embedding + colour parts),
`cnn` (its embedding alone), `color` (its colour parts alone) and `hog_color` (HOG + colour,
0.2.0's default). Distances are L2, as the kNN models use. A query counts only where its class
has at least one reference crop in another source.

    python bench/real_views_bench.py --bags real_uoc real_posecnn ... [--out F]

Bags: `robot-classify import-dataset`; the real frames are never committed, the results file
holds only the figures.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from teach_real_bench import load_frames  # noqa: E402  (also puts this checkout first on sys.path)

from robot_classify.data.matching import match_boxes  # noqa: E402
from robot_classify.evaluation.run_context import git_commit  # noqa: E402
from robot_classify.learn.features import FeaturePipeline  # noqa: E402
from robot_classify.learn.model import is_negative  # noqa: E402
from robot_classify.learn.model_io import load_model  # noqa: E402
from robot_classify.runtime.default_model import default_model_path  # noqa: E402
from robot_classify.runtime.frame_processor import FrameProcessor  # noqa: E402
from robot_classify.runtime.parameters import check_parameters  # noqa: E402


def segments(frames, processor: FrameProcessor):
    """Each frame, its processing result, and each segment's ground-truth label ("clutter" where it
    matches no box, as replay-eval matches)."""
    for f in frames:
        result = processor.process_messages(*f.msgs)
        objs = result.extraction.objects
        matched = {i: j for i, j, _ in match_boxes([o.bbox for o in objs], [g.bbox for g in f.gt])}
        yield f, result, [f.gt[matched[i]].label if i in matched else "clutter" for i in range(len(objs))]


def crops(frames, processor: FrameProcessor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every segment's crop, its ground-truth label and source."""
    patches, labels, sources = [], [], []
    for f, result, truth in segments(frames, processor):
        patches += [o.patch for o in result.extraction.objects]
        labels += truth
        sources += [f.source] * len(truth)
    return np.stack(patches), np.array(labels), np.array(sources)


def nearest_across_sources(X: np.ndarray, labels: np.ndarray, sources: np.ndarray, classes: list[str],
                           class_refs_only: bool, renders: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """1-NN of each class crop among the other sources' crops: right / counted, per class.
    `renders`: each crop's distance to its nearest training example and that example's class,
    which answers where it is nearer than every reference."""
    X = X.astype(np.float64)
    sq = (X * X).sum(1)
    D = np.sqrt(np.maximum(sq[:, None] + sq[None] - 2 * X @ X.T, 0))
    is_class = np.isin(labels, classes)
    per_class: dict[str, list[int]] = {}
    for i in np.flatnonzero(is_class):
        ref = (sources != sources[i]) & (is_class if class_refs_only else True)
        if not (ref & (labels == labels[i])).any():
            continue
        j = np.flatnonzero(ref)[np.argmin(D[i, ref])]
        answer = renders[1][i] if renders is not None and renders[0][i] < D[i, j] else labels[j]
        c = per_class.setdefault(str(labels[i]), [0, 0])
        c[0] += bool(answer == labels[i])
        c[1] += 1
    return {"right": sum(v[0] for v in per_class.values()), "counted": sum(v[1] for v in per_class.values()),
            "per_class": per_class}


def nearest_render(model, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each crop's distance to its nearest training example in the model's index (its renders)
    and that example's class."""
    dist, idx = model.classifier.kneighbors(X, 1)
    return dist[:, 0], np.asarray(model.class_names)[model.classifier.classes_[model.classifier.y_[idx[:, 0]]]]


def write_results(doc: dict, path: str) -> None:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bags", nargs="+", required=True, help="labelled bags of real frames (import-dataset)")
    ap.add_argument("--out", default="bench/results/real_views_cpu.json")
    args = ap.parse_args()
    model = load_model(str(default_model_path()), device="cpu")
    classes = [c for c in model.class_names if not is_negative(c)]
    patches, labels, sources = crops(load_frames(args.bags), FrameProcessor.from_parameters(model, check_parameters({})))
    X = model.features.transform(patches)
    embedding = model.features.extractor.embedding_dim
    kinds = {"cnn_color": X, "cnn": X[:, :embedding], "color": X[:, embedding:],
             "hog_color": FeaturePipeline("hog_color").fit(patches).transform(patches)}
    renders = nearest_render(model, X)
    doc = {"machine": platform.processor() or platform.machine(), "code": git_commit(exclude=("bench/results",)),
           "bags": [Path(b).name for b in args.bags], "segments": len(labels),
           "class_objects": int(np.isin(labels, classes).sum()), "kinds": {},
           # the renders alone: nearer than every reference, over the same queries
           "renders": nearest_across_sources(X, labels, sources, classes, True, (np.full(len(labels), -1.0), renders[1])),
           "renders + class refs": nearest_across_sources(X, labels, sources, classes, True, renders),
           "renders + all refs": nearest_across_sources(X, labels, sources, classes, False, renders)}
    for kind, F in kinds.items():
        doc["kinds"][kind] = {"class_refs": nearest_across_sources(F, labels, sources, classes, True),
                              "all_refs": nearest_across_sources(F, labels, sources, classes, False)}
        a, b = doc["kinds"][kind]["class_refs"], doc["kinds"][kind]["all_refs"]
        print(f"{kind:10s} nearest real view of another source: class refs {a['right']}/{a['counted']} "
              f"({100 * a['right'] / a['counted']:.1f}%), all refs {b['right']}/{b['counted']} "
              f"({100 * b['right'] / b['counted']:.1f}%)")
    for key in ("renders", "renders + class refs", "renders + all refs"):
        r = doc[key]
        print(f"cnn_color  {key}: {r['right']}/{r['counted']} ({100 * r['right'] / r['counted']:.1f}%)")
    write_results(doc, args.out)


if __name__ == "__main__":
    main()
