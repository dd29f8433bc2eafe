"""The first frame over real DDS when its camera_info comes after its images (a node of its own:
the module-scoped harness elsewhere has long had a camera_info)."""
import time

import pytest

pytest.importorskip("rclpy")

from ros_harness import RosHarness, make_image, make_info  # noqa: E402
from scene_fixtures import camera_k, rendered  # noqa: E402

pytestmark = pytest.mark.ros


def test_first_frame_is_labelled_when_its_camera_info_arrives_after_the_images(default_model_file):
    """Images and camera_info travel on different topics; the very first frame's small
    camera_info may land after its images. The node waits for the first one (briefly)."""
    s = rendered(900_000_000)
    h = RosHarness(default_model_file)
    try:
        stamp = 1_700_000_100_000_000_000
        height, width = s.color.shape[:2]
        h.depth_pub.publish(make_image(s.depth, "16UC1", stamp))
        h.color_pub.publish(make_image(s.color, "rgb8", stamp))
        time.sleep(0.05)
        h.info_pub.publish(make_info(camera_k(s), width, height, stamp))
        assert h.wait_for(stamp, timeout=10.0)["objects"]
    finally:
        h.close()
