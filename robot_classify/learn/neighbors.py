"""Exact nearest-neighbour search as a faiss-style index: `add` vectors, `search(queries, k)`.

Why not plain brute force: a camera frame brings ~20 patches, and brute-force L2 over 50,000
images of 3,072 bytes is memory-bound (faiss reads 600 MB of float32 per frame). Images are
highly correlated, so we search exactly with a lower bound instead:

  |x - y|^2 = |P'(x - y)|^2 + |R(x - y)|^2 >= |P'(x - y)|^2 + (|Rx| - |Ry|)^2

where P holds the top principal directions of the training data (d = 128) and R projects on
the rest. The bound costs one (128 + 2)-dim matmul (`_bound_columns`); every point whose bound is below the k-th best
*exact* distance found so far is re-ranked exactly (integer arithmetic on uint8 pixels,
float64 otherwise). Nothing that can be among the k nearest is skipped, so results equal a
float64 brute-force reference, ties broken by the lower training index. When the bound
prunes badly (e.g. white noise) a query falls back to exact brute force.

L1 has no cheap tight bound of this kind; it is brute force on OpenCV's SIMD integer
kernels (uint8) or float64. On CUDA (and for large brute-force batches on the CPU) the search is a float32
GEMM with a rigorous rounding margin and an exact re-rank of the few candidates inside it.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from .device import resolve_device
from .distances import check_metric, normalize_rows, row_distances

_LB_SLACK = 1e-4  # relative slack on the bound; float32 rounding is ~1e-6 relative
_FALLBACK_FRACTION = 0.35  # bound no better than this fraction of N: brute force is cheaper
# Float vectors (ConvNet embeddings) re-rank in float64, row by row, ~10x a float32 GEMM's cost per
# value: past this fraction the GEMM over all rows with its rounding margin is cheaper. Measured on
# the default model (8,029 x 440): white-noise crops took 173 ms a frame through the bounded path.
_FLOAT_FALLBACK_FRACTION = 0.1


class ExactIndex:
    """Exact k-NN index over one training set.

    Parameters
    ----------
    metric: "l1", "l2" or "cosine".
    device: "auto", "cpu" or "cuda".
    max_scratch_bytes: cap on the query x train blocks held at once; 10,000 queries against
        50,000 samples never hold more than this (plus the per-block top-k).
    bound_dims: principal directions used by the L2/cosine lower bound (0 disables it).
    """

    def __init__(self, metric: str = "l2", device: str = "auto", max_scratch_bytes: int = 256 << 20,
                 bound_dims: int = 128) -> None:
        self.metric = check_metric(metric)
        self.device = resolve_device(device)
        if max_scratch_bytes < 1 << 16:
            raise ValueError(f"max_scratch_bytes must be at least 65536, got {max_scratch_bytes}")
        if bound_dims < 0:
            raise ValueError(f"bound_dims must be >= 0, got {bound_dims}")
        self.max_scratch_bytes = int(max_scratch_bytes)
        self.bound_dims = int(bound_dims)
        self.ntotal = 0
        # bound_scans: queries whose candidates took a pass over every row's bound (a loose bound)
        self.stats = {"queries": 0, "reranked": 0, "brute_force": 0, "bound_scans": 0}

    # ------------------------------------------------------------------ storage
    def _prepare(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"expected a 2-D array (n, d), got shape {X.shape}")
        if X.dtype != np.uint8:
            X = X.astype(np.float32)
            if not np.isfinite(X).all():
                raise ValueError("input contains NaN or inf")
        if self.metric == "cosine":
            return normalize_rows(X)
        return np.ascontiguousarray(X)

    def add(self, X: np.ndarray) -> None:
        """Store vectors: uint8 stays uint8 (exact, 1 byte a value), else float32.

        The first call sets the index up (and fits the L2 bound's basis on it). Later calls
        append, as faiss's `add` does: live teaching adds a few views at a time to a 50,000-sample
        index, so the arrays grow geometrically (amortised O(new rows), never a copy of the whole
        set per view) and new rows are projected on the existing basis (the bound holds for any
        orthonormal basis; a good one only makes it tighter).
        """
        data = self._prepare(X)
        if data.shape[0] == 0:
            raise ValueError("cannot add an empty set of vectors")
        if not self.ntotal:
            self._store = data
            self.d = data.shape[1]
            self._set_size(data.shape[0])
            if self.device.type == "cuda":
                # uint8 values are exact in float16: half the memory of float32, no loss.
                dtype = torch.float16 if data.dtype == np.uint8 else torch.float32
                self._gpu_data = torch.from_numpy(data).to(self.device, dtype)
            elif self.metric != "l1" and 0 < self.bound_dims < self.d and self.ntotal > 4 * self.bound_dims:
                self._fit_bound()
            return
        if data.shape[1] != self.d:
            raise ValueError(f"vectors have {data.shape[1]} features, the index has {self.d}")
        if (data.dtype == np.uint8) != (self._store.dtype == np.uint8):
            raise ValueError(f"this index stores {self._store.dtype} vectors; cannot add {np.asarray(X).dtype}")
        n, m = self.ntotal, data.shape[0]
        self.reserve(m)
        self._store[n:n + m] = data
        if hasattr(self, "_A_store"):
            self._A_store[:, n:n + m] = self._bound_columns(data)
        if hasattr(self, "_gpu_data"):
            self._gpu_data = torch.cat([self._gpu_data, torch.from_numpy(data).to(self.device, self._gpu_data.dtype)])
        self._set_size(n + m)

    def remove(self, ids: np.ndarray) -> None:
        """Drop the rows `ids` (forgetting a class); the rest keep their order, renumbered from 0.

        A compaction, O(ntotal): forgetting is rare, appends are the path that must be cheap."""
        ids = np.asarray(ids, np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= self.ntotal):
            raise ValueError(f"ids must be in [0, {self.ntotal})")
        keep = np.ones(self.ntotal, bool)
        keep[ids] = False
        if not keep.any():
            raise ValueError("cannot remove every vector: an index needs at least one")
        self._store = self.data[keep]
        if hasattr(self, "_A_store"):
            self._A_store = np.ascontiguousarray(self._A[:, keep])
        if hasattr(self, "_gpu_data"):
            self._gpu_data = self._gpu_data[torch.from_numpy(keep).to(self.device)]
        self._set_size(int(keep.sum()))

    def reserve(self, extra: int) -> None:
        """Room for `extra` more rows, grown geometrically now rather than in the next `add`.

        Growing copies the whole set (150 MB for 50,000 x 3,072 uint8). Live teaching calls this
        before it takes the model's write lock, under the read lock: searches keep reading the
        current arrays (the views `_set_size` made), so frames never wait for the copy; the
        `add` that follows only writes the new rows. One caller at a time (the teacher's)."""
        if self.ntotal and self.ntotal + extra > len(self._store):
            self._grow(max(self.ntotal + extra, int(1.25 * len(self._store)) + 256))

    def _grow(self, capacity: int) -> None:
        n = self.ntotal
        store = np.empty((capacity, self.d), self._store.dtype)
        store[:n] = self.data
        self._store = store
        if hasattr(self, "_A_store"):
            bound = np.empty((len(self._A_store), capacity), np.float32)
            bound[:, :n] = self._A
            self._A_store = bound

    def _set_size(self, n: int) -> None:
        """Views of the first n rows of the (possibly larger) stores: what search reads."""
        self.ntotal = n
        self.data = self._store[:n]
        self._row_sq = None  # the float rows' squared norms, for `_gemm_candidates` (made on first use)
        if hasattr(self, "_A_store"):
            self._A = self._A_store[:, :n]

    def _fit_bound(self) -> None:
        rng = np.random.default_rng(0)
        sample = self.data[rng.choice(self.ntotal, size=min(self.ntotal, 8192), replace=False)]
        self._mu = sample.astype(np.float64).mean(0)
        # Any orthonormal P gives a valid bound; a good one (top principal directions) makes it
        # tight. A randomized SVD finds them in a fraction of a second.
        torch.manual_seed(0)
        centred = torch.from_numpy((sample - self._mu).astype(np.float32))
        _, _, v = torch.svd_lowrank(centred, q=self.bound_dims + 8, niter=2)
        P = np.linalg.qr(v[:, : self.bound_dims].double().numpy())[0]  # orthonormal D x d
        # The float32-rounded basis, held in float64: the bound is stated for exactly this P.
        self._P64 = P.astype(np.float32).astype(np.float64)
        # (d + 2, N) contiguous: a (Q, d) @ (d, N) GEMM is 4-5x faster than against its transpose here.
        self._A_store = self._bound_columns(self.data)
        self._set_size(self.ntotal)

    def _bound_columns(self, rows: np.ndarray) -> np.ndarray:
        """The rows' columns of the bound matrix A, (bound_dims + 2, n) float32.

        The bound on a squared distance, |zq - z|^2 + (rq - r)^2 (projections on the basis and
        residual norms; never more than the distance, for any orthonormal basis), less a slack of
        _LB_SLACK times both squared norms, is [zq, rq, 1] . [-2 z, -2 r, |z|^2 + r^2 - slack |c|^2]
        plus the query's own |zq|^2 + rq^2 - slack |cq|^2: one GEMM gives it for every row, where
        it took the GEMM and five passes over the (queries, rows) block. The slack covers the
        float32 GEMM's rounding (at most ~2.5e-5 of the squared norms for 130 terms, each bounded
        by them) four times over in the worst case, and ~50 times in the typical one."""
        Z, res, sq = self._project(rows)
        Z64 = Z.astype(np.float64)
        const = np.einsum("ij,ij->i", Z64, Z64) + res**2 - _LB_SLACK * sq
        return np.ascontiguousarray(np.concatenate([-2.0 * Z.T, (-2.0 * res)[None], const[None]]).astype(np.float32))

    def _project(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Coordinates on the basis (float32), residual norms and squared norms (float64) of rows
        centred by the fitted mean; in blocks, so a 50,000 x 3,072 set never becomes float64 at once."""
        n = len(rows)
        Z = np.empty((n, self.bound_dims), np.float32)
        res = np.empty(n, np.float64)
        sq = np.empty(n, np.float64)
        step = max(1, (32 << 20) // (8 * self.d))
        for s in range(0, n, step):
            c = rows[s:s + step].astype(np.float64) - self._mu
            z = c @ self._P64
            sq[s:s + step] = np.einsum("ij,ij->i", c, c)
            Z[s:s + step] = z
            res[s:s + step] = np.sqrt(np.maximum(sq[s:s + step] - np.einsum("ij,ij->i", z, z), 0.0))
        return Z, res, sq

    @property
    def nbytes(self) -> int:
        """Memory held for the training set and its search structures (spare capacity included)."""
        total = self._store.nbytes if self.ntotal else 0
        for name in ("_A_store", "_P64"):
            if hasattr(self, name):
                total += getattr(self, name).nbytes
        if hasattr(self, "_gpu_data"):
            total += self._gpu_data.element_size() * self._gpu_data.nelement()
        return total

    # ------------------------------------------------------------------ search
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (distances, indices), each (n_queries, k), nearest first.

        Distances are true distances: Euclidean for l2, L1, and 1 - cos for cosine.
        Equal distances are ordered by training index, so results are deterministic.
        """
        if not self.ntotal:
            raise RuntimeError("search called on an empty index; call add() first")
        if not 1 <= k <= self.ntotal:
            raise ValueError(f"k must be in [1, {self.ntotal}] (the training size), got {k}")
        Q = self._prepare(queries)
        if Q.shape[1] != self.d:
            raise ValueError(f"queries have {Q.shape[1]} features, the index has {self.d}")
        if self.data.dtype == np.uint8 and Q.dtype != np.uint8:
            raise ValueError("this index stores uint8 vectors; queries must be uint8 as well")
        out_d = np.empty((len(Q), k), np.float64)
        out_i = np.empty((len(Q), k), np.int64)
        block = max(1, self.max_scratch_bytes // (12 * self.ntotal))  # bound, distance, margin: 3 floats
        for s in range(0, len(Q), block):
            qb = Q[s:s + block]
            settled = np.zeros(len(qb), bool)  # answered by the bounded search of the whole block
            if self.device.type == "cuda":
                cand = self._gemm_candidates(qb, k)
            else:
                if hasattr(self, "_A"):
                    d, i, settled = self._bounded_search(qb, k)
                    out_d[s:s + len(qb)][settled], out_i[s:s + len(qb)][settled] = d[settled], i[settled]
                cand = [None] * len(qb)
                missing = np.flatnonzero(~settled)
                if len(missing):
                    # Many queries, or float vectors: a float32 GEMM (compute-bound) beats OpenCV's
                    # per-pair kernels and a float64 scan.
                    gemm = self.metric != "l1" and (len(missing) >= 64 or self.data.dtype != np.uint8)
                    brute = self._gemm_candidates if gemm else self._brute_candidates
                    for j, c in zip(missing, brute(qb[missing], k)):
                        cand[j] = c
            for j in np.flatnonzero(~settled):
                out_d[s + j], out_i[s + j] = self._rerank(qb[j], cand[j], k)
        self.stats["queries"] += len(Q)
        if self.metric == "l1":
            return out_d, out_i
        if self.metric == "cosine":
            return out_d / 2.0, out_i  # |a - b|^2 = 2 - 2cos for unit vectors
        return np.sqrt(out_d), out_i

    def _rerank(self, q: np.ndarray, cand: np.ndarray | None, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact distances on the candidates (all rows if None); k best by (distance, index)."""
        if cand is None:
            self.stats["brute_force"] += 1
            cand = np.arange(self.ntotal)
            d = self._brute_row(q)
        else:
            cand = np.sort(cand)
            d = row_distances(self.data[cand], q, self.metric)
        self.stats["reranked"] += len(cand)
        order = np.lexsort((cand, d))[:k]
        return d[order], cand[order]

    def _brute_row(self, q: np.ndarray) -> np.ndarray:
        step = max(1, self.max_scratch_bytes // (8 * self.d)) if self.data.dtype != np.uint8 else self.ntotal
        return np.concatenate([row_distances(self.data[s:s + step], q, self.metric)
                               for s in range(0, self.ntotal, step)])

    def _brute_candidates(self, qb: np.ndarray, k: int) -> list[np.ndarray | None]:
        """uint8: OpenCV's batched SIMD integer search for the k + 16 nearest; None = full scan."""
        if self.data.dtype != np.uint8:
            return [None] * len(qb)
        kk = min(self.ntotal, k + 16)
        norm = cv2.NORM_L1 if self.metric == "l1" else cv2.NORM_L2SQR
        d, idx = cv2.batchDistance(qb, self.data, cv2.CV_32S, normType=norm, K=kk)
        # A tie at the k-th distance that runs to the end of the list may continue beyond it.
        return [None if kk < self.ntotal and d[i, kk - 1] == d[i, k - 1] else idx[i].astype(np.int64)
                for i in range(len(qb))]

    def _bounded_search(self, qb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every query of the block at once: the points the bound cannot exclude, re-ranked
        exactly as `_rerank` does a query's. Returns (squared distances, indices, settled); a query
        whose bound prunes badly (not settled) is left to brute force.

        One pass of numpy calls for the block instead of a dozen per query: a camera frame's
        ten queries against the default model's 8,000 samples spent more time in those calls
        than in the search itself (bench/pipeline_bench.py)."""
        c = qb.astype(np.float64) - self._mu
        zq64 = c @ self._P64
        sq_q = np.einsum("ij,ij->i", c, c)
        zsq_q = np.einsum("ij,ij->i", zq64, zq64)
        res_q = np.sqrt(np.maximum(sq_q - zsq_q, 0.0))
        nq, N = len(qb), self.ntotal
        query_rows = np.concatenate([zq64, res_q[:, None], np.ones((nq, 1))], axis=1).astype(np.float32)
        # The bound less each query's own term (`_bound_columns`), in one float32 GEMM. numpy's
        # (OpenBLAS) GEMM is 1.15-1.5x torch's (MKL) at a frame's few queries here (8,000 and
        # 50,000 rows; it was the other way round with numpy 1.x's OpenBLAS).
        lb = query_rows @ self._A
        offset = zsq_q + res_q**2 - _LB_SLACK * sq_q  # lb + offset: the bound itself
        m = min(N, max(2 * k, 16))  # the m smallest bounds seed an upper bound on the k-th distance
        wide = min(N, max(4 * m, 64))  # ... the `wide` smallest also hold every candidate, mostly
        # torch's top-k beats numpy's argpartition ~1.5x on (Q, N) float32 rows
        top = torch.topk(torch.from_numpy(lb), wide, dim=1, largest=False, sorted=False)
        top_lb, top_i = top.values.numpy(), top.indices.numpy()
        pick = np.argpartition(top_lb, m - 1, axis=1)[:, :m]
        rows = np.arange(nq)[:, None]
        first = top_i[rows, pick]
        d0 = self._paired_distances(qb, np.repeat(np.arange(nq), m), first.ravel()).reshape(nq, m)
        kth = np.partition(d0, k - 1, axis=1)[:, k - 1]  # an upper bound on each true k-th distance
        # lb <= kth - offset compared in float32: the largest float32 not above it, so no bound changes side
        limit = kth - offset
        limit32 = limit.astype(np.float32)
        limit32 = np.where(limit32.astype(np.float64) > limit, np.nextafter(limit32, np.float32(-np.inf)), limit32)
        inside_top = top_lb <= limit32[:, None]
        inside_top[rows, pick] = False  # their distances are d0 already
        # Where the wide top-k's largest bound is above the limit, every row inside it is in the
        # top-k: no pass over all N rows. Elsewhere (a loose bound) the pass, as before.
        covered = (top_lb.max(1) > limit32) | (wide == N)
        loose = np.flatnonzero(~covered)
        inside_loose = lb[loose] <= limit32[loose, None]  # the pass over every row, loose queries only
        fraction = _FALLBACK_FRACTION if self.data.dtype == np.uint8 else _FLOAT_FALLBACK_FRACTION
        settled = covered.copy()
        settled[loose] = inside_loose.sum(1) <= fraction * N
        self.stats["bound_scans"] += len(loose)
        if not settled.any():
            return np.empty((nq, k)), np.empty((nq, k), np.int64), settled
        more_query, at = np.nonzero(inside_top & covered[:, None])
        more = top_i[more_query, at]
        if len(loose):
            inside_loose[np.arange(len(loose))[:, None], first[loose]] = False  # their distances are d0 already
            inside_loose[~settled[loose]] = False
            loose_row, loose_at = np.nonzero(inside_loose)
            more_query = np.concatenate([more_query, loose[loose_row]])
            more = np.concatenate([more, loose_at])
            by_query = np.argsort(more_query, kind="stable")  # `_paired_distances` wants queries ascending
            more_query, more = more_query[by_query], more[by_query]
        query = np.concatenate([np.repeat(np.flatnonzero(settled), m), more_query])
        cand = np.concatenate([first[settled].ravel(), more])
        d = np.concatenate([d0[settled].ravel(), self._paired_distances(qb, more_query, more)])
        self.stats["reranked"] += len(cand)
        order = np.lexsort((cand, d, query))  # per query by (distance, index), as `_rerank`
        query, cand, d = query[order], cand[order], d[order]
        take = np.searchsorted(query, np.arange(nq))[:, None] + np.arange(k)
        take[~settled] = 0
        return d[take], cand[take], settled

    def _paired_distances(self, Q: np.ndarray, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Exact squared / L1 distance of stored row rows[j] to query Q[query[j]], as
        `row_distances` computes it; `query` ascending. Float rows in bounded blocks; uint8 rows
        a query at a time through OpenCV's integer kernels."""
        out = np.empty(len(rows), np.float64)
        if self.data.dtype == np.uint8:
            bounds = np.searchsorted(query, np.arange(len(Q) + 1))
            for j in range(len(Q)):
                a, b = bounds[j], bounds[j + 1]
                out[a:b] = row_distances(self.data[rows[a:b]], Q[j], self.metric)
            return out
        step = max(1, self.max_scratch_bytes // (16 * self.d))
        for a in range(0, len(rows), step):
            diff = self.data[rows[a:a + step]].astype(np.float64) - Q[query[a:a + step]].astype(np.float64)
            out[a:a + step] = np.abs(diff).sum(1) if self.metric == "l1" else np.einsum("ij,ij->i", diff, diff)
        return out

    def _float_chunks(self, rows: int = 4096):
        """The stored vectors as float32 blocks on the search device (bounded scratch on CPU)."""
        for s in range(0, self.ntotal, rows):
            if self.device.type == "cuda":
                yield self._gpu_data[s:s + rows].float()
            else:
                yield torch.from_numpy(np.ascontiguousarray(self.data[s:s + rows])).float()

    def _gemm_candidates(self, qb: np.ndarray, k: int) -> list[np.ndarray]:
        """Float32 GEMM distances (GPU, or CPU for big brute-force batches), then every point
        within a rigorous rounding margin of the k-th; `_rerank` makes them exact."""
        q = torch.from_numpy(np.ascontiguousarray(qb)).to(self.device, torch.float32)
        qsq = (q**2).sum(1, keepdim=True)
        if self.metric != "l1" and self.data.dtype == np.float32:
            # Float vectors (ConvNet embeddings): one GEMM against all stored rows and their
            # squared norms, kept from the first call (a frame's worth of queries otherwise spent
            # more on the norms than on the product; on a GPU, 13 chunks of launches did).
            X = self._gpu_data if self.device.type == "cuda" else torch.from_numpy(self.data)
            if self._row_sq is None:
                self._row_sq = torch.einsum("ij,ij->i", X, X)[None, :]
            scale = qsq + self._row_sq
            d = scale - 2.0 * (q @ X.T)
        else:
            ds, scales = [], []
            for X in self._float_chunks():
                if self.metric == "l1":
                    d = torch.cdist(q, X, p=1)
                    scales.append(d)
                else:
                    xsq = (X**2).sum(1)[None, :]
                    d = qsq + xsq - 2.0 * (q @ X.T)
                    scales.append(qsq + xsq)
                ds.append(d)
            d, scale = torch.cat(ds, 1), torch.cat(scales, 1)
        # Rigorous float32 dot/sum error bound: |err| <= D * 2^-24 * scale (with headroom).
        margin = 4.0 * self.d * 2.0**-24 * scale
        vals, ids = torch.topk(d, k, dim=1, largest=False)
        # True k-th distance <= approx k-th + its margin; keep all whose lower end is below it.
        inside = (d - margin) <= (vals[:, -1:] + margin.gather(1, ids[:, -1:]))
        # One transfer for all queries (a GPU waits once, not once per query); nonzero is row-major.
        rows, cols = (t.cpu().numpy() for t in torch.nonzero(inside, as_tuple=True))
        return np.split(cols, np.cumsum(np.bincount(rows, minlength=len(qb)))[:-1])
