"""Pair colour and depth frames by header stamp (message_filters is not installable here).

Exact stamps pair at once; otherwise the nearest counterpart within `slop` seconds pairs.
Paired frames wait in a queue ordered by colour stamp. `pop_next(max_wait)` takes the oldest
pair that has waited at most `max_wait` seconds and discards (and counts) older ones that
waited longer, but never the newest: a node that must not fall behind sheds load, while a
burst of frames that a reliable transport delivers late (a repaired fragment releases several
frames at once) is still processed whole. `max_wait=0` keeps only the newest pair. Frames
that never find a partner are counted as unpaired when they fall out of the window, not
silently lost. Thread-safe.
"""
from __future__ import annotations

import bisect
import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SyncStats:
    # Field names are published as they are (/diagnostics, replay-eval's metrics.json): British spelling kept.
    colour_in: int = 0
    depth_in: int = 0
    paired: int = 0
    unpaired_colour: int = 0
    unpaired_depth: int = 0
    dropped_pairs: int = 0  # paired, then discarded: waited longer than max_wait while a newer pair was ready


@dataclass
class StampSynchronizer:
    slop: float = 0.02  # seconds
    window: int = 10  # frames kept per stream while waiting for a partner
    max_ready: int = 100  # pairs kept waiting for a worker at most (the oldest go first)
    stats: SyncStats = field(default_factory=SyncStats)

    def __post_init__(self) -> None:
        if self.slop < 0:
            raise ValueError(f"sync slop must be >= 0, got {self.slop}")
        self._color: deque[tuple[int, Any]] = deque()
        self._depth: deque[tuple[int, Any]] = deque()
        self._ready: list[tuple[int, int, float, Any, Any]] = []  # (colour stamp, seq, ready at, colour, depth)
        self._seq = itertools.count()  # keeps equal stamps in arrival order and items uncompared
        self._lock = threading.Lock()
        self.new_pair = threading.Condition(self._lock)

    def add_color(self, stamp_ns: int, item: Any) -> None:
        with self._lock:
            self.stats.colour_in += 1
            self._add(self._color, self._depth, stamp_ns, item, color=True)

    def add_depth(self, stamp_ns: int, item: Any) -> None:
        with self._lock:
            self.stats.depth_in += 1
            self._add(self._depth, self._color, stamp_ns, item, color=False)

    def _add(self, mine: deque, other: deque, stamp: int, item: Any, color: bool) -> None:
        best = None
        for i, (s, _) in enumerate(other):
            gap = abs(s - stamp)
            if gap <= self.slop * 1e9 and (best is None or gap < best[1]):
                best = (i, gap)
        if best is None:
            mine.append((stamp, item))
            while len(mine) > self.window:
                mine.popleft()
                if color:
                    self.stats.unpaired_colour += 1
                else:
                    self.stats.unpaired_depth += 1
            return
        s_other, other_item = other[best[0]]
        # Everything in the other stream older than the partner can no longer pair: unpaired.
        for _ in range(best[0]):
            other.popleft()
            if color:
                self.stats.unpaired_depth += 1
            else:
                self.stats.unpaired_colour += 1
        other.popleft()
        color_stamp = stamp if color else s_other
        pair = (color_stamp, item, other_item) if color else (color_stamp, other_item, item)
        self.stats.paired += 1
        bisect.insort(self._ready, (color_stamp, next(self._seq), time.monotonic(), *pair[1:]))
        if len(self._ready) > self.max_ready:
            self._ready.pop(0)
            self.stats.dropped_pairs += 1
        self.new_pair.notify_all()

    def pop_next(self, timeout: float | None = None, max_wait: float = 0.0) -> tuple[int, Any, Any] | None:
        """The oldest (colour stamp, colour, depth) pair that has not waited longer than
        `max_wait` seconds (else the newest), waiting up to `timeout` for one."""
        with self._lock:
            if not self._ready and timeout:
                self.new_pair.wait(timeout)
            if not self._ready:
                return None
            now = time.monotonic()
            fresh = [p for p in self._ready[:-1] if now - p[2] <= max_wait] + [self._ready[-1]]
            self.stats.dropped_pairs += len(self._ready) - len(fresh)
            stamp, _, _, color, depth = fresh.pop(0)
            self._ready = fresh
            return stamp, color, depth

    def pop_latest(self, timeout: float | None = None) -> tuple[int, Any, Any] | None:
        """The newest pair; every older one waiting is discarded and counted."""
        return self.pop_next(timeout, max_wait=0.0)
