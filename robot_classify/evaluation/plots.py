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


def plot_confusion(cm: np.ndarray, labels: list[str], path: str | Path, title: str = "confusion matrix") -> None:
    cm = np.asarray(cm)
    n = len(labels)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * n, 0.8 + 0.5 * n))
    rows = cm.sum(1, keepdims=True)
    ax.imshow(np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0), cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if rows[i, 0] and cm[i, j] / rows[i, 0] > 0.5 else "black")
    ax.set_xticks(range(cm.shape[1]), labels[: cm.shape[1]], rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(cm.shape[0]), labels[: cm.shape[0]], fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
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


def plot_knn_curve(result: "TuneResult", path: str, select: Callable[[dict], bool] = lambda p: True) -> None:
    """Accuracy vs k, mean +- std over folds, one line per (metric, features): the seeds' figure."""
    fig, ax = plt.subplots(figsize=(6, 4))
    lines: dict[str, list[dict]] = {}
    for r in result.rows:
        if select(r["params"]):
            key = ", ".join(f"{a}={b}" for a, b in r["params"].items() if a != "k")
            lines.setdefault(key, []).append(r)
    for key, rows in lines.items():
        ks = [r["params"]["k"] for r in rows]
        for r in rows:
            ax.scatter([r["params"]["k"]] * len(r["scores"]), r["scores"], s=6, alpha=0.4)
        ax.errorbar(ks, [r["mean"] for r in rows], yerr=[r["std"] for r in rows], label=key, capsize=3)
    ax.set_xlabel("k")
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"kNN accuracy vs k ({result.strategy})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
