"""One thread per step, as the node runs its frames.

The node's executor, DDS and its worker(s) already share the cores, and idle OpenBLAS / OpenMP
threads spin between calls (measured: ~1 core burnt at 30 Hz, p99 +6 ms); OpenCV's own pool buys
no latency on a frame's small images either. `replay-eval` times frames the same way, or its
per-stage figures are another program's: on the 2-core VM with another process busy, the kNN
search's two BLAS threads took a real frame's classifier stage from 2.8 to 10 ms.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import cv2


def set_node_threads() -> None:
    """For the rest of the process (the node's `main`)."""
    import torch
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


@contextmanager
def node_threads() -> Iterator[None]:
    """For a block (an offline command's frames); the process's own settings come back after it."""
    import torch
    from threadpoolctl import threadpool_limits

    torch_n, cv_n = torch.get_num_threads(), cv2.getNumThreads()
    with threadpool_limits(1):
        torch.set_num_threads(1)
        cv2.setNumThreads(1)
        try:
            yield
        finally:
            torch.set_num_threads(torch_n)
            cv2.setNumThreads(cv_n)
