import pytest

from robot_classify.runtime.sync import StampSynchronizer

MS = 1_000_000


def test_exact_and_nearest_within_slop_pairing():
    s = StampSynchronizer(slop=0.01)
    s.add_color(100 * MS, "c1")
    s.add_depth(100 * MS, "d1")
    assert s.pop_latest() == (100 * MS, "c1", "d1")
    s.add_depth(205 * MS, "d2")
    s.add_color(200 * MS, "c2")  # 5 ms apart: pairs
    assert s.pop_latest() == (200 * MS, "c2", "d2")
    s.add_color(300 * MS, "c3")
    s.add_depth(350 * MS, "d3")  # 50 ms apart: no pair
    assert s.pop_latest() is None


def test_only_the_newest_pair_is_kept_and_older_ones_are_counted():
    s = StampSynchronizer(slop=0.0)
    for i in range(5):
        s.add_color(i * MS, f"c{i}")
        s.add_depth(i * MS, f"d{i}")
    assert s.pop_latest() == (4 * MS, "c4", "d4")
    assert s.stats.paired == 5 and s.stats.dropped_pairs == 4


def test_unpaired_frames_are_counted_not_lost():
    s = StampSynchronizer(slop=0.0, window=3)
    for i in range(5):
        s.add_color(i * MS, i)
    assert s.stats.unpaired_colour == 2
    s.add_depth(4 * MS, "d")  # pairs with colour 4; colours 2 and 3 can never pair now
    assert s.stats.unpaired_colour == 4 and s.pop_latest()[1] == 4


def test_negative_slop_rejected():
    with pytest.raises(ValueError):
        StampSynchronizer(slop=-1)
