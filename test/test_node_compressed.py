"""classify_node taking image_transport's compressed topics over real Fast DDS: colour on
`<topic>/compressed`, depth on `<topic>/compressedDepth`, as a camera driver or a bag from a
robot publishes them."""
import struct
import time

import numpy as np
import pytest

pytest.importorskip("rclpy")

from ros_harness import RosHarness, make_compressed, make_info  # noqa: E402
from scene_fixtures import camera_k, rendered  # noqa: E402

from robot_classify.learn.model_io import load_model  # noqa: E402
from robot_classify.runtime.camera import Intrinsics  # noqa: E402
from robot_classify.runtime.compressed import encode_color, encode_depth  # noqa: E402
from robot_classify.runtime.frame_processor import FrameProcessor  # noqa: E402
from robot_classify.runtime.parameters import check_parameters  # noqa: E402

pytestmark = pytest.mark.ros
TOPICS = ("/zc/color", "/zc/depth", "/zc/info")


def test_compressed_colour_and_depth_are_labelled_and_malformed_data_is_survived(default_model_file):
    """PNG colour + RVL depth (lossless) give the objects the raw frame gives offline; JPEG +
    compressedDepth PNG are labelled too; a bomb-sized PNG, a truncated RVL and a wrong config
    header are skipped with one throttled warning each, and the node keeps answering."""
    s = rendered(900_000_003)
    K = camera_k(s)
    h = RosHarness(default_model_file, TOPICS, transports=("compressed", "compressedDepth"))
    try:
        assert h.wire_topics == ["/zc/color/compressed", "/zc/depth/compressedDepth"]
        assert any("/zc/color/compressed [CompressedImage]" in line for line in h.log), h.log[-5:]
        t0 = 1_790_000_000_000_000_000
        h.publish_frame(s.color, s.depth, K, t0)  # png + rvl (the harness's codecs)
        got = h.wait_for(t0)
        processor = FrameProcessor.from_parameters(load_model(default_model_file, device="cpu"),
                                                   check_parameters({"device": "cpu"}))
        want = processor.process(s.color, s.depth, Intrinsics.from_k(K), (0, 0), "").labels.to_doc()["objects"]
        assert want and [(o["label"], o["bbox"]) for o in got["objects"]] == [(o["label"], o["bbox"]) for o in want]
        assert [o["score"] for o in got["objects"]] == pytest.approx([o["score"] for o in want], abs=1e-6)

        # malformed: each twice (one warning each: throttled), then a good frame still answered
        _, png = encode_color(s.color, "png")
        ihdr = b"IHDR" + struct.pack(">II", 60000, 60000) + png[24:29]
        import zlib
        bomb = png[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + png[33:]
        dfmt, rvl = encode_depth(s.depth, "rvl")
        cfmt, good_png = encode_color(s.color, "png")
        bad = [(cfmt, bomb, dfmt, rvl), (cfmt, good_png, dfmt, rvl[:len(rvl) // 2 // 4 * 4]),
               (cfmt, good_png, dfmt, struct.pack("<iff", 3, 0, 0) + rvl[12:])]
        stamp = t0
        for case in bad * 2:
            stamp += 100_000_000
            h.info_pub.publish(make_info(K, 640, 480, stamp))
            time.sleep(0.1)
            h.depth_pub.publish(make_compressed(case[2], case[3], stamp))
            h.color_pub.publish(make_compressed(case[0], case[1], stamp))
            time.sleep(0.3)
        h.color_codec, h.depth_codec = "jpeg", "png"
        stamp += 100_000_000
        h.publish_frame(s.color, s.depth, K, stamp)
        jpeg_doc = h.wait_for(stamp)
        assert len(jpeg_doc["objects"]) == len(want)
        assert h.alive()
        warnings = [line for line in h.log if "frame skipped (bad image)" in line]
        for text in ("claims 60000x60000 pixels", "RVL data is", "header has format 3"):
            assert sum(text in line for line in warnings) == 1, (text, warnings)
        assert not any("Traceback" in line for line in h.log)
        labelled = {d["header"]["stamp"]["sec"] * 10**9 + d["header"]["stamp"]["nanosec"] for d in h.received}
        assert labelled == {t0, stamp}
    finally:
        h.close()


def test_a_compressed_bag_replayed_into_the_node_gives_replay_evals_labels(tmp_path, default_model_file):
    """make-bag's PNG + compressedDepth PNG bag -> replay (asked for the raw topic names, as the
    demo does) -> classify_node with compressed transports: the labels replay-eval gives offline."""
    from robot_classify.data.bags import COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC, write_bag
    from robot_classify.evaluation.replay_eval import run_frames
    from robot_classify.ros.replay import replay

    bag = write_bag(tmp_path / "bag", [rendered(900_000_000 + i) for i in range(3)], color_format="png",
                    depth_format="png")
    topics = (COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC)
    proc = FrameProcessor.from_parameters(load_model(default_model_file, device="cpu"),
                                          check_parameters({"device": "cpu"}))
    offline = {f.stamp_ns: res.labels.to_doc()["objects"] for f, res, *_ in run_frames(bag, proc, topics, quiet=True)}
    assert len(offline) == 3
    h = RosHarness(default_model_file, topics, transports=("compressed", "compressedDepth"))
    try:
        assert replay(bag, rate=0.1, keep_stamps=True, topics=list(topics), wait_for_subscribers=20.0) == 9  # 3 x (colour, depth, info)
        for stamp, objects in offline.items():
            live = h.wait_for(stamp, timeout=10.0)["objects"]
            assert [(o["label"], o["bbox"]) for o in live] == [(o["label"], o["bbox"]) for o in objects]
    finally:
        h.close()
