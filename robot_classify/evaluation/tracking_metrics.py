"""What tracks add up to over replay-eval's per-object records (metrics.json `tracking`).

The usual multi-object-tracking counts (CLEAR MOT), on ground truth whose `instance` ids
persist across frames (`make-bag --sequence`): a record is one ground-truth object in one
frame (matched to a detection by box IoU, or missed) or one unmatched detection.

- id_switches: a ground-truth object matched to another track than the one it was last
  matched to (CLEAR MOT's IDSW);
- fragmentations: a ground-truth object's run of matched frames interrupted (missed, or its
  detection unmatched) and resumed later (FM);
- mota: 1 - (missed + false positives + id switches) / ground-truth object-frames;
- per-frame vs fused accuracy over matched objects of the model's classes: the frame's own
  label against the track's fused label, on the same records;
- label_changes: how often a track's fused label (and, to compare, its per-frame label)
  changes from one of its frames to the next, per 100 track-frames.

`persistent_ids` is False where one instance id names objects of two classes (a bag of
unrelated scenes, `make-bag` without `--sequence`): the counts are then computed all the same,
and the CLI and the report say they mean nothing there instead of printing them.

A bag may hold several recordings (an imported BOP split's scenes, `make-bag --sequence`'s
sequences), written with a gap between them that ends every track (`bags.SEQUENCE_GAP_S`). An id
is an identity within its recording only (BOP numbers each scene's objects by `obj_id`, so the
same id comes back in the next scene on another object): each record carries `recording`, how
many times the tracker had ended every track when its frame came (`Tracker.resets`; records
without it are one recording), and the counts keep recordings apart; `sequences` says how many.
"""
from __future__ import annotations

from typing import Any

from ..runtime.frame_processor import UNKNOWN


def _rate(n: int, d: int, per: float) -> float | None:
    return None if d == 0 else n * per / d


def _a(word: str) -> str:
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def identity(r: dict[str, Any]) -> tuple[int, int]:
    """A ground-truth object's identity: its id within its recording."""
    return r.get("recording", 0), r["gt_instance"]


def id_reuse(gt_rows: list[dict[str, Any]]) -> str | None:
    """Where the ground truth's instance ids do not persist: an id that names objects of two
    classes within one recording is no identity (a bag of unrelated scenes numbers each scene's
    objects from 0). A sentence naming the first such id, or None."""
    first: dict[tuple[int, int], dict[str, Any]] = {}
    frames: dict[tuple[int, int], set] = {}
    for r in gt_rows:
        key = identity(r)
        seen = first.setdefault(key, r)
        if seen["truth"] != r["truth"]:
            return (f"instance {r['gt_instance']} is {_a(seen['truth'])} in frame {seen['frame']} and {_a(r['truth'])} "
                    f"in frame {r['frame']}")
        frames.setdefault(key, set()).add(r["frame"])
    # Ids that never repeat (a `draft-labels` bag numbers every object of every frame anew, found
    # from outside) leave no identity to keep either: the counts had read as measured.
    if len({r["frame"] for r in gt_rows}) > 1 and all(len(f) == 1 for f in frames.values()):
        return "no instance id is in more than one frame"
    return None


def tracking_summary(records: list[dict[str, Any]], tracker_ms: list[float] | None = None) -> dict[str, Any]:
    rows = sorted(records, key=lambda r: r["frame"])
    gt_rows = [r for r in rows if r["truth"] is not None and r.get("gt_instance") is not None]
    reuse = id_reuse(gt_rows)
    last_track: dict[tuple[int, int], int] = {}
    matched_before: dict[tuple[int, int], bool] = {}
    interrupted: dict[tuple[int, int], bool] = {}
    switches = fragments = 0
    for r in gt_rows:
        g, tid = identity(r), r.get("track_id")
        if r["iou"] is None or tid is None:
            if matched_before.get(g):
                interrupted[g] = True
            continue
        if g in last_track and last_track[g] != tid:
            switches += 1
        if interrupted.pop(g, False):
            fragments += 1
        last_track[g] = tid
        matched_before[g] = True
    known = [r for r in gt_rows if r["known"] and r["iou"] is not None and r.get("fused_label") is not None]
    single = sum(1 for r in known if r["label"] == r["truth"])
    fused = sum(1 for r in known if r["fused_label"] == r["truth"])
    non_class = [r for r in gt_rows if r["known"] is False and r["iou"] is not None and r.get("fused_label")]
    by_track: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        if r.get("track_id") is not None:
            by_track.setdefault(r["track_id"], []).append(r)
    fused_changes = sum(sum(a["fused_label"] != b["fused_label"] for a, b in zip(t, t[1:])) for t in by_track.values())
    frame_changes = sum(sum(a["label"] != b["label"] for a, b in zip(t, t[1:])) for t in by_track.values())
    track_frames = sum(len(t) for t in by_track.values())
    missed = sum(1 for r in gt_rows if r["iou"] is None)
    false_pos = sum(1 for r in rows if r["outcome"] == "false_positive")
    out = {
        # False: the MOT counts below compare identities the ground truth does not have
        "persistent_ids": reuse is None, "id_reuse": reuse,
        "object_frames": len(gt_rows), "matched_object_frames": len(gt_rows) - missed,
        "ground_truth_objects": len({identity(r) for r in gt_rows}),
        "tracks": len(by_track), "sequences": len({r.get("recording", 0) for r in rows}),
        "id_switches": switches, "id_switches_per_500": _rate(switches, len(gt_rows), 500.0),
        "fragmentations": fragments,
        "mota": None if not gt_rows else 1.0 - (missed + false_pos + switches) / len(gt_rows),
        "accuracy": {"n": len(known), "single_frame": _rate(single, len(known), 1.0),
                     "fused": _rate(fused, len(known), 1.0)},
        "non_class_unknown": {"n": len(non_class),
                              "single_frame": _rate(sum(r["label"] == UNKNOWN for r in non_class), len(non_class), 1),
                              "fused": _rate(sum(r["fused_label"] == UNKNOWN for r in non_class), len(non_class), 1)},
        "label_changes": {"track_frames": track_frames, "fused": fused_changes, "single_frame": frame_changes,
                          "fused_per_100": _rate(fused_changes, track_frames, 100.0),
                          "single_frame_per_100": _rate(frame_changes, track_frames, 100.0)},
    }
    if tracker_ms:
        ms = sorted(tracker_ms)
        out["tracker_ms"] = {"p50": ms[len(ms) // 2], "p99": ms[min(len(ms) - 1, int(len(ms) * 0.99))],
                             "max": ms[-1]}
    return out
