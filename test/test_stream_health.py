"""Camera stream loss estimated from what arrives: sequence numbers first, header stamps else."""
import pytest

from robot_classify.runtime.stream_health import StampGapMonitor

from concurrency import errors_reading_while_writing

MS = 1_000_000


def feed(monitor, stamps_ms, seqs=None, t0=100.0, period_s=0.033):
    for i, s in enumerate(stamps_ms):
        monitor.add(t0 + i * period_s, int(s * MS), None if seqs is None else seqs[i])


def test_no_loss_on_a_regular_stream_with_jitter():
    m = StampGapMonitor(window_s=5.0)
    feed(m, [i * 33.3 + (1.5 if i % 2 else -1.5) for i in range(100)])
    h = m.health(100 + 99 * 0.033)
    assert h.loss == pytest.approx(0.0, abs=0.01) and h.camera_hz == pytest.approx(30.0, rel=0.05)


def test_every_other_frame_lost_from_stamps():
    m = StampGapMonitor(window_s=5.0)
    feed(m, [i * 33.3 for i in range(40)])  # a clean start gives the period
    feed(m, [40 * 33.3 + i * 66.6 for i in range(60)], t0=110.0, period_s=0.066)
    h = m.health(110.0 + 59 * 0.066)
    assert h.loss == pytest.approx(0.5, abs=0.03), h
    assert h.camera_hz == pytest.approx(30.0, rel=0.05)


def test_sequence_numbers_count_loss_exactly():
    m = StampGapMonitor(window_s=20.0)
    kept = [i for i in range(100) if i % 4 == 0]  # 3 of 4 lost
    feed(m, [i * 500 for i in kept], seqs=[i + 1 for i in kept], period_s=0.5)
    h = m.health(100 + (len(kept) - 1) * 0.5)
    assert h.loss == pytest.approx(1 - (len(kept) - 1) / (kept[-1] - kept[0]), abs=1e-9) and h.loss > 0.7


def test_two_writers_interleaving_are_no_loss():
    """A bag replayed beside the driver (found from outside: "loses 65%" with nothing lost): two
    writers' numbers and stamps interleave, and nothing is estimated; the messages are counted."""
    m = StampGapMonitor(window_s=5.0)
    stamps = [s for i in range(30) for s in (i * 333, i * 333 + 70)]
    seqs = [q for i in range(30) for q in (i + 1, i + 501)]
    feed(m, stamps, seqs=seqs, period_s=0.1665)
    h = m.health(100 + 59 * 0.1665)
    assert h.loss is None and h.camera_hz is None and h.received > 25


def test_one_message_a_window_still_counts_from_the_one_before():
    """2 Hz camera, 9 of 10 frames lost: a 5 s window holds one message."""
    m = StampGapMonitor(window_s=5.0)
    for j, i in enumerate(range(0, 60, 10)):
        m.add(100 + j * 5.0, i * 500 * MS, i + 1)
    h = m.health(126.0)
    assert h.received == 1 and h.loss == pytest.approx(0.9) and h.camera_hz == pytest.approx(2.0)


def test_pauses_and_jumps_back_are_not_loss():
    m = StampGapMonitor(window_s=30.0)
    feed(m, [i * 100 for i in range(20)] + [20_000 + i * 100 for i in range(20)], period_s=0.1)  # a 18 s pause
    assert m.health(104.0).loss == pytest.approx(0.0)
    m.add(105.0, 5 * MS)  # a looped bag starts again: the stamps' estimate starts again...
    h = m.health(105.0)
    assert h.loss is None and h.received == 41  # ...and every message still counts as received


def test_a_bag_looped_with_its_recorded_stamps_is_received_at_its_rate():
    """Found from outside: 60 frames looped at 30 Hz with their recorded stamps read 1.8 Hz
    received (each jump back emptied the count) while the node's input rate read 30."""
    m = StampGapMonitor(window_s=5.0)
    stamps = [i * 33.3 for i in range(60)] * 4  # 8 s: four loops
    feed(m, stamps, seqs=list(range(1, 241)), period_s=1 / 30)
    h = m.health(100 + 239 / 30)
    assert h.received_hz == pytest.approx(30.0, rel=0.05) and h.camera_hz == pytest.approx(30.0, rel=0.05)


def test_a_short_burst_gives_the_cameras_rate_from_its_stamps():
    """Found from outside: 9 frames at 30 Hz read as a 0.9 Hz camera over the 10 s window."""
    m = StampGapMonitor(window_s=10.0)
    feed(m, [i * 33.3 for i in range(9)], seqs=list(range(1, 10)), period_s=1 / 30)
    h = m.health(101.0)
    assert h.received_hz == pytest.approx(0.9) and h.loss == 0.0 and h.camera_hz == pytest.approx(30.0, rel=0.05)


def test_too_few_messages_say_nothing():
    m = StampGapMonitor()
    assert m.health(0.0).loss is None
    m.add(0.0, 0)
    assert m.health(0.0).loss is None and m.health(0.0).camera_hz is None


def test_adding_while_reading_from_other_threads_is_safe():
    m = StampGapMonitor(window_s=1.0)
    errors = errors_reading_while_writing(lambda w, i: m.add(i * 1e-4, (w * 10**9 + i) * MS), lambda: m.health(1.0))
    assert not errors, errors[:3]


def test_repeated_stamps_are_received_not_lost():
    """A one-frame bag looped with its stamps kept: each message repeats the last stamp. Their
    sequence numbers went uncounted, and the next new stamp read as "loses 100%" (found from
    outside)."""
    m = StampGapMonitor(window_s=5.0)
    seq = iter(range(1, 10_000))
    for i in range(150):  # 5 s at 30 Hz, a new stamp every 10th message
        m.add(100 + i / 30, (i // 10) * 333 * MS, next(seq))
    h = m.health(100 + 149 / 30)
    assert h.received == 150 and h.loss == pytest.approx(0.0) and h.camera_hz == pytest.approx(30.0, rel=0.05)
    m = StampGapMonitor(window_s=5.0)  # and without sequence numbers, the stamps' own period stands
    feed(m, [(i // 2) * 33.3 for i in range(100)], period_s=0.0167)
    assert m.health(100 + 99 * 0.0167).loss == pytest.approx(0.0, abs=0.01)
