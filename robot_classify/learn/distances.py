"""Exact L1 / L2 / cosine distances: the reference every faster search is checked against.

`compute_distances` is the seeds' vectorised "no-loop" distance matrix. `row_distances`
is what the exact re-rank in `neighbors.py` calls on a handful of candidate rows: on uint8
data it uses OpenCV's SIMD integer kernels (exact: the sums are integers), otherwise float64.
"""
from __future__ import annotations

import cv2
import numpy as np

METRICS = ("l1", "l2", "cosine")


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    return metric


def normalize_rows(X: np.ndarray) -> np.ndarray:
    """Unit-length rows (float64 math, float32 out); zero rows stay zero instead of NaN."""
    X64 = np.asarray(X, dtype=np.float64)
    norms = np.linalg.norm(X64, axis=1, keepdims=True)
    return (X64 / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def row_distances(rows: np.ndarray, query: np.ndarray, metric: str) -> np.ndarray:
    """Exact distances from one query to each of `rows`, as float64.

    For "l2" and "cosine" this is the *squared* Euclidean distance (cosine rows are already
    unit length), which orders neighbours exactly like the true distance without a sqrt.
    """
    if rows.shape[0] == 0:
        return np.zeros(0, dtype=np.float64)
    if rows.dtype == np.uint8 and query.dtype == np.uint8:
        norm = cv2.NORM_L1 if metric == "l1" else cv2.NORM_L2SQR
        # One query as src2 and K=1: each candidate row gets its exact distance to it.
        d, _ = cv2.batchDistance(rows, query.reshape(1, -1), cv2.CV_32S, normType=norm, K=1)
        return d[:, 0].astype(np.float64)
    diff = rows.astype(np.float64) - query.astype(np.float64)
    if metric == "l1":
        return np.abs(diff).sum(axis=1)
    return np.einsum("ij,ij->i", diff, diff)


def compute_distances(X: np.ndarray, Y: np.ndarray, metric: str = "l2") -> np.ndarray:
    """Dense (len(X), len(Y)) matrix of true distances (Euclidean, L1 or 1 - cosine), float64.

    L2 uses the no-loop expansion |x|^2 - 2 x.y + |y|^2 in float64; fine as a reference for
    the small matrices tests use. Large searches go through `ExactIndex`.
    """
    check_metric(metric)
    X64 = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    Y64 = np.asarray(Y, dtype=np.float64).reshape(len(Y), -1)
    if X64.shape[1] != Y64.shape[1]:
        raise ValueError(f"feature sizes differ: X has {X64.shape[1]}, Y has {Y64.shape[1]}")
    if metric == "l1":
        return np.abs(X64[:, None, :] - Y64[None, :, :]).sum(axis=2)
    if metric == "cosine":
        return 1.0 - normalize_rows(X64).astype(np.float64) @ normalize_rows(Y64).astype(np.float64).T
    sq = (X64**2).sum(1)[:, None] - 2.0 * X64 @ Y64.T + (Y64**2).sum(1)[None, :]
    return np.sqrt(np.maximum(sq, 0.0))
