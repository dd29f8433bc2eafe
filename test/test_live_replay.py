"""replay (rclpy) -> running classify_node -> /object_labels agrees with replay-eval."""
import pytest

pytest.importorskip("rclpy")

from robot_classify.data.bags import COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC, write_bag  # noqa: E402
from robot_classify.runtime.frame_processor import FrameProcessor  # noqa: E402
from robot_classify.evaluation.matching import match_boxes  # noqa: E402
from robot_classify.learn.model_io import load_model  # noqa: E402
from robot_classify.runtime.patches import SegmentationParams  # noqa: E402
from robot_classify.runtime.results import FrameLabels  # noqa: E402
from robot_classify.ros.replay import replay  # noqa: E402
from robot_classify.evaluation.replay_eval import run_frames  # noqa: E402

from ros_harness import RosHarness  # noqa: E402
from scene_fixtures import rendered  # noqa: E402

pytestmark = pytest.mark.ros


def test_live_replay_through_the_node_agrees_with_replay_eval(tmp_path, default_model_file):
    bag = write_bag(tmp_path / "bag", [rendered(900_000_000 + i) for i in range(6)])
    topics = (COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC)
    proc = FrameProcessor(load_model(default_model_file, device="cpu"), SegmentationParams())
    offline = {f.stamp_ns: res.labels for f, res, *_ in run_frames(bag, proc, topics, quiet=True)}
    h = RosHarness(default_model_file, topics)
    try:
        # 30 Hz bag at 0.1x: a frame is normally processed before the next arrives. The node
        # keeps only the newest pair, so a frame may still be dropped (by design) under load.
        replay(bag, rate=0.1, keep_stamps=True, topics=list(topics))
        agree = total = frames = 0
        for stamp, labels in offline.items():
            try:
                live = FrameLabels.from_doc(h.wait_for(stamp, timeout=5.0)).objects
            except TimeoutError:
                continue
            frames += 1
            pairs = match_boxes([o.bbox for o in live], [o.bbox for o in labels.objects], threshold=0.9)
            total += len(labels.objects)
            agree += sum(live[i].label == labels.objects[j].label for i, j, _ in pairs)
        assert frames >= 4 and total > 8, (frames, total)
        assert agree / total >= 0.95, (agree, total)
    finally:
        h.close()
