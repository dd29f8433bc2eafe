import json
from pathlib import Path

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


def test_recordings_of_one_bag_start_apart_so_that_tracks_end_between_them(tmp_path, scenes):
    """`make-bag --sequence` and imported scenes: frames of another sequence start
    SEQUENCE_GAP_S later (more than the tracker's reset); frames with no sequence keep 30 Hz."""
    import copy

    from robot_classify.data.bags import SEQUENCE_GAP_S
    from robot_classify.runtime.tracking import RESET_GAP_S

    seq = [copy.copy(s) for s in scenes]
    for s, k in zip(seq, (0, 0, 1)):
        s.meta = {**s.meta, "sequence": k}
    steps = np.diff([f.stamp_ns for f in read_frames(write_bag(tmp_path / "seq", seq))])
    assert abs(steps[0] - 1e9 / 30) < 1 and abs(steps[1] - 1e9 / 30 - SEQUENCE_GAP_S * 1e9) < 1
    assert SEQUENCE_GAP_S > RESET_GAP_S
    steps = np.diff([f.stamp_ns for f in read_frames(write_bag(tmp_path / "apart", scenes))])
    assert np.abs(steps - 1e9 / 30).max() < 1


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
    with pytest.raises(BagError, match=f"^{tmp_path}: not a rosbag2 folder \\(it has no metadata.yaml\\)$"):
        list(read_frames(tmp_path))  # a folder, but no bag
    # found from outside: a folder of a lone .mcap (metadata.yaml lost) got no hint that the file reads
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "rec_0.mcap").write_bytes(f.read_bytes())
    with pytest.raises(BagError, match=r"it holds rec_0.mcap: pass that file itself .* `ros2 bag reindex`"):
        list(read_frames(lone))


def test_sidecar_ground_truth(tmp_path):
    side = tmp_path / "gt.jsonl"
    side.write_text(json.dumps({"header": {"stamp": {"sec": 1, "nanosec": 5}}, "objects": []}) + "\n")
    assert list(read_ground_truth(None, side)) == [1_000_000_005]
    side.write_text("not json\n")
    with pytest.raises(BagError, match="gt.jsonl:1"):
        read_ground_truth(None, side)


def _bag_with_info_after_images(path, n, storage="mcap"):
    """Frames whose camera_info is written after their images, as recorders write them; each
    frame's K differs (fx = 500 + frame), so a test can tell whose camera_info a frame got."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    from robot_classify.data.bags import (COLOR_TOPIC, DEPTH_TOPIC, GT_TOPIC, INFO_TOPIC, _typestore,
                                          frame_messages)
    from robot_classify.data.frames import LabelledFrame
    from robot_classify.runtime.camera import Intrinsics

    ts = _typestore()
    types = {COLOR_TOPIC: "sensor_msgs/msg/Image", DEPTH_TOPIC: "sensor_msgs/msg/Image",
             INFO_TOPIC: "sensor_msgs/msg/CameraInfo", GT_TOPIC: "std_msgs/msg/String"}
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conns = {t: w.add_connection(t, m, typestore=ts) for t, m in types.items()}
        for i in range(n):
            frame = LabelledFrame(np.full((6, 8, 3), i, np.uint8), np.full((6, 8), 900, np.uint16),
                                  Intrinsics(500.0 + i, 500.0, 4.0, 3.0), ())
            t = 1_000_000_000 + i * 100_000_000
            msgs = dict(frame_messages(ts, frame, t))
            for topic in (COLOR_TOPIC, DEPTH_TOPIC, GT_TOPIC, INFO_TOPIC):  # camera_info last
                w.write(conns[topic], t + (1000 if topic == INFO_TOPIC else 0),
                        ts.serialize_cdr(msgs[topic], msgs[topic].__msgtype__))
    return path


def test_camera_info_written_after_the_images_pairs_by_stamp(tmp_path):
    frames = list(read_frames(_bag_with_info_after_images(tmp_path / "bag", 5)))
    assert len(frames) == 5
    assert all(f.info is not None for f in frames)  # the first frame waits for its camera_info
    assert [f.info.k[0] for f in frames] == [500.0, 501.0, 502.0, 503.0, 504.0]
    assert [f.info.header.stamp.nanosec for f in frames] == [f.stamp_ns % 1_000_000_000 for f in frames]


def test_bag_without_camera_info_yields_frames_without_waiting(tmp_path, scenes):
    path = write_bag(tmp_path / "bag", scenes[:2])
    frames = list(read_frames(path, (
        "/camera/camera/color/image_raw", "/camera/camera/aligned_depth_to_color/image_raw", "/no/info")))
    assert len(frames) == 2 and all(f.info is None for f in frames)


def test_existing_bag_path_is_never_overwritten(tmp_path, scenes):
    (tmp_path / "bag").mkdir()
    with pytest.raises(BagError, match="exists"):
        write_bag(tmp_path / "bag", scenes[:1])
    assert list((tmp_path / "bag").iterdir()) == []


def test_a_failing_frame_leaves_no_bag_behind(tmp_path, scenes):
    def frames():
        yield scenes[0]
        raise RuntimeError("renderer crashed")

    with pytest.raises(RuntimeError, match="renderer crashed"):
        write_bag(tmp_path / "new" / "bag", frames())
    assert list(tmp_path.iterdir()) == []


def test_a_bag_where_none_can_be_written_names_the_path_asked_for(tmp_path, scenes):
    # Found from outside: `--out /proc/x15` said "[Errno 2] ... '/proc/.x15.zgu8zsh1.partial'"
    with pytest.raises(BagError, match=r"^cannot write a bag at /proc/x15: "):
        write_bag(Path("/proc/x15"), scenes[:1])
    (tmp_path / "file").write_text("")  # a file where a folder is needed: nothing is made around it
    with pytest.raises(BagError, match="cannot write a bag at .*/file/new/bag: "):
        write_bag(tmp_path / "file" / "new" / "bag", scenes[:1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
