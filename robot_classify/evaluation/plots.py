"""PNG figures for people: confusion matrices, linear templates, patch galleries, histograms."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

if TYPE_CHECKING:
    from ..learn.tuning import TuneResult


def plot_confusion(cm: np.ndarray, labels: list[str], path: str | Path, title: str = "confusion matrix",
                   drop_empty: bool = False, col_labels: list[str] | None = None) -> None:
    """Counts in the cells, colour = share of the row. `drop_empty` leaves out rows and columns
    with no count (replay-eval's `missed` row, `background` column...): nothing to read there."""
    cm = np.asarray(cm)
    rows_l = list(labels)[: cm.shape[0]]
    cols_l = list(col_labels if col_labels is not None else labels)[: cm.shape[1]]
    if drop_empty:
        keep_r, keep_c = np.flatnonzero(cm.sum(1) > 0), np.flatnonzero(cm.sum(0) > 0)
        cm = cm[np.ix_(keep_r, keep_c)]
        rows_l, cols_l = [rows_l[i] for i in keep_r], [cols_l[j] for j in keep_c]
    nr, nc = max(cm.shape[0], 1), max(cm.shape[1], 1)
    side = max([len(t) for t in rows_l + cols_l] + [4]) * 0.075  # room for the longest tick label
    fig, ax = plt.subplots(figsize=(1.4 + side + 0.5 * nc, 1.2 + side + 0.45 * nr))
    rows = cm.sum(1, keepdims=True)
    ax.imshow(np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0), cmap="Blues", vmin=0, vmax=1,
              aspect="auto")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=9,
                        color="white" if rows[i, 0] and cm[i, j] / rows[i, 0] > 0.5 else "black")
    ax.set_xticks(range(cm.shape[1]), cols_l, rotation=45, ha="right", fontsize=9)
    ax.set_yticks(range(cm.shape[0]), rows_l, fontsize=9)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def image_grid(rows: list[list[np.ndarray]], row_labels: list[str], path: str | Path, scale: float = 0.6) -> None:
    """Rows of RGB images with a label per row (gallery, linear templates)."""
    ncol = max(len(r) for r in rows) if rows else 1
    fig, axes = plt.subplots(len(rows), ncol, figsize=(scale * ncol + 1.6, scale * len(rows) + 0.2), squeeze=False)
    for r, (imgs, label) in enumerate(zip(rows, row_labels)):
        for c in range(ncol):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(imgs):
                ax.imshow(imgs[c], interpolation="nearest")
        axes[r][0].text(-4, 16, label, ha="right", va="center", fontsize=7)
    fig.subplots_adjust(left=1.4 / (scale * ncol + 1.6), right=0.99, top=0.99, bottom=0.01, wspace=0.05, hspace=0.05)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_histogram(values: np.ndarray, path: str | Path, xlabel: str, title: str) -> None:
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.hist(np.asarray(values), bins=40, color="tab:blue")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_search(rows: list[dict], x: str, path: str, title: str, xlabel: str, log: bool = False,
                 unnamed: str = "") -> None:
    """Validation accuracy against one hyperparameter `x`, mean +- std over folds (each fold a
    dot), one line per setting of the others: the figure both searches draw."""
    fig, ax = plt.subplots(figsize=(6, 4))
    lines: dict[str, list[dict]] = {}
    for r in rows:
        key = ", ".join(f"{a}={b}" for a, b in r["params"].items() if a != x) or unnamed
        lines.setdefault(key, []).append(r)
    for key, group in lines.items():
        group = sorted(group, key=lambda r: r["params"][x])
        xs = [max(r["params"][x], 1e-12) if log else r["params"][x] for r in group]  # 0 at a log axis' far left
        for v, r in zip(xs, group):
            ax.scatter([v] * len(r["scores"]), r["scores"], s=6, alpha=0.4)
        ax.errorbar(xs, [r["mean"] for r in group], yerr=[r["std"] for r in group], label=key, capsize=3)
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("validation accuracy")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_knn_curve(result: "TuneResult", path: str, select: Callable[[dict], bool] = lambda p: True) -> None:
    """Accuracy vs k, mean +- std over folds, one line per (metric, features): the seeds' figure."""
    _plot_search([r for r in result.rows if select(r["params"])], "k", path,
                 f"kNN accuracy vs k ({result.strategy})", "k")


def plot_linear_curve(result: "TuneResult", path: str) -> None:
    """Validation accuracy vs reg (log axis), one line per learning rate: the linear search's
    figure, like `plot_knn_curve` (an optimum at a grid edge is visible)."""
    _plot_search(result.rows, "reg", path, f"linear accuracy vs reg ({result.strategy})", "reg (L2 strength)",
                 log=True, unnamed="L-BFGS")


# --- replay-eval report figures (shown at their pixel size: 100 dpi, 9-10 pt text) -------------

def _save(fig, path: str | Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_score_histograms(right: np.ndarray, wrong: np.ndarray, path: str | Path, min_score: float | None = None,
                          non_class: np.ndarray | None = None) -> None:
    """Scores of right and wrong top-1 predictions (and of objects of no known class): where
    they overlap, no `min_score` separates them."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    bins = np.linspace(0, 1, 21)
    # "best class": the top-1 answer, named or refused (`unknown`); the report's headline counts
    # the names published, so a refused wrong best class is not one of its wrong names
    groups = [(right, "best class right", "tab:green"), (wrong, "best class wrong", "tab:red")]
    if non_class is not None and len(non_class):
        groups.append((non_class, "no known class", "tab:gray"))
    # Bars side by side per bin: a few wrong ones stay visible next to many right ones.
    ax.hist([np.asarray(v, float) for v, _, _ in groups], bins=bins, color=[c for _, _, c in groups],
            label=[f"{n} ({len(v)})" for v, n, _ in groups])
    if min_score is not None:
        ax.axvline(min_score, color="black", ls="--", lw=1, label=f"min_score {min_score:g}")
    ax.set_xlabel("score of the best class")
    ax.set_ylabel("objects")
    ax.set_xlim(0, 1)
    ax.legend(fontsize=9)
    ax.set_title("scores of the best class, named or refused as unknown", fontsize=10)
    _save(fig, path)


def plot_coverage(curve: dict, path: str | Path, min_score: float | None = None,
                  non_class_named: np.ndarray | None = None) -> None:
    """Accuracy among kept objects and the share kept, against min_score (`coverage_curve`'s
    output); optionally the share of no-class objects still given a class name."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    t = np.asarray(curve["thresholds"])
    ax.plot(t, curve["accuracy"], color="tab:blue", lw=2, label="accuracy of kept objects")
    ax.plot(t, curve["coverage"], color="tab:orange", lw=2, label="coverage (share kept)")
    if non_class_named is not None:
        ax.plot(t, non_class_named, color="tab:gray", lw=1.5, ls=":", label="no-class objects named")
    if min_score is not None:
        ax.axvline(min_score, color="black", ls="--", lw=1, label=f"min_score {min_score:g}")
    ax.set_xlabel("min_score")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, loc="lower left")
    ax.set_title("accuracy and coverage against min_score", fontsize=10)
    _save(fig, path)


def plot_reliability(bins: dict, path: str | Path, ece: float | None = None) -> None:
    """Reliability diagram (`reliability_bins`' output): accuracy per score bin against the
    diagonal of a calibrated score; bar labels give the objects per bin."""
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    edges, acc, count = np.asarray(bins["edges"]), np.asarray(bins["accuracy"]), np.asarray(bins["count"])
    width = np.diff(edges)
    used = count > 0
    ax.bar(edges[:-1][used], acc[used], width=width[used], align="edge", color="tab:blue", alpha=0.7,
           edgecolor="white", label="accuracy in bin")
    for x, w, a, n in zip(edges[:-1][used], width[used], acc[used], count[used]):
        ax.text(x + w / 2, a + 0.02 if a < 0.9 else a - 0.07, str(n), ha="center", fontsize=8)
    ax.plot([0, 1], [0, 1], color="black", ls="--", lw=1, label="calibrated")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("score of the best class")
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=9, loc="upper left")
    ax.set_title("reliability" + ("" if ece is None or not np.isfinite(ece) else f" (ECE {ece:.3f})"), fontsize=10)
    _save(fig, path)


def plot_error_cdf(values: dict[str, np.ndarray], path: str | Path, xlabel: str, title: str) -> None:
    """Cumulative share of objects under each error, one line per group (all, then classes)."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, v in values.items():
        v = np.sort(np.asarray(v, float))
        if len(v):
            ax.step(v, np.arange(1, len(v) + 1) / len(v), where="post", lw=2.5 if name == "all" else 1,
                    color="black" if name == "all" else None, label=f"{name} ({len(v)})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("share of objects")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2, loc="lower right")
    ax.set_title(title, fontsize=10)
    _save(fig, path)


def plot_iou_histogram(ious: np.ndarray, path: str | Path, threshold: float = 0.5) -> None:
    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    ax.hist(np.asarray(ious, float), bins=np.linspace(threshold, 1, 21), color="tab:blue", edgecolor="white")
    ax.set_xlabel("2D box IoU (prediction vs ground truth)")
    ax.set_ylabel("matched objects")
    ax.set_title(f"box IoU of {len(ious)} matched objects", fontsize=10)
    _save(fig, path)


STAGE_COLOURS = {"conversion": "tab:purple", "segmentation": "tab:blue", "features": "tab:orange",
                 "classifier": "tab:green", "other": "tab:gray"}


def plot_stage_times(stages: dict[str, dict[str, float]], path: str | Path) -> None:
    """p50 bars with a p99 tick per stage (`total` last)."""
    names = list(stages)
    fig, ax = plt.subplots(figsize=(6, 0.9 + 0.45 * len(names)))
    y = np.arange(len(names))[::-1]
    p50 = [stages[n]["p50"] for n in names]
    p99 = [stages[n]["p99"] for n in names]
    ax.barh(y, p50, color=[STAGE_COLOURS.get(n, "black") for n in names], alpha=0.8)
    ax.scatter(p99, y, marker="|", s=300, color="black")
    for yi, a, b in zip(y, p50, p99):
        ax.text(b, yi, f"  {a:.1f} / {b:.1f} ms", va="center", fontsize=9)
    ax.set_yticks(y, names, fontsize=9)
    ax.set_xlim(0, max(p99 + [1.0]) * 1.45)
    ax.set_xlabel("ms per frame (p50 bar, p99 tick; labels: p50 / p99)")
    ax.set_title("where the time goes", fontsize=10)
    _save(fig, path)


def plot_timeline(t_s: np.ndarray, stages: dict[str, np.ndarray], path: str | Path) -> None:
    """Per-frame milliseconds stacked by stage over the bag's time line: a stall shows as a spike."""
    fig, ax = plt.subplots(figsize=(9, 3.2))
    t_s = np.asarray(t_s, float)
    order = np.argsort(t_s, kind="stable")
    names = [n for n in stages if len(stages[n])]
    if len(t_s) and names:
        ax.stackplot(t_s[order], *[np.asarray(stages[n], float)[order] for n in names], labels=names,
                     colors=[STAGE_COLOURS.get(n, "black") for n in names], alpha=0.8, step="mid")
        ax.legend(fontsize=8, loc="upper left", ncol=len(names))
    ax.set_xlabel("bag time (s from the first frame)")
    ax.set_ylabel("ms per frame")
    ax.grid(alpha=0.3)
    ax.set_title("processing time per frame over the bag", fontsize=10)
    _save(fig, path)
