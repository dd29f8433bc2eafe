"""replay-eval's report: figures, report.html and summary.md, from metrics.json's dict and the records.

One self-contained folder (HTML + PNG + JSON), opened from disk without a server. The page
checks its own images when it loads and says which are missing (a folder copied without its
`failures/` or `frames/`); `body[data-images]` holds "loaded/total" for tests.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from ..runtime.frame_processor import UNKNOWN
from .metrics import shown_rates
from .replay_metrics import STAGES

OUTCOME_TEXT = {"misclassified": "wrong class", "distractor_named": "no-class object named",
                "false_positive": "detection of nothing", "missed": "missed", "rejected": "refused (unknown)"}

CSS = """body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1200px;padding:0 1em;color:#222}
h2{border-bottom:1px solid #ccc;padding-bottom:3px;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0} td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:right}
td:first-child,th:first-child{text-align:left} .ctx td{text-align:left;font-family:monospace;font-size:.9em}
.head{display:flex;flex-wrap:wrap;gap:1em} .num{background:#f4f6f8;border-radius:6px;padding:.5em 1em}
.num b{display:block;font-size:1.7em} .num span{font-size:.85em;color:#555}
figure{display:inline-block;margin:4px;vertical-align:top} figure.fail{width:190px;font-size:.85em}
img{max-width:100%} .fail img{border:1px solid #999} .o{font-weight:bold;color:#b00}
.o-missed{color:#a60} .o-rejected{color:#666} .note{color:#555;font-size:.9em;max-width:900px}
#broken{background:#fdd;padding:.5em;border:1px solid #c00}"""

SELF_CHECK = """<script>
(function(){var bad=[];
document.addEventListener('error',function(e){var t=e.target;if(t&&t.tagName==='IMG')bad.push(t.getAttribute('src'));},true);
window.addEventListener('load',function(){var im=document.images,ok=0;
for(var i=0;i<im.length;i++){if(im[i].complete&&im[i].naturalWidth>0)ok++;
else if(bad.indexOf(im[i].getAttribute('src'))<0)bad.push(im[i].getAttribute('src'));}
document.body.setAttribute('data-images',ok+'/'+im.length);
if(bad.length){var p=document.getElementById('broken');p.textContent='Missing images (copied without its folders?): '+bad.join(', ');p.hidden=false;}});})();
</script>"""


def _e(v: Any) -> str:
    return html.escape(str(v))


def _n(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1%}"


def _f3(v: float | None, sign: bool = False) -> str:
    return "n/a" if v is None else f"{v:+.3f}" if sign else f"{v:.3f}"


def _mm(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f}"


def write_figures(m: dict[str, Any], records: list[dict], folder: Path) -> list[str]:
    """The PNG figures; returns their file names (a figure with no data is left out)."""
    from .plots import (plot_confusion, plot_coverage, plot_error_cdf, plot_iou_histogram, plot_reliability,
                        plot_score_histograms, plot_stage_times, plot_timeline)

    made = []
    plot_confusion(np.array(m["confusion"]["matrix"]), m["confusion"]["labels"], folder / "confusion.png",
                   f"object accuracy {m['object_accuracy']:.1%}, recall {m['detection_recall']:.1%}", drop_empty=True)
    made.append("confusion.png")
    errs = {"all": [r["centroid_error_m"] * 1000 for r in records if r["centroid_error_m"] is not None]}
    for c in m["centroid_error_mm"]["per_class"]:
        errs[c] = [r["centroid_error_m"] * 1000 for r in records
                   if r["centroid_error_m"] is not None and r["truth"] == c]
    if errs["all"]:
        plot_error_cdf(errs, folder / "centroid_error.png", "3D centroid error (mm)",
                       f"centroid error: median {m['centroid_error_mm']['median']:.1f} mm, "
                       f"p90 {m['centroid_error_mm']['p90']:.1f} mm")
        made.append("centroid_error.png")
    ious = [r["iou"] for r in records if r["iou"] is not None]
    if ious:
        plot_iou_histogram(np.array(ious), folder / "box_iou.png", m["box_iou"]["match_threshold"])
        made.append("box_iou.png")
    known = [r for r in records if r["known"] and r["iou"] is not None]
    t = m["thresholds"]
    if known:
        right = np.clip([r["score"] for r in known if r["top"] == r["truth"]], 0, 1)  # as threshold_summary
        wrong = np.clip([r["score"] for r in known if r["top"] != r["truth"]], 0, 1)
        other = np.clip([r["score"] for r in records if r["known"] is False and r["iou"] is not None], 0, 1)
        plot_score_histograms(right, wrong, folder / "scores.png", t["min_score"], other)
        cov = t["coverage"]
        curve = {"thresholds": [c["min_score"] for c in cov],
                 "coverage": [np.nan if c["coverage"] is None else c["coverage"] for c in cov],
                 "accuracy": [np.nan if c["accuracy"] is None else c["accuracy"] for c in cov]}
        named = None if cov[0]["no_class_named"] is None else [c["no_class_named"] for c in cov]
        plot_coverage(curve, folder / "coverage.png", t["min_score"], named)
        rel = {k: np.array([np.nan if v is None else v for v in t["reliability"][k]], float)
               for k in ("edges", "confidence", "accuracy")}
        plot_reliability({**rel, "count": np.array(t["reliability"]["count"])}, folder / "reliability.png", t["ece"])
        made += ["scores.png", "coverage.png", "reliability.png"]
    if m["timing_ms"]:
        plot_stage_times(m["timing_ms"], folder / "stages.png")
        rows = m["per_frame"]
        t0 = rows[0]["stamp_ns"]
        parts = {s: np.array([r["stages_ms"].get(s, 0.0) for r in rows]) for s in STAGES[:-1]}
        parts["other"] = np.maximum(0.0, np.array([r["stages_ms"].get("total", 0.0) for r in rows])
                                    - sum(parts.values()))
        plot_timeline(np.array([(r["stamp_ns"] - t0) / 1e9 for r in rows]), parts, folder / "timeline.png")
        made += ["stages.png", "timeline.png"]
    return made


def _name_scores(nm: dict[str, Any]) -> str:
    """The names' mean score beside the share right: a planner reading 0.95 should find 95%."""
    if nm.get("mean_score") is None:  # nothing named, or metrics.json of a version before 0.7.1
        return ""
    return f"; their scores: mean {nm['mean_score']:.2f}, ECE {nm['ece']:.2f}"


def class_objects_matched(m: dict[str, Any]) -> int:
    """The matched objects a report's object accuracy is over: those of its model's classes."""
    return m["objects"]["matched"] - m["non_class_objects"]["matched"]


def _headline(m: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(name, value, detail) for the top of the page and summary.md."""
    c, nc, f, t = m["centroid_error_mm"], m["non_class_objects"], m["failures"], m["timing_ms"].get("total")
    nm = m["named"]
    lat = t or m["latency_ms"]
    counted = class_objects_matched(m)
    rows = [
        ("object accuracy", _pct(m["object_accuracy"]) if counted > 0 else "n/a",
         f"{counted} matched objects of the model's classes"),
        ("named precision", "n/a" if nm["precision"] is None else _pct(nm["precision"]),
         f"{nm['right']} of {nm['named']} class names right (wrong: {nm['wrong_class']} another class, "
         f"{_n(nm['non_class_named'], 'object')} of no class, {nm['clutter_named']} clutter: "
         f"{_n(nm['clutter_named'], 'detection')} of nothing labelled)"
         + _name_scores(nm)),
        ("detection recall", _pct(m["detection_recall"]), f"{m['objects']['matched']} of {m['objects']['ground_truth']}"
                                                          " ground-truth objects found"),
        ("detection precision", _pct(m["detection_precision"]), f"of {m['objects']['detections']} detections"),
        ("3D centroid error", "n/a" if c["median"] is None else f"{c['median']:.1f} mm",
         f"median; p90 {_mm(c['p90'])}, max {_mm(c['max'])} mm over {c['n']} objects"),
        ("box IoU", "n/a" if m["box_iou"]["median"] is None else f"{m['box_iou']['median']:.2f}",
         "median over matched objects"),
        ("no-class objects named", f"{nc['named']} of {nc['matched']}", f"{nc['labelled_unknown']} called unknown"),
        ("failures", str(f["total"]), ", ".join(f"{v} {OUTCOME_TEXT[k]}" for k, v in f["counts"].items() if v)
         or "none"),
        ("processing p50 / p99", f"{lat['p50']:.1f} / {lat['p99']:.1f} ms", _latency_detail(m, t is not None)),
    ]
    return rows[:1] + _tracking_rows(m.get("tracking")) + rows[1:]


def _latency_detail(m: dict[str, Any], staged: bool) -> str:
    """Which of metrics.json's two timings the headline shows: the stages' total (`timing_ms`),
    and beside it the time around the whole call (`latency_ms`: it also counts the first frame's
    one-off imports, so its p99 over a few frames can be the first frame's)."""
    if not staged:
        return "per frame, around the node's processing (metrics.json latency_ms)"
    a = m["latency_ms"]
    return (f"per frame, all stages (metrics.json timing_ms.total); metrics.json's latency_ms times the whole "
            f"call, the first frame's one-off imports included: {a['p50']:.1f} / {a['p99']:.1f} ms")


def _tracking_rows(t: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """Tracks (tracking.enabled): fused vs per-frame accuracy and the MOT counts, after object accuracy."""
    if not t or not t["accuracy"]["n"]:
        return []
    if not t.get("persistent_ids", True):
        return [("tracks", "not measured", f"the ground truth's instance ids do not persist across frames "
                                           f"({t['id_reuse']}): tracks need labels that keep one id per object "
                                           "from frame to frame (make-bag --sequence renders such a bag)")]
    a, lc = t["accuracy"], t["label_changes"]
    return [("fused accuracy (tracks)", _pct(a["fused"]), f"per frame {_pct(a['single_frame'])}, over {a['n']} "
                                                         "matched objects of the model's classes"),
            ("id switches", str(t["id_switches"]), f"{t['fragmentations']} fragmentations, {t['tracks']} tracks for "
                                                   f"{t['ground_truth_objects']} ground-truth objects over "
                                                   f"{t['object_frames']} object-frames"
                                                   + (f" in {t['sequences']} recordings" if t.get("sequences", 1) > 1
                                                      else "") + " (ids must persist in the ground truth)"),
            ("label changes / 100 track-frames", f"{lc['fused_per_100'] or 0:.2f}",
             f"fused; per-frame labels {lc['single_frame_per_100'] or 0:.2f}")]


def summary_markdown(m: dict[str, Any]) -> str:
    """The headline table and per-class table, for pasting into a pull request."""
    run = m["run"]
    lines = [f"### replay-eval: `{Path(m['bag']).name}`, model `{run['model']['name']}` "
             f"({run['model']['sha256'][:12]})", "",
             f"{m['frames']['processed']} frames ({m['frames']['with_ground_truth']} with ground truth), "
             f"min_score {m['thresholds']['min_score']:g}, {run['date']}", "",
             "| metric | value | |", "| --- | --- | --- |"]
    lines += [f"| {a} | **{b}** | {c} |" for a, b, c in _headline(m)]
    lines += ["", "| class | precision | recall | F1 | support | centroid median / p90 (mm) |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    per_c = m["centroid_error_mm"]["per_class"]
    for name, v in m["per_class"].items():
        c = per_c.get(name, {})
        lines.append(f"| {name} | {' | '.join(shown_rates(v))} | {v['support']} | "
                     f"{_mm(c.get('median'))} / {_mm(c.get('p90'))} |")
    return "\n".join(lines) + "\n"


def _table(header: list[str], rows: list[list[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><tr>{head}</tr>{body}</table>'


def answer_text(label: str | None, top: str | None, score: float | None) -> str:
    """What the node said of an object, as a person reads it: the class it refused named beside
    `unknown` (whose score is the best class's, not a confidence in `unknown`)."""
    if label is None:
        return "nothing (not detected)"
    if label == UNKNOWN:  # no best class: the nearest examples were the model's own `unknown` ones
        return UNKNOWN if top in (None, UNKNOWN) else f"unknown (best: {top} {score:.2f})"
    return f"{label} {score:.2f}" + (f" (best: {top})" if top != label else "")


def failure_card(r: dict[str, Any], prefix: str = "") -> str:
    said = answer_text(r["label"], r["top"], r["score"])
    truth = r["truth"] if r["truth"] is not None else "nothing there"
    extra = [f"t = {r['time_s']:.2f} s"]
    if r.get("iou") is not None:
        extra.append(f"IoU {r['iou']:.2f}")
    if r.get("centroid_error_m") is not None:
        extra.append(f"3D error {r['centroid_error_m'] * 1000:.0f} mm")
    return (f'<figure class="fail"><a href="{_e(prefix + r["frame_image"])}" title="the whole annotated frame">'
            f'<img src="{_e(prefix + r["crop"])}" alt="{_e(r["outcome"])}"></a><figcaption>'
            f'<span class="o o-{_e(r["outcome"])}">{_e(OUTCOME_TEXT.get(r["outcome"], r["outcome"]))}</span><br>'
            f'truth <b>{_e(truth)}</b><br>said <b>{_e(said)}</b><br>{_e(", ".join(extra))}</figcaption></figure>')


def _context_html(run: dict[str, Any]) -> str:
    model, pkg, host, bag = run["model"], run["package"], run["host"], run["bag"]
    git = pkg["git"]
    rows = [["date", run["date"]],
            ["package", f"robot_classify {pkg['version']}" + (
                "" if git is None else f", commit {git['commit'][:12]}{' (local changes)' if git['dirty'] else ''}")],
            ["host", f"{host['cpu']} ({host['cpu_count']} cores); GPU: {', '.join(host['gpus']) or 'none'}; "
                     f"{host['platform']}; Python {host['python']}"],
            ["model file", model["path"]], ["model", f"{model['name']} ({model['kind']}), sha256 {model['sha256']}"],
            ["classes", ", ".join(model["classes"])], ["features", model["features"]],
            ["training data sha256", f"{model['training_data_sha256']} ({model['training_samples']} samples)"],
            ["bag", bag["path"]], ["topics used", f"{bag['color_topic']}, {bag['depth_topic']}, "
                                                  f"{bag['camera_info_topic']}; ground truth: {bag['ground_truth']}"]]
    params = [["(params file)", run.get("params_file") or "none: defaults and command-line options"]]
    params += [[k, v] for k, v in run["parameters"].items()]
    topics = [[k, v] for k, v in bag["topics"].items()]
    return (_table(["", ""], rows, "ctx") + "<h3>Parameters (the node's, as run)</h3>"
            + _table(["name", "value"], params, "ctx")
            + "<h3>Topics in the bag</h3>" + _table(["topic", "type"], topics, "ctx"))


def write_report(m: dict[str, Any], records: list[dict], folder: Path) -> None:
    """Figures, report.html and summary.md in `folder` (metrics.json is already there)."""
    figs = set(write_figures(m, records, folder))
    (folder / "summary.md").write_text(summary_markdown(m))
    (folder / "report.html").write_text(report_html(m, figs))


def _img(name: str, figs: set[str], alt: str) -> str:
    return f'<img src="{name}" alt="{_e(alt)}">' if name in figs else ""


def report_html(m: dict[str, Any], figs: set[str]) -> str:
    run, f, nc, t = m["run"], m["failures"], m["non_class_objects"], m["thresholds"]
    c, iou = m["centroid_error_mm"], m["box_iou"]
    heads = "".join(f'<div class="num"><span>{_e(a)}</span><b>{_e(b)}</b><span>{_e(c)}</span></div>'
                    for a, b, c in _headline(m))
    cards = "".join(failure_card(r) for r in f["items"])
    counts = ", ".join(f"{v} {OUTCOME_TEXT[k]}" for k, v in f["counts"].items() if v) or "none"
    per_c = m["centroid_error_mm"]["per_class"]
    class_rows = [[k, *shown_rates(v), v["support"],
                   _mm(per_c.get(k, {}).get("median")), _mm(per_c.get(k, {}).get("p90")),
                   _mm(per_c.get(k, {}).get("max"))] for k, v in m["per_class"].items()]
    called = ", ".join(f"{k}: {v}" for k, v in nc["called"].items()) or "nothing"
    were = ", ".join(f"{k}: {v}" for k, v in nc["what_they_were"].items()) or "none"
    cov_at = next((c for c in t["coverage"] if abs(c["min_score"] - t["min_score"]) < 1e-9), None)
    stage_rows = [[s, f"{v['p50']:.2f}", f"{v['p99']:.2f}", f"{v['mean']:.2f}", f"{v['max']:.2f}"]
                  for s, v in m["timing_ms"].items()]
    frames = m["frames"]
    skipped = ", ".join(f"{k}: {v}" for k, v in frames["skipped"].items()) or "none"
    ece = "n/a" if t["ece"] is None else f"{t['ece']:.3f}"
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>replay-eval: {_e(Path(m['bag']).name)}</title><style>{CSS}</style>{SELF_CHECK}</head><body>
<p id="broken" hidden></p>
<h1>replay-eval: {_e(Path(m['bag']).name)}</h1>
<p>model <code>{_e(run['model']['name'])}</code> ({_e(run['model']['sha256'][:12])}), {frames['processed']} frames
({frames['with_ground_truth']} with ground truth), min_score {t['min_score']:g}, {_e(run['date'])}.
Files: <a href="metrics.json">metrics.json</a>, <a href="summary.md">summary.md</a>,
<a href="objects.jsonl">objects.jsonl</a>, <a href="object_labels.jsonl">object_labels.jsonl</a>.</p>
<div class="head">{heads}</div>
<p class="note">How to read it: accuracy counts matched objects of the model's classes (<i>unknown</i> counts as
wrong). The centroid error is the 3D distance between the node's object centroid and the ground truth's, what a
grasp planner would miss by. Failures come worst first: a wrong class name for an object of the model's classes
(most confident first), then a class name given to an object of no class or to a detection of nothing, then missed
objects of the model's classes, then their refusals (<i>unknown</i>), then missed objects of no class, last
detections of nothing called <i>unknown</i>. Click a crop for its whole frame (white: ground truth, labelled <i>GT</i>; coloured: the
node's labels and scores).</p>
<h2>Failures ({f['total']}: {_e(counts)}; {f['shown']} shown)</h2>
<div>{cards or '<p>No failures.</p>'}</div>
<h2>Classes</h2>
{_img('confusion.png', figs, 'confusion matrix')}
{_table(['class', 'precision', 'recall', 'F1', 'support', 'centroid median (mm)', 'p90', 'max'], class_rows)}
<h2>Where the objects are: 3D centroid and 2D box</h2>
<p>{c['n']} matched objects with a centroid in both; {c['matched_without_centroid']} matched without one.
Box IoU: median {_f3(iou['median'])}, p10 {_f3(iou['p10'])} (matching needs IoU &ge; {iou['match_threshold']}).</p>
{_img('centroid_error.png', figs, 'centroid error')} {_img('box_iou.png', figs, 'box IoU')}
<h2>Which threshold: scores, coverage, calibration</h2>
<p>Over {t['n']} matched objects of the model's classes, the best class is right for {_pct(t['top1_accuracy'])};
ECE {ece}. At min_score {t['min_score']:g}: coverage {_pct(cov_at and cov_at['coverage'])},
accuracy of kept objects {_pct(cov_at and cov_at['accuracy'])}.
Objects of no known class: {nc['ground_truth']} in the ground truth, {nc['matched']} detected, {nc['labelled_unknown']}
called unknown; called: {_e(called)}. They were: {_e(were)}.</p>
{_img('scores.png', figs, 'score histograms')} {_img('coverage.png', figs, 'accuracy and coverage')}
{_img('reliability.png', figs, 'reliability diagram')}
<h2>Where the time goes</h2>
{_table(['stage', 'p50 ms', 'p99 ms', 'mean ms', 'max ms'], stage_rows)}
<p class="note">Frames: {frames['pairs']} colour/depth pairs, {frames['processed']} processed; skipped: {_e(skipped)}.
Stages are timed inside the node's own FrameProcessor; "other" in the time line is the rest of a frame
(building the results).</p>
{_img('stages.png', figs, 'stage times')}<br>{_img('timeline.png', figs, 'time line')}
<h2>What ran</h2>
{_context_html(run)}
</body></html>
"""
