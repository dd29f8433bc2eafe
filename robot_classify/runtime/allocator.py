"""Keep image-sized buffers in the heap between frames (glibc only).

Every frame allocates a few dozen arrays of 0.3-4 MB (depth in metres, height map, masks,
morphology outputs, features). glibc serves blocks above its mmap threshold with a fresh
mmap and gives the pages back on free, and it trims the heap top as soon as it passes a
small threshold; either way the next frame page-faults the same memory in again. On a
2-core CPU that costs ~5 ms per 640x480 frame (segmentation 14 ms -> 9 ms once fixed).

`keep_frame_buffers()` raises both thresholds to 32 MiB (a 1080p float32 image is 8 MB),
which is what `MALLOC_MMAP_THRESHOLD_` / `MALLOC_TRIM_THRESHOLD_` would do from the
environment. The process then holds on to at most a few frames' worth of freed memory.
It is process-wide, so only entry points (the node, the CLI, the benchmarks) call it; the
library never does it on import.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
THRESHOLD = 32 << 20

log = logging.getLogger(__name__)


def keep_frame_buffers(threshold: int = THRESHOLD) -> bool:
    """Returns True when glibc accepted the settings; False (and does nothing) elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other libcs have no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = bool(mallopt(_M_MMAP_THRESHOLD, threshold)) and bool(mallopt(_M_TRIM_THRESHOLD, threshold))
    if not ok:
        log.debug("mallopt refused the frame-buffer thresholds; keeping the defaults")
    return ok
