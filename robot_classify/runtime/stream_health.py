"""How well a camera stream arrives, from the messages that do arrive. No ROS.

A best-effort camera without a large-data transport loses frames where the node cannot see
them: nothing arrives, so nothing can be counted directly. Two clues survive:
- the publisher's sequence number (DDS numbers every sample a writer sends; rclpy passes it
  as `publication_sequence_number`): a jump from 7 to 10 is 2 lost samples. Exact, used
  whenever the numbers in the window increase (one publisher). Numbers that do not increase
  mean several writers interleave (or one restarted): then nothing is estimated;
- the header stamps, where there are no sequence numbers: camera stamps are regular, so the smallest gaps between received stamps
  give the camera's period and every larger gap says how many frames fell between (a gap of
  3 periods is 2 lost frames). Gaps longer than `PAUSE_PERIODS` periods are taken as the
  camera pausing (or a bag stopping), not as loss. When most frames are lost, two
  consecutive ones rarely arrive and the period is overestimated, so this under-reports.
Stamps that jump back (a looped bag, a reset simulation clock) start the estimate again; the
received rate counts every message whatever its stamp (found from outside: a bag looped with its
recorded stamps read as 1.8 Hz received at 30). The camera's rate is the larger of the two
estimates, the received rate over (1 - loss) and the stamps' period: each falls short where the
other does not (a burst of 9 frames shorter than the window; most frames lost).

Thread-safe: subscription callbacks add, the diagnostics timer reads.
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

PAUSE_PERIODS = 50


@dataclass(frozen=True)
class StreamHealth:
    received: int  # messages in the window
    received_hz: float  # received / window
    camera_hz: float | None  # 1 / estimated period; None until there are enough stamps
    loss: float | None  # estimated share of the camera's frames that did not arrive


class StampGapMonitor:
    """Rolling window of (receipt time, header stamp) for one topic."""

    def __init__(self, window_s: float = 5.0, period_memory_s: float = 30.0) -> None:
        if window_s <= 0 or period_memory_s < window_s:
            raise ValueError("window_s must be > 0 and period_memory_s >= window_s")
        self.window_s, self.period_memory_s = window_s, period_memory_s
        self._lock = threading.Lock()
        # (receipt s, stamp ns, sequence number, a repeat of the previous stamp)
        self._items: deque[tuple[float, int, int | None, bool]] = deque()
        self._gaps: deque[tuple[float, int]] = deque()  # (receipt s, gap ns) for the period estimate
        self._anchor: int | None = None  # the sequence number received last before the window
        self._received: deque[float] = deque()  # receipt times in the window, stamps jumping back or not

    def add(self, now: float, stamp_ns: int, seq: int | None = None) -> None:
        with self._lock:
            self._received.append(now)
            if self._items:
                last = self._items[-1][1]
                if stamp_ns < last:  # jumped back: a new stream as far as stamps can tell
                    self._items.clear()
                    self._gaps.clear()
                    self._anchor = None
                elif stamp_ns == last:  # a repeat says nothing of the period, but it did arrive: its
                    self._items.append((now, stamp_ns, seq or None, True))  # number is no lost sample
                    self._trim(now)  # (a looped one-frame bag had read as "loses 100%", found from outside)
                    return
                else:
                    self._gaps.append((now, stamp_ns - last))
            self._items.append((now, stamp_ns, seq or None, False))
            self._trim(now)

    def _trim(self, now: float) -> None:
        while self._received and now - self._received[0] > self.window_s:
            self._received.popleft()
        while self._items and now - self._items[0][0] > self.window_s:
            self._anchor = self._items.popleft()[2]
        while self._gaps and now - self._gaps[0][0] > self.period_memory_s:
            self._gaps.popleft()

    def _period_ns(self) -> float | None:
        """The mean of the cluster of smallest gaps: robust to jitter and to a few lost frames."""
        if len(self._gaps) < 3:
            return None
        gaps = np.array([g for _, g in self._gaps], np.float64)
        low = np.percentile(gaps, 10)
        return float(gaps[gaps <= 1.5 * low].mean())

    def health(self, now: float) -> StreamHealth:
        with self._lock:
            self._trim(now)
            n = len(self._received)  # messages received, repeats of a stamp included
            stamps = np.array([s for _, s, _, repeat in self._items if not repeat], np.float64)
            seqs = [q for _, _, q, _ in self._items]
            if seqs and self._anchor is not None and self._anchor < seqs[0]:
                seqs.insert(0, self._anchor)  # heavy loss leaves one message a window: count from the last one
            period = self._period_ns()
        received_hz = n / self.window_s
        if len(seqs) >= 2 and None not in seqs:
            if not all(a < b for a, b in zip(seqs, seqs[1:])):
                # Several writers (a bag replayed beside the driver) or one that restarted: their
                # numbers and stamps interleave, and a stream that lost nothing had read as "loses
                # 65%" from its stamps (found from outside). Nothing is estimated then.
                return StreamHealth(n, received_hz, None, None)
            loss = 1.0 - (len(seqs) - 1) / (seqs[-1] - seqs[0])
            camera_hz = received_hz / max(1.0 - loss, 1e-6)
            return StreamHealth(n, received_hz, camera_hz if period is None else max(camera_hz, 1e9 / period), loss)
        if period is None or len(stamps) < 2:
            return StreamHealth(n, received_hz, None, None)
        gaps = np.diff(stamps) / period
        gaps = gaps[gaps <= PAUSE_PERIODS]
        missing = float(np.maximum(np.rint(gaps) - 1, 0).sum())
        expected = len(gaps) + 1 + missing
        return StreamHealth(n, received_hz, 1e9 / period, missing / expected)
