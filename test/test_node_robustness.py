"""classify_node against what a robot throws at it, over real Fast DDS: hostile stamps,
intrinsics and masks, parameters changed back and forth, statistics read while written."""
import time

import numpy as np
import pytest

pytest.importorskip("rclpy")

from concurrency import errors_reading_while_writing  # noqa: E402
from ros_harness import make_image, make_info  # noqa: E402
from scene_fixtures import camera_k, rendered  # noqa: E402

pytestmark = pytest.mark.ros
SEED = 900_000_003  # a held-out scene


def test_k_zero_restores_the_models_tuned_k(harness):
    s = rendered(SEED)
    K = camera_k(s)

    def scores(stamp):
        harness.publish_frame(s.color, s.depth, K, stamp)
        return [[t["score"] for t in o["top_k"]] for o in harness.wait_for(stamp)["objects"]]

    tuned = scores(1_730_000_000_000_000_000)
    assert all(r.successful for r in harness.set_parameters(k=1000))  # the tuned k is 3: votes spread
    wide = scores(1_730_000_001_000_000_000)
    assert wide != tuned  # (scores are calibrated vote shares, no longer multiples of 1/k)
    assert all(r.successful for r in harness.set_parameters(k=0))
    assert scores(1_730_000_002_000_000_000) == tuned


def test_top_k_above_the_class_count_means_every_class_at_run_time_too(harness):
    """...every class that scores above 0: with k = 1000 more than 3 classes have votes (the
    others are no alternative); an integer for a float parameter (min_score 0, as `ros2 param
    set` sends `0`) is that float."""
    s = rendered(SEED)
    assert all(r.successful for r in harness.set_parameters(top_k=50, k=1000, min_score=0))
    stamp = 1_731_000_000_000_000_000
    harness.publish_frame(s.color, s.depth, camera_k(s), stamp)
    doc = harness.wait_for(stamp)
    lengths = [len(o["top_k"]) for o in doc["objects"]]
    assert lengths and all(3 < n <= 10 for n in lengths), lengths
    assert all(t["score"] > 0 for o in doc["objects"] for t in o["top_k"])
    # stored as a double: it had read back as an INTEGER parameter (found from outside)
    from rcl_interfaces.msg import ParameterType
    from rcl_interfaces.srv import GetParameters

    client = harness.node.create_client(GetParameters, "/robot_classify/get_parameters")
    assert client.wait_for_service(timeout_sec=10)
    got = harness._call(client, GetParameters.Request(names=["min_score"])).values[0]
    assert (got.type, got.double_value) == (ParameterType.PARAMETER_DOUBLE, 0.0)
    harness.node.destroy_client(client)
    assert all(r.successful for r in harness.set_parameters(top_k=3, k=0, min_score=-1.0))


def test_invalid_stamps_and_absurd_intrinsics_are_skipped_with_a_warning(harness):
    s = rendered(SEED)
    K = camera_k(s)

    def send(stamp_sec, stamp_nsec, k):
        info = make_info(k, 640, 480, 0)
        color, depth = make_image(s.color, "rgb8", 0), make_image(s.depth, "16UC1", 0)
        for msg in (info, color, depth):
            msg.header.stamp.sec, msg.header.stamp.nanosec = stamp_sec, stamp_nsec
        harness.info_pub.publish(info)
        time.sleep(0.1)
        harness.depth_pub.publish(depth)
        harness.color_pub.publish(color)

    send(1_732_000_000, 1_500_000_000, K)
    assert harness.wait_log("bad stamp", timeout=5.0), "\n".join(harness.log[-10:])
    send(-5, 0, K)
    assert harness.wait_log("sec=-5", timeout=5.0), "\n".join(harness.log[-10:])
    send(1_732_000_001, 0, [1e300, 0, 320, 0, 1e300, 240, 0, 0, 1])
    assert harness.wait_log("focal lengths must be > 0 and <= 1e+06", timeout=5.0), "\n".join(harness.log[-10:])
    assert not any("RuntimeWarning" in line or "overflow" in line for line in harness.log)
    assert not any(d["header"]["stamp"]["sec"] < 0 or d["header"]["stamp"]["nanosec"] >= 10**9
                   for d in harness.received)
    good = 1_732_000_002_000_000_000
    harness.publish_frame(s.color, s.depth, K, good)
    assert harness.wait_for(good)["objects"] and harness.alive()


def test_diagnostics_read_while_workers_record_never_fails(default_model_file):
    """The timer reads the rolling statistics while worker threads append to them."""
    import rclpy
    from rclpy.parameter import Parameter

    from robot_classify.ros.node import ClassifyNode

    context = rclpy.Context()  # its own: the module's harness holds the default context
    context.init()
    node = ClassifyNode(context=context, parameter_overrides=[Parameter("model_path", value=default_model_file),
                                                              Parameter("device", value="cpu")])
    try:
        errors = errors_reading_while_writing(
            lambda w, i: node._record(time.monotonic(), time.monotonic() - 0.02, 20.0, time.monotonic() - 0.015),
            node._publish_diagnostics)
    finally:
        node.destroy_node()
        context.try_shutdown()
    assert not errors, errors[:3]


def test_node_survives_a_fuzz_of_malformed_messages(harness):
    """300 seeded malformed colour/depth/camera_info triples over DDS (wrong encodings, sizes,
    steps, byte orders, data lengths, intrinsics, stamps), then a good frame: it is answered,
    the node is alive, and nothing reached a traceback."""
    rng = np.random.default_rng(7)
    s = rendered(SEED)
    K = camera_k(s)
    encodings = ["rgb8", "bgr8", "rgba8", "mono8", "16UC1", "32FC1", "mono16", "yuv422", "8UC3", "", "rgb8\x00"]

    def mutate(msg, encoding_pool):
        choice = rng.integers(0, 6)
        if choice == 0:
            msg.encoding = str(rng.choice(encoding_pool))
        elif choice == 1:
            msg.width, msg.height = int(rng.integers(0, 4000)), int(rng.integers(0, 4000))
        elif choice == 2:
            msg.step = int(rng.integers(0, 1 << 20))
        elif choice == 3:
            msg.is_bigendian = int(rng.integers(0, 2))
        elif choice == 4:
            msg.data = rng.integers(0, 256, int(rng.integers(0, 1 << 21)), dtype=np.uint8).tobytes()
        else:
            msg.header.stamp.sec = int(rng.integers(-(1 << 31), 1 << 31))
            msg.header.stamp.nanosec = int(rng.integers(0, 1 << 32))
        return msg

    bad_k = [np.nan, np.inf, -1.0, 0.0, 1e300, 1e-300]
    for i in range(300):
        stamp = 1_733_000_000_000_000_000 + i * 40_000_000
        color, depth = make_image(s.color, "rgb8", stamp), make_image(s.depth, "16UC1", stamp)
        info = make_info(K, 640, 480, stamp)
        target = rng.integers(0, 3)
        if target == 0:
            mutate(color, encodings)
        elif target == 1:
            mutate(depth, encodings)
        else:
            k = list(K)
            k[int(rng.choice([0, 2, 4, 5]))] = float(rng.choice(bad_k))
            info = make_info(k, int(rng.integers(0, 2000)), int(rng.integers(0, 2000)), stamp)
        harness.info_pub.publish(info)
        harness.depth_pub.publish(depth)
        harness.color_pub.publish(color)
        time.sleep(0.005)
    good = 1_734_000_000_000_000_000
    harness.publish_frame(s.color, s.depth, K, good)
    assert harness.wait_for(good, timeout=30.0)["objects"]
    assert harness.alive()
    assert not any("Traceback" in line for line in harness.log), "\n".join(harness.log[-20:])



def test_the_same_problem_with_other_numbers_is_one_warning_per_throttle_period(harness):
    """Found from outside: the throttle keyed on the whole text, so a bad stamp that changes every
    frame (or a byte count) gave one warning line per frame."""
    s = rendered(SEED)
    before = sum("bad stamp" in line for line in harness.log)
    for i in range(5):
        info = make_info(camera_k(s), 640, 480, 0)
        color, depth = make_image(s.color, "rgb8", 0), make_image(s.depth, "16UC1", 0)
        for msg in (info, color, depth):
            msg.header.stamp.sec, msg.header.stamp.nanosec = 1_733_000_000 + i, 1_000_000_000 + i
        harness.info_pub.publish(info)
        harness.depth_pub.publish(depth)
        harness.color_pub.publish(color)
        time.sleep(0.3)
    harness.wait_log("nanosec=1000000004", timeout=2.0)  # give the last one time to be logged, if it were
    assert sum("bad stamp" in line for line in harness.log) - before <= 1, "\n".join(harness.log[-8:])
    assert harness.alive()


def test_classify_node_help_prints_usage_and_starts_no_node(capsys):
    from robot_classify.ros.node import main

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: classify_node") and "min_score (default -1.0, run time)" in out
