"""The trunk on a CUDA device: a frame's patches padded to one of a few batch sizes, each run
by replaying a CUDA graph captured once.

Why: measured on an H200 (bench/gpu_bench.py), PyTorch eager spends ~4.4 ms on a 10-patch
frame, nearly all of it launching the network's ~100 small kernels one by one from Python; a
graph replays them in one launch. And every new batch size costs cuDNN a fresh plan on its
first use: in the node, frames whose object count it had not seen took up to 1.8 s. Padding
to BUCKETS bounds the shapes to two, both captured by `warm_up` before the first frame; larger
sets (a teach request, a training set) go through in chunks of the largest. Two, not more: each
capture costs ~3 s of start-up (cuDNN's plans), and on an H200 a 10-patch frame replayed 1.18-1.32
ms padded to 16 with four buckets (4, 8, 16, 32; 12-13.5 s to capture), 1.19-1.21 ms with these
two (5.4-6.7 s), and 1.42-1.47 ms padded to 32 alone (2.6-3.4 s): the GPU's work is launch-bound,
the padding rows nearly free (bench/results/gpu_cuda_buckets_run5.txt).

Rows are independent in inference (batch-norm uses its stored statistics), so the padding rows
change nothing in the real ones; their outputs are dropped. Convolutions run in strict fp32
(cuDNN's TF32 off, process-wide when the CUDA trunk is built): TF32 moved embeddings by up to
1.3e-3 against the CPU, strict fp32 by 9e-7; eager strict fp32 was 4-6% slower than eager TF32,
and the graph was measured in strict fp32 only. A graph that cannot be captured
(an old driver, a sanitiser) leaves its batch size to the padded eager pass, with one warning.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .cnn_trunk import embed

BUCKETS = (16, 32)  # patches per replay; a frame holds at most max_objects (default 20)
_log = logging.getLogger(__name__)


@dataclass
class _Graph:
    graph: Any
    static_in: Any  # (bucket, 32, 32, 3) uint8 on the device: what each replay reads
    static_out: Any  # (bucket, dim) float32 on the device: what each replay writes
    lock: threading.Lock = field(default_factory=threading.Lock)  # one replay of this graph at a time


_graphs: dict[tuple, _Graph | None] = {}  # (device, size, layer, bucket, patch) -> graph, or None: eager
_capture_lock = threading.Lock()


def bucket(n: int) -> int | None:
    """The batch size n patches are padded to, or None when n is beyond the largest."""
    return next((b for b in BUCKETS if b >= n), None)


def _capture(net, device, size: int, layer: str, b: int, patch: int) -> _Graph | None:
    import torch

    try:
        # On `device` as the current one: torch.cuda.graph captures the current device's stream
        # (with device cuda:1 while cuda:0 is current, the network's kernels would escape it).
        with torch.cuda.device(device), torch.inference_mode():
            static_in = torch.zeros((b, patch, patch, 3), dtype=torch.uint8, device=device)
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):  # cuDNN plans and workspace before the capture
                for _ in range(2):
                    embed(net, static_in, size, layer)
            torch.cuda.current_stream(device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                static_out = embed(net, static_in, size, layer)
        return _Graph(graph, static_in, static_out)
    except RuntimeError as e:  # capture unsupported here: this batch size runs eagerly
        _log.warning("CUDA graph capture of the cnn trunk (batch %d) failed, running it eagerly: %s", b, e)
        return None


def _entry(net, device, size: int, layer: str, b: int, patch: int) -> _Graph | None:
    key = (str(device), size, layer, b, patch)
    if key not in _graphs:
        with _capture_lock:
            if key not in _graphs:
                _graphs[key] = _capture(net, device, size, layer, b, patch)
    return _graphs[key]


def embed_frame(net, images: np.ndarray, device, size: int, layer: str):
    """Embeddings (n, dim) on `device` of up to BUCKETS[-1] uint8 patches (n, P, P, 3)."""
    import torch

    n, patch = len(images), images.shape[1]
    b = bucket(n)
    if b is None:
        raise ValueError(f"{n} patches: at most {BUCKETS[-1]} per replay")
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device, non_blocking=True)
    entry = _entry(net, device, size, layer, b, patch)
    with torch.cuda.device(device), torch.inference_mode():
        if entry is None:
            padded = torch.zeros((b, patch, patch, 3), dtype=torch.uint8, device=device)
            padded[:n] = x
            return embed(net, padded, size, layer)[:n]
        # Copy in, replay and copy out are queued under the lock on one stream (every worker uses
        # the device's default stream), so a later replay cannot overwrite this one's output first.
        with entry.lock:
            entry.static_in[:n].copy_(x)
            entry.graph.replay()
            return entry.static_out[:n].clone()


def warm_up(net, device, size: int, layer: str, patch: int) -> None:
    """Capture every bucket now (the node calls this before its first frame)."""
    for b in BUCKETS:
        _entry(net, device, size, layer, b, patch)
