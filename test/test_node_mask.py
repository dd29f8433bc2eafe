"""classify_node in mask mode over real Fast DDS: each frame takes the mask stamped like it,
and a hostile mask costs what any mask costs."""
import time

import numpy as np
import pytest

pytest.importorskip("rclpy")

from ros_harness import RosHarness, make_image  # noqa: E402
from scene_fixtures import camera_k, rendered  # noqa: E402

pytestmark = pytest.mark.ros
SEED = 900_000_005


@pytest.fixture(scope="module")
def harness(default_model_file):
    h = RosHarness(default_model_file, params={"segmentation.mode": "mask"})
    from sensor_msgs.msg import Image
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    h.mask_pub = h.node.create_publisher(Image, "/mask/image_raw", QoSProfile(depth=10,
                                                                                reliability=ReliabilityPolicy.RELIABLE))
    end = time.monotonic() + 10
    while h.mask_pub.get_subscription_count() == 0 and time.monotonic() < end:
        time.sleep(0.05)
    yield h
    h.close()


def box_mask(x, y, w, h):
    m = np.zeros((480, 640), np.uint16)
    m[y:y + h, x:x + w] = 7
    return m


def test_a_frame_takes_the_mask_with_its_stamp_not_the_latest(harness):
    s = rendered(SEED)
    t1, t2 = 1_740_000_000_000_000_000, 1_740_000_000_500_000_000
    harness.mask_pub.publish(make_image(box_mask(100, 100, 80, 60), "16UC1", t1))
    harness.mask_pub.publish(make_image(box_mask(400, 300, 50, 90), "16UC1", t2))  # arrives last
    time.sleep(0.2)
    harness.publish_frame(s.color, s.depth, camera_k(s), t1)
    (obj,) = harness.wait_for(t1)["objects"]
    assert obj["bbox"] == {"x_offset": 100, "y_offset": 100, "width": 80, "height": 60}


def test_a_frame_whose_mask_never_comes_is_skipped_with_a_warning(harness):
    s = rendered(SEED)
    harness.publish_frame(s.color, s.depth, camera_k(s), 1_741_000_000_000_000_000)
    assert harness.wait_log("no mask/image_raw stamped", timeout=5.0), "\n".join(harness.log[-10:])


def test_a_mask_with_65535_ids_costs_no_more_than_any_mask(harness):
    s = rendered(SEED)
    hostile = (np.arange(480 * 640) % 65535 + 1).astype(np.uint16).reshape(480, 640)
    t_bad, t_good = 1_742_000_000_000_000_000, 1_742_000_000_500_000_000
    harness.mask_pub.publish(make_image(hostile, "16UC1", t_bad))
    harness.mask_pub.publish(make_image(box_mask(200, 150, 100, 100), "16UC1", t_good))
    time.sleep(0.2)
    start = time.monotonic()
    harness.publish_frame(s.color, s.depth, camera_k(s), t_bad)
    assert harness.wait_for(t_bad, timeout=10.0)["objects"] == []  # 4-5 pixels each: none is an object
    harness.publish_frame(s.color, s.depth, camera_k(s), t_good)
    assert len(harness.wait_for(t_good, timeout=10.0)["objects"]) == 1
    assert time.monotonic() - start < 5.0  # was ~26 s with a whole-image pass per id
    assert harness.alive()
