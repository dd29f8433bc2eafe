"""Pair colour and depth frames by header stamp (message_filters is not installable here).

Exact stamps pair at once; otherwise the nearest counterpart within `slop` seconds pairs.
Only the newest pair matters to a node that must not fall behind: `pop_latest()` returns it
and counts every older pair it discards. Frames that never find a partner are counted as
unpaired when they fall out of the window, not silently lost. Thread-safe.
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SyncStats:
    colour_in: int = 0
    depth_in: int = 0
    paired: int = 0
    unpaired_colour: int = 0
    unpaired_depth: int = 0
    dropped_pairs: int = 0  # paired but superseded by a newer pair before processing


@dataclass
class StampSynchronizer:
    slop: float = 0.02  # seconds
    window: int = 10  # frames kept per stream while waiting for a partner
    stats: SyncStats = field(default_factory=SyncStats)

    def __post_init__(self) -> None:
        if self.slop < 0:
            raise ValueError(f"sync slop must be >= 0, got {self.slop}")
        self._colour: deque[tuple[int, Any]] = deque()
        self._depth: deque[tuple[int, Any]] = deque()
        self._ready: tuple[int, Any, Any] | None = None
        self._lock = threading.Lock()
        self.new_pair = threading.Condition(self._lock)

    def add_colour(self, stamp_ns: int, item: Any) -> None:
        with self._lock:
            self.stats.colour_in += 1
            self._add(self._colour, self._depth, stamp_ns, item, colour=True)

    def add_depth(self, stamp_ns: int, item: Any) -> None:
        with self._lock:
            self.stats.depth_in += 1
            self._add(self._depth, self._colour, stamp_ns, item, colour=False)

    def _add(self, mine: deque, other: deque, stamp: int, item: Any, colour: bool) -> None:
        best = None
        for i, (s, _) in enumerate(other):
            gap = abs(s - stamp)
            if gap <= self.slop * 1e9 and (best is None or gap < best[1]):
                best = (i, gap)
        if best is None:
            mine.append((stamp, item))
            while len(mine) > self.window:
                mine.popleft()
                if colour:
                    self.stats.unpaired_colour += 1
                else:
                    self.stats.unpaired_depth += 1
            return
        s_other, other_item = other[best[0]]
        # Everything in the other stream older than the partner can no longer pair: unpaired.
        for _ in range(best[0]):
            other.popleft()
            if colour:
                self.stats.unpaired_depth += 1
            else:
                self.stats.unpaired_colour += 1
        other.popleft()
        colour_stamp = stamp if colour else s_other
        pair = (colour_stamp, item, other_item) if colour else (colour_stamp, other_item, item)
        self.stats.paired += 1
        if self._ready is not None and self._ready[0] <= colour_stamp:
            self.stats.dropped_pairs += 1
        if self._ready is None or self._ready[0] <= colour_stamp:
            self._ready = pair
        self.new_pair.notify_all()

    def pop_latest(self, timeout: float | None = None) -> tuple[int, Any, Any] | None:
        """The newest (colour stamp, colour, depth) pair, waiting up to `timeout` for one."""
        with self._lock:
            if self._ready is None and timeout:
                self.new_pair.wait(timeout)
            pair, self._ready = self._ready, None
            return pair
