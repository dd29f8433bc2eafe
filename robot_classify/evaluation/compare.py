"""`replay-eval --compare`: two replay-eval reports of one bag, side by side.

Each report folder holds metrics.json and objects.jsonl (one record per ground-truth object
and per unmatched detection). Ground-truth objects are the common key, (stamp, index in the
frame's ground truth): the two models saw the same objects, so where their labels differ is
exactly what changing the model changes. Crops come from the bag itself.
"""
from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

import cv2

from ..data.bags import read_frames
from ..runtime.image_conversion import color_from_msg
from .failures import RED, WHITE, box_crop
from .metrics import defined_rates
from .report_html import CSS, SELF_CHECK, _f3, _headline, _table, answer_text, class_objects_matched

BLUE = (40, 90, 255)
HEADLINE = ("object_accuracy", "detection_recall", "detection_precision")


COMPARE_OUTPUTS = ("compare.html", "compare.json", "compare.md", "disagreements")  # beside the a/ and b/ reports


def load_report(folder: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """metrics.json and objects.jsonl of a replay-eval report folder."""
    folder = Path(folder)
    try:
        metrics = json.loads((folder / "metrics.json").read_text())
        records = [json.loads(line) for line in (folder / "objects.jsonl").read_text().splitlines() if line.strip()]
    except FileNotFoundError as e:
        raise ValueError(f"{folder}: not a replay-eval report folder (no {Path(e.filename).name}; "
                         "reports of this version write metrics.json and objects.jsonl)") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{folder}: damaged report ({e})") from None
    return metrics, records


def _said(r: dict[str, Any] | None) -> str:
    if r is None or r["label"] is None:
        return "missed"
    return r["label"]


def disagreements(rec_a: list[dict], rec_b: list[dict]) -> tuple[list[dict[str, Any]], int]:
    """Ground-truth objects the two label differently (`missed` counts as a label); and the
    number of objects they share."""
    key = lambda r: (r["stamp_ns"], r["gt_index"])  # noqa: E731
    a = {key(r): r for r in rec_a if r["truth"] is not None}
    b = {key(r): r for r in rec_b if r["truth"] is not None}
    common = sorted(set(a) & set(b))
    out = []
    for k in common:
        ra, rb = a[k], b[k]
        if _said(ra) != _said(rb):
            truth = ra["truth"]
            out.append({"stamp_ns": k[0], "gt_index": k[1], "truth": truth, "known": ra["known"],
                        "truth_bbox": ra["truth_bbox"], "a": _said(ra), "a_score": ra["score"], "a_bbox": ra["bbox"],
                        "a_top": ra["top"], "b": _said(rb), "b_score": rb["score"], "b_bbox": rb["bbox"],
                        "b_top": rb["top"],
                        "right": "a" if _said(ra) == truth else "b" if _said(rb) == truth else "neither"})
    return out, len(common)


def _crops(bag: str, topics: tuple[str, str, str], items: list[dict], folder: Path, cap: int) -> None:
    """disagreements/NNN.png for the first `cap` items, read from the bag (truth white, A red, B blue)."""
    want = {d["stamp_ns"] for d in items[:cap]}
    if not want:
        return
    (folder / "disagreements").mkdir(exist_ok=True)
    by_stamp: dict[int, list[tuple[int, dict]]] = {}
    for n, d in enumerate(items[:cap]):
        by_stamp.setdefault(d["stamp_ns"], []).append((n, d))
    for frame in read_frames(bag, topics):
        if frame.stamp_ns not in by_stamp:
            continue
        color = color_from_msg(frame.color)
        for n, d in by_stamp.pop(frame.stamp_ns):
            drawn = [(b, c, t) for b, c, t in ((d["a_bbox"], RED, 6), (d["b_bbox"], BLUE, 3), (d["truth_bbox"], WHITE, 1))
                     if b]
            crop = box_crop(color, [x[0] for x in drawn], [x[1] for x in drawn], thickness=[x[2] for x in drawn])
            cv2.imwrite(str(folder / "disagreements" / f"{n:03d}.png"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
            d["crop"] = f"disagreements/{n:03d}.png"
        if not by_stamp:
            break


def _same_bag(ma: dict[str, Any], mb: dict[str, Any], dir_a: str | Path, dir_b: str | Path,
              bag: str | Path | None) -> None:
    """Two reports pair objects by stamp: made on two bags that share stamps (every make-bag bag
    starts at the same one), they would be compared object for object as if one bag, and the
    crops cut from a third. Reports written before the fingerprint are taken at their word."""
    from .run_context import bag_fingerprint

    fa, fb = (m["run"]["bag"].get("metadata_sha256") for m in (ma, mb))
    if fa and fb and fa != fb:
        raise ValueError(f"{dir_a} was made on {ma['run']['bag']['path']} and {dir_b} on "
                         f"{mb['run']['bag']['path']}: compare two reports of one bag")
    given = bag_fingerprint(bag) if bag is not None else None
    if given and (fa or fb) and given != (fa or fb):
        raise ValueError(f"--bag {bag} is not the bag the reports were made on ({ma['run']['bag']['path']})")


def compare_reports(dir_a: str | Path, dir_b: str | Path, out: str | Path, bag: str | Path | None = None,
                    names: tuple[str, str] | None = None, cap: int = 60) -> dict[str, Any]:
    """compare.json, compare.md and compare.html (with crops of up to `cap` disagreements) in
    `out`. The bag is the reports' own unless given."""
    (ma, ra), (mb, rb) = load_report(dir_a), load_report(dir_b)
    _same_bag(ma, mb, dir_a, dir_b, bag)
    items, shared = disagreements(ra, rb)
    if shared == 0:
        raise ValueError(f"{dir_a} and {dir_b} share no ground-truth objects: were they made on the same bag?")
    differ = differing_parameters(ma, mb)
    names = names or (ma["run"]["model"]["name"], mb["run"]["model"]["name"])
    if names[0] == names[1]:  # a calibrated or taught model keeps its name: the files tell them apart
        files = tuple(Path(m["run"]["model"].get("path") or "").name for m in (ma, mb))
        folders = (Path(dir_a).resolve().name, Path(dir_b).resolve().name)
        if all(files) and files[0] != files[1]:
            names = files
        elif differ and folders[0] != folders[1]:  # one model under two settings: the runs' own folders
            names = (f"A: {folders[0]}", f"B: {folders[1]}")
        else:
            names = (f"A: {names[0]}", f"B: {names[1]}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bag = str(bag or ma["run"]["bag"]["path"])
    rb_ = ma["run"]["bag"]
    _crops(bag, (rb_["color_topic"], rb_["depth_topic"], rb_["camera_info_topic"]), items, out, cap)
    # Every class of either model (a taught class is the one a user compares for); None (n/a) where
    # a rate is undefined: a class never predicted, not in this bag's ground truth, or not the model's
    classes = list(ma["per_class"]) + [c for c in mb["per_class"] if c not in ma["per_class"]]
    none = {"precision": None, "recall": None, "f1": None}
    per_class = {c: {f"{k}_{s}": x for s, m in (("a", ma), ("b", mb))
                     for k, x in (defined_rates(m["per_class"][c]) if c in m["per_class"] else none).items()}
                 for c in classes}
    for c, v in per_class.items():
        for k in ("precision", "recall", "f1"):
            v[f"{k}_delta"] = None if None in (v[f"{k}_a"], v[f"{k}_b"]) else v[f"{k}_b"] - v[f"{k}_a"]
    result = {
        "schema": "robot_classify/ReplayEvalCompare/1", "bag": bag, "names": list(names),
        "reports": [str(Path(dir_a).resolve()), str(Path(dir_b).resolve())],
        "models": [{k: m["run"]["model"][k] for k in ("name", "sha256", "path")} for m in (ma, mb)],
        "parameters_differ": {k: [a, b] for k, (a, b) in differ.items()},
        "headline": {key: {"a": ma[key], "b": mb[key], "delta": mb[key] - ma[key]} for key in HEADLINE},
        # object accuracy counts the objects of each model's own classes: a taught class adds its objects
        "class_objects_matched": {t: class_objects_matched(m) for t, m in (("a", ma), ("b", mb))},
        # what `calibrate` changes, where the labels stay the same
        "named_scores": {t: {k: m["named"].get(k) for k in ("mean_score", "ece")} for t, m in (("a", ma), ("b", mb))},
        "centroid_error_median_mm": {"a": ma["centroid_error_mm"]["median"], "b": mb["centroid_error_mm"]["median"]},
        # the headline's latency (`report_html._headline`): the stages' total where timed
        "latency_p50_ms": {t: (m["timing_ms"].get("total") or m["latency_ms"])["p50"]
                           for t, m in (("a", ma), ("b", mb))},
        "per_class": per_class,
        "shared_objects": shared,
        "disagreements": {"n": len(items), "a_right": sum(d["right"] == "a" for d in items),
                          "b_right": sum(d["right"] == "b" for d in items),
                          "neither": sum(d["right"] == "neither" for d in items), "items": items},
    }
    (out / "compare.json").write_text(json.dumps(result, indent=2))
    (out / "compare.md").write_text(compare_markdown(result, ma, mb))
    (out / "compare.html").write_text(_compare_html(result, ma, mb, out))
    return result


def _rows(ma: dict[str, Any], mb: dict[str, Any]) -> list[list[str]]:
    """The headline side by side, and the names' scores (`calibrate` changes them, not the labels)."""
    rows = [[name, va, vb] for (name, va, _), (_, vb, _) in zip(_headline(ma), _headline(mb))]
    scores = [m["named"] for m in (ma, mb)]
    at = next(i for i, row in enumerate(rows) if row[0] == "named precision") + 1
    for key, label in (("ece", "names' ECE"), ("mean_score", "names' mean score")):  # inserted: mean score first
        if any(s.get(key) is not None for s in scores):
            rows.insert(at, [label, *("n/a" if s.get(key) is None else f"{s[key]:.2f}" for s in scores)])
    return rows


def _counted_note(r: dict[str, Any]) -> str:
    """Said where the two accuracies are over different objects (one model knows more classes)."""
    n = r["class_objects_matched"]
    if n["a"] == n["b"]:
        return ""
    a, b = r["names"]
    return (f"Object accuracy counts the objects of each model's own classes: {n['a']} for {a}, {n['b']} for {b} "
            "(a class one model has and the other lacks, such as a taught one, adds its objects); the classes' rows "
            "and the objects labelled differently below compare like with like.")


def differing_parameters(ma: dict[str, Any], mb: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The node parameters the two runs were made with that differ (a params file's change, or
    the model file): two runs of one model are told apart by these."""
    pa, pb = ma["run"].get("parameters") or {}, mb["run"].get("parameters") or {}
    return {k: (pa.get(k), pb.get(k)) for k in sorted(set(pa) | set(pb)) if pa.get(k) != pb.get(k)}


def compare_markdown(r: dict[str, Any], ma: dict, mb: dict) -> str:
    a, b = r["names"]
    lines = [f"### replay-eval compare on `{Path(r['bag']).name}`: {a} vs {b}", ""]
    if r.get("parameters_differ"):
        lines += ["Parameters that differ: " + "; ".join(f"`{k}` {va!r} / {vb!r}"
                                                         for k, (va, vb) in r["parameters_differ"].items()), ""]
    lines += [f"| metric | {a} | {b} |", "| --- | --- | --- |"]
    for name, va, vb in _rows(ma, mb):
        lines.append(f"| {name} | {va} | {vb} |")
    if _counted_note(r):
        lines += ["", _counted_note(r)]
    d = r["disagreements"]
    lines += ["", f"They label {d['n']} of {r['shared_objects']} ground-truth objects differently: {a} right on "
                  f"{d['a_right']}, {b} right on {d['b_right']}, neither on {d['neither']}.", "",
              f"| class | F1 {a} | F1 {b} | delta F1 | delta recall |", "| --- | ---: | ---: | ---: | ---: |"]
    for c, v in r["per_class"].items():
        lines.append(f"| {c} | {_f3(v['f1_a'])} | {_f3(v['f1_b'])} | {_f3(v['f1_delta'], sign=True)} "
                     f"| {_f3(v['recall_delta'], sign=True)} |")
    return "\n".join(lines) + "\n"


def _compare_html(r: dict[str, Any], ma: dict, mb: dict, out: Path) -> str:
    e = html.escape
    a, b = r["names"]
    # each side's own report, where it wrote one (not with --no-report)
    reports = "".join(f', <a href="{e(os.path.relpath(Path(d) / "report.html", out))}">report {tag}</a>'
                      for tag, d in zip("AB", r["reports"]) if (Path(d) / "report.html").is_file())
    head = _rows(ma, mb)
    per = [[c, *(_f3(v[k]) for k in ("precision_a", "precision_b", "recall_a", "recall_b", "f1_a", "f1_b")),
            _f3(v["f1_delta"], sign=True)] for c, v in r["per_class"].items()]
    models = r["models"]
    d = r["disagreements"]
    cards = []
    for item in d["items"]:
        if "crop" not in item:
            continue
        sa, sb = (answer_text(None if item[t] == "missed" else item[t], item[f"{t}_top"], item[f"{t}_score"])
                  for t in "ab")
        cards.append(f'<figure class="fail"><img src="{e(item["crop"])}" alt="disagreement"><figcaption>'
                     f'truth <b>{e(item["truth"])}</b><br><span style="color:#c00">{e(a)}</span>: <b>{e(sa)}</b><br>'
                     f'<span style="color:#24f">{e(b)}</span>: <b>{e(sb)}</b><br>right: {e(item["right"])}'
                     f'</figcaption></figure>')
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>replay-eval compare</title>
<style>{CSS}</style>{SELF_CHECK}</head><body><p id="broken" hidden></p>
<h1>{e(a)} vs {e(b)}</h1><p>bag <code>{e(r['bag'])}</code>.<br>
A = <b>{e(a)}</b>: <code>{e(models[0]['path'])}</code> ({e(models[0]['sha256'][:12])})<br>
B = <b>{e(b)}</b>: <code>{e(models[1]['path'])}</code> ({e(models[1]['sha256'][:12])})<br>
Files: <a href="compare.json">compare.json</a>, <a href="compare.md">compare.md</a>{reports}.</p>
{_table(['parameter that differs', a, b], [[k, str(va), str(vb)] for k, (va, vb) in r['parameters_differ'].items()])
 if r['parameters_differ'] else ''}
{_table(['', a, b], head)}
{f"<p>{e(_counted_note(r))}</p>" if _counted_note(r) else ""}
<h2>Per class</h2>{_table(['class', 'precision A', 'precision B', 'recall A', 'recall B', 'F1 A', 'F1 B',
                            'F1 B - A'], per)}
<h2>Objects they label differently ({d['n']} of {r['shared_objects']})</h2>
<p>{e(a)} right on {d['a_right']}, {e(b)} right on {d['b_right']}, neither on {d['neither']}. Boxes: white =
ground truth, red = {e(a)}, blue = {e(b)}.</p>
<div>{''.join(cards) or '<p>None: the two models agree on every object.</p>'}</div></body></html>
"""
