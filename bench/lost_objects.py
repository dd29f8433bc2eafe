"""Why labelled objects are not found, and whether colour could part the ones merged.

For each labelled object of a BOP-layout folder (real frames with `mask_visib/`) that the
node's segmentation does not find as `replay-eval` counts it (box IoU 0.5, at least half in
view), this says what became of it:

  merged      one segment holds at least half of it and at least 30% of a labelled neighbour
  grew        one segment holds at least half of it and no labelled neighbour: it took in
              unlabelled surroundings (or its box grew some other way)
  in parts    the segment holding most of it holds 20-50% of it
  not found   no segment holds 20% of it

Then colour: a segmenter could cut merged neighbours where their colours meet only if the
colour edge between two touching objects is stronger than the edges printed inside one. For
every pair of labelled objects that touch (their masks within 2 pixels), the median and p75
CIELAB gradient along where they meet is set beside each object's own p95 inside its mask
(7x7-eroded: print, highlights and shading).

    python bench/lost_objects.py BOP_FOLDER [BOP_FOLDER ...] [--out bench/results/lost_objects_cpu.json]

The segmentation is `extract_objects` with the default `SegmentationParams`, as the node runs it.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from robot_classify.data import bop
from robot_classify.data.frames import CLASS_MAP, load_class_map, ycbv_class_map
from robot_classify.data.matching import MIN_VISIBLE, match_boxes
from robot_classify.runtime.patches import SegmentationParams, extract_objects

OUTCOMES = ("found", "merged", "grew", "in parts", "not found")


def colour_gradient(color: np.ndarray) -> np.ndarray:
    """CIELAB gradient magnitude per pixel (Sobel after a sigma-1 blur; per unit of Lab)."""
    lab = cv2.cvtColor(cv2.GaussianBlur(color, (0, 0), 1.0).astype(np.float32) / 255, cv2.COLOR_RGB2Lab)
    sq = np.zeros(color.shape[:2], np.float32)
    for c in range(3):
        sq += cv2.Sobel(lab[..., c], cv2.CV_32F, 1, 0) ** 2 + cv2.Sobel(lab[..., c], cv2.CV_32F, 0, 1) ** 2
    return np.sqrt(sq) / 8  # the 3x3 Sobel's weights sum to 8


def outcome(j: int, masks: list[np.ndarray], segments: list[np.ndarray], matched: set[int]) -> str:
    if j in matched:
        return "found"
    area = max(int(masks[j].sum()), 1)
    held = [int((s & masks[j]).sum()) / area for s in segments]
    if not held or max(held) < 0.2:
        return "not found"
    best = int(np.argmax(held))
    if held[best] < 0.5:
        return "in parts"
    neighbours = [i for i, m in enumerate(masks) if i != j and (segments[best] & m).sum() > 0.3 * m.sum()]
    return "merged" if neighbours else "grew"


def gt_index(ref, g) -> int:
    """The object's place in scene_gt.json, which names its mask file. Since 0.9.5 an instance id is
    its obj_id (+ INSTANCE_STRIDE per earlier instance of the same obj_id), not that place: this
    bench had kept reading masks by the id (broken since, found in 0.9.13)."""
    obj_id, k = g.instance % bop.INSTANCE_STRIDE, g.instance // bop.INSTANCE_STRIDE
    places = [i for i, gt in enumerate(ref.gt) if int(gt["obj_id"]) == obj_id]
    return places[k]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+", help="BOP split or scene folders with mask_visib/")
    ap.add_argument("--out", default="bench/results/lost_objects_cpu.json")
    args = ap.parse_args()
    params = SegmentationParams()
    counts = dict.fromkeys(OUTCOMES, 0)
    lost, pairs, inside = [], [], []
    k5 = np.ones((5, 5), np.uint8)
    for folder in args.folders:
        # the folder's own class map, as import-dataset takes it (hand-labelled sets number
        # their objects their own way), else YCB-V's
        own = Path(folder) / CLASS_MAP
        class_map = load_class_map(own) if own.is_file() else ycbv_class_map()
        for ref in bop.frame_refs(folder):
            if not ref.has_masks:
                raise SystemExit(f"{ref.scene}: no mask_visib/ (this bench needs the objects' masks)")
            frame = bop.read_frame(ref, class_map)
            found = extract_objects(frame.color, frame.depth, frame.intrinsics, params)
            H, W = frame.depth.shape
            segments = []
            for o in found.objects:
                m = np.zeros((H, W), bool)
                x, y, w, h = o.bbox
                m[y:y + h, x:x + w] = o.mask
                segments.append(m)
            objs = list(frame.objects)
            masks = [cv2.imread(str(ref.scene / "mask_visib" / f"{ref.im_id:06d}_{gt_index(ref, g):06d}.png"), 0) > 0
                     for g in objs]
            matched = {j for _, j, _ in match_boxes([o.bbox for o in found.objects], [g.bbox for g in objs], 0.5)}
            for j, g in enumerate(objs):
                if g.visible_fraction is not None and g.visible_fraction < MIN_VISIBLE:
                    continue
                what = outcome(j, masks, segments, matched)
                counts[what] += 1
                if what != "found":
                    lost.append({"frame": f"{Path(folder).name}/{ref.name}", "instance": g.instance,
                                 "dataset_id": g.dataset_id, "label": g.label, "outcome": what})
            grad = colour_gradient(frame.color)
            for j, m in enumerate(masks):
                core = cv2.erode(m.view(np.uint8), np.ones((7, 7), np.uint8)).view(bool)
                if core.any():
                    inside.append(float(np.percentile(grad[core], 95)))
            grown = [cv2.dilate(m.view(np.uint8), k5).view(bool) for m in masks]
            for a in range(len(masks)):
                for b in range(a + 1, len(masks)):
                    meet = grown[a] & grown[b]
                    if meet.sum() >= 20:
                        pairs.append({"frame": f"{Path(folder).name}/{ref.name}", "a": objs[a].instance,
                                      "b": objs[b].instance, "pixels": int(meet.sum()),
                                      "median": float(np.median(grad[meet])),
                                      "p75": float(np.percentile(grad[meet], 75))})
    total = sum(counts.values())
    print(f"{total} labelled objects at least {MIN_VISIBLE:.0%} in view: "
          + ", ".join(f"{k} {v}" for k, v in counts.items()))
    for r in lost:
        print(f"  {r['frame']} object {r['instance']} ({r['label']}, id {r['dataset_id']}): {r['outcome']}")
    med = np.array([p["median"] for p in pairs])
    ins = np.array(inside)
    q = (50, 75, 90)
    print(f"colour gradient (CIELAB units per pixel), {len(pairs)} touching pairs, median along where they meet: "
          f"p50 / p75 / p90 {' / '.join(f'{v:.1f}' for v in np.percentile(med, q))}")
    print(f"inside {len(ins)} objects, each one's p95: p50 / p75 / p90 "
          f"{' / '.join(f'{v:.1f}' for v in np.percentile(ins, q))}")
    print(f"pairs whose meeting line is stronger than the median object's inside: "
          f"{int((med > np.median(ins)).sum())} of {len(med)}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"folders": [str(f) for f in args.folders], "counts": counts, "lost": lost,
                               "pairs": pairs, "inside_p95": inside}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
