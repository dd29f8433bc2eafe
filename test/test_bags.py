import json

import numpy as np
import pytest

from robot_classify.data.bags import BagError, read_frames, read_ground_truth, write_bag
from robot_classify.runtime.image_conversion import color_from_msg, depth_from_msg

from scene_fixtures import rendered


@pytest.fixture(scope="module")
def scenes():
    return [rendered(s) for s in (1, 4, 7)]


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bag_round_trip_both_storages(tmp_path, scenes, storage):
    path = write_bag(tmp_path / "bag", scenes, storage)
    frames = list(read_frames(path))
    assert len(frames) == 3
    for f, s in zip(frames, scenes):
        np.testing.assert_array_equal(color_from_msg(f.color), s.color)
        np.testing.assert_array_equal(depth_from_msg(f.depth), s.depth)
        assert list(f.info.k) == [615.0, 0, 320.0, 0, 615.0, 240.0, 0, 0, 1.0]
    assert frames[1].stamp_ns - frames[0].stamp_ns == 33_333_333  # 30 Hz
    gt = read_ground_truth(path)
    assert sorted(gt) == [f.stamp_ns for f in frames]
    truth, meta = gt[frames[0].stamp_ns], scenes[0].meta["objects"]
    assert [o.label for o in truth.objects] == [o["class_name"] for o in meta]
    assert [o.visible_fraction for o in truth.objects] == [o["visible_fraction"] for o in meta]
    assert [o.bbox for o in truth.objects] == [tuple(o["bbox"].values()) for o in meta]


def test_bag_opens_with_the_mcap_reader(tmp_path, scenes):
    mcap_reader = pytest.importorskip("mcap.reader")
    path = write_bag(tmp_path / "bag", scenes[:1], "mcap")
    with open(next(path.glob("*.mcap")), "rb") as f:
        topics = {ch.topic for ch in mcap_reader.make_reader(f).get_summary().channels.values()}
    assert "/camera/camera/color/image_raw" in topics and "/ground_truth/object_labels" in topics


def test_folder_named_dot_bag_is_read_as_rosbag2(tmp_path, scenes):
    path = write_bag(tmp_path / "demo.bag", scenes[:1])
    assert len(list(read_frames(path))) == 1


def test_missing_topics_error_lists_what_the_bag_has(tmp_path, scenes):
    path = write_bag(tmp_path / "bag", scenes[:1])
    with pytest.raises(BagError, match=r"missing topic\(s\) /nope(.|\n)*/camera/camera/color/image_raw \[sensor_msgs/msg/Image\]"):
        list(read_frames(path, ("/nope", "/camera/camera/aligned_depth_to_color/image_raw", "/x")))


def test_corrupt_and_missing_bags_give_clear_errors(tmp_path, scenes):
    path = write_bag(tmp_path / "bag", scenes, "mcap")
    f = next(path.glob("*.mcap"))
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])
    with pytest.raises(BagError, match="truncated or corrupt|cannot open"):
        list(read_frames(path))
    with pytest.raises(BagError, match="no such bag"):
        list(read_frames(tmp_path / "absent"))
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "metadata.yaml").write_text("rosbag2_bagfile_information: {storage_identifier: floppy}")
    with pytest.raises(BagError, match="cannot open"):
        list(read_frames(junk))


def test_sidecar_ground_truth(tmp_path):
    side = tmp_path / "gt.jsonl"
    side.write_text(json.dumps({"header": {"stamp": {"sec": 1, "nanosec": 5}}, "objects": []}) + "\n")
    assert list(read_ground_truth(None, side)) == [1_000_000_005]
    side.write_text("not json\n")
    with pytest.raises(BagError, match="gt.jsonl:1"):
        read_ground_truth(None, side)
