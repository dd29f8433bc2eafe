"""`replay`'s pacing without rclpy: the bag's time line divided by --rate, except the silences that
end every track (between two imported scenes), which keep their length."""
import pytest

from robot_classify.data.bags import SEQUENCE_GAP_S
from robot_classify.ros.replay import Pace
from robot_classify.runtime.tracking import RESET_GAP_S

S = 1_000_000_000
FRAME = S // 30


def offsets(times, rate):
    pace = Pace(rate)
    return [pace.offset_ns(t) for t in times]


def test_frames_play_at_the_rate_and_a_silence_that_ends_tracks_stays_long_enough():
    scene = [0, FRAME, 2 * FRAME]
    gap = 2 * FRAME + round(6.0 * S)  # the next scene, 6 s after the last frame (bags.SEQUENCE_GAP_S)
    times = scene + [gap, gap + FRAME]
    assert offsets(times, 1.0) == pytest.approx(times, abs=1)
    fast = offsets(times, 4.0)
    assert fast[1] == pytest.approx(FRAME / 4, abs=1) and fast[2] == pytest.approx(2 * FRAME / 4, abs=1)
    assert fast[3] - fast[2] == pytest.approx(SEQUENCE_GAP_S * S, abs=1) and SEQUENCE_GAP_S > RESET_GAP_S
    assert fast[4] - fast[3] == pytest.approx(FRAME / 4, abs=1)  # the next scene at the rate again
    slow = offsets(times, 0.5)
    assert slow[3] - slow[2] == pytest.approx(12.0 * S, abs=1)  # already longer than kept: as scaled


def test_a_pause_shorter_than_the_reset_is_scaled_like_any_other():
    times = [0, 4 * S, 4 * S + FRAME]
    assert offsets(times, 2.0) == pytest.approx([0, 2 * S, 2 * S + FRAME / 2], abs=1)
