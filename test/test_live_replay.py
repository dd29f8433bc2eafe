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


def test_ctrl_c_stops_a_looping_replay_quietly(tmp_path):
    """Tried from outside on 0.6.1: Ctrl-C on `replay --loop` printed `error: Failed to wait for
    all acknowledgements` (the closed context's), at times a traceback. Now it ends with 130
    and says nothing: an interruption, not an error."""
    import signal
    import subprocess
    import sys
    import threading
    import time

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import CameraInfo

    bag = write_bag(tmp_path / "bag", [rendered(900_000_020 + i) for i in range(2)])
    got: list = []
    rclpy.init()
    node = rclpy.create_node("ctrl_c_listener")
    node.create_subscription(CameraInfo, INFO_TOPIC, got.append, 10)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    proc = subprocess.Popen([sys.executable, "-m", "robot_classify.cli", "replay", "--bag", str(bag), "--loop",
                             "--wait", "60", "--topics", INFO_TOPIC, "--rate", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + 60
        while len(got) < 2 and time.monotonic() < end:  # playing: rclpy is up in the replay process
            time.sleep(0.05)
        assert len(got) >= 2
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        assert err.strip() == "" and "published" not in out
    finally:
        proc.kill()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


def test_ctrl_c_inside_rclpys_deserializer_is_an_interruption_not_a_type_error(tmp_path, monkeypatch):
    """CI caught it once: the KeyboardInterrupt landed in CameraInfo.__init__, which rclpy's C++
    deserializer calls, and came out as pybind11's TypeError ("Unable to convert function return
    value"): a traceback and exit 1 instead of 130."""
    import rclpy.serialization

    bag = write_bag(tmp_path / "bag", [rendered(900_000_040)])

    def interrupted(raw, cls):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as e:
            raise TypeError("Unable to convert function return value to a Python type!") from e
    monkeypatch.setattr(rclpy.serialization, "deserialize_message", interrupted)
    with pytest.raises(KeyboardInterrupt):
        replay(bag, topics=[INFO_TOPIC])
    def broken(raw, cls):
        raise TypeError("a message class of the wrong kind")
    monkeypatch.setattr(rclpy.serialization, "deserialize_message", broken)
    with pytest.raises(TypeError, match="wrong kind"):  # a TypeError of its own stays one
        replay(bag, topics=[INFO_TOPIC])


def test_a_looping_replay_keeps_a_frame_period_between_passes(tmp_path):
    """Found from outside: the last frame of one pass and the first of the next went 7 ms apart
    (frames 33 ms), inside sync_slop, so two scenes' colour and depth could pair."""
    import time

    bag = write_bag(tmp_path / "bag", [rendered(900_000_040 + i) for i in range(3)])  # 30 Hz
    sent: list[float] = []
    replay(bag, rate=0.5, loop=True, topics=[INFO_TOPIC], on_message=lambda topic, msg: sent.append(time.monotonic()),
           should_stop=lambda: len(sent) >= 6)
    gaps = [b - a for a, b in zip(sent, sent[1:])]
    assert len(sent) == 6 and min(gaps) > 0.05, gaps  # 66.7 ms a frame at half speed, between passes too


def test_replayed_stamps_follow_the_playback_rate_and_never_step_back(tmp_path):
    """Found from outside: at --rate 2 the stamps kept the bag's spacing, ran ahead of the clock and
    stepped back at every loop."""
    import time

    from robot_classify.runtime.stamps import header_to_ns

    bag = write_bag(tmp_path / "bag", [rendered(900_000_040 + i) for i in range(3)])  # 33.3 ms apart
    got: list[tuple[int, int]] = []
    replay(bag, rate=2.0, loop=True, topics=[INFO_TOPIC],
           on_message=lambda topic, msg: got.append((header_to_ns(msg.header), time.time_ns())),
           should_stop=lambda: len(got) >= 7)
    stamps = [s for s, _ in got]
    assert all(b > a for a, b in zip(stamps, stamps[1:])), stamps
    assert all(abs((stamps[i + 1] - stamps[i]) - 16_666_667) < 2_000_000 for i in (0, 1, 3, 4))  # half the period
    assert max(s - wall for s, wall in got) < 5_000_000  # not ahead of the clock
