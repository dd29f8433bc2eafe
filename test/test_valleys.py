"""Objects a stereo camera's smeared depth joins by a low ramp are cut at the valley between them
(runtime.valleys). Scenes: a camera 0.8 m straight above a table; the objects' heights blurred
as a D4xx smears depth onto the table around an object, so that no depth jump and no crease
parts them, and one colour for both, so that colour does not either."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from robot_classify.runtime.camera import Intrinsics
from robot_classify.runtime.patches import SegmentationParams, extract_objects

K = Intrinsics(600.0, 600.0, 320.0, 240.0)
RED, TABLE = (200, 40, 40), (120, 110, 100)


def _frame(objects: list[tuple[int, int, int, int, float]], smear: float) -> tuple[np.ndarray, np.ndarray]:
    """(colour, depth in mm) of `objects` ((x0, y0, x1, y1) pixels, height in metres), their
    heights blurred by a Gaussian of `smear` pixels."""
    height = np.zeros((480, 640), np.float32)
    color = np.full((480, 640, 3), TABLE, np.uint8)
    for x0, y0, x1, y1, h in objects:
        height[y0:y1, x0:x1] = h
        color[y0:y1, x0:x1] = RED
    smeared = cv2.GaussianBlur(height, (0, 0), smear)
    return color, ((0.8 - smeared) * 1000).round().astype(np.uint16)


def _both(objects, smear: float) -> tuple:
    color, depth = _frame(objects, smear)
    return (extract_objects(color, depth, K, SegmentationParams(split_valleys=False)),
            extract_objects(color, depth, K, SegmentationParams()))


def test_two_objects_joined_by_a_low_ramp_are_two():
    """20 px apart, smeared by 8: the ramps meet 1.9 cm above the table, under a third of the
    lower object's 8 cm."""
    whole, cut = _both([(230, 200, 300, 280, 0.10), (320, 200, 410, 280, 0.08)], 8.0)
    assert len(whole.objects) == 1
    assert len(cut.objects) == 2 and cut.rejected == {"valley split": 1}
    left, right = sorted(cut.objects, key=lambda o: o.bbox[0])
    assert left.bbox[0] + left.bbox[2] <= 320 and right.bbox[0] >= 300
    assert np.max(left.extent) > np.max(right.extent) * 0.9  # each is one object's size, not both


def test_a_bridge_near_the_lower_objects_height_is_no_valley():
    """10 px apart, smeared by 8: the bridge is 4.7 cm high, more than a third of 8 cm: one
    object might be shaped so (a bottle's shoulder), and the rule leaves it."""
    whole, cut = _both([(230, 200, 310, 280, 0.10), (320, 200, 410, 280, 0.08)], 8.0)
    assert len(whole.objects) == len(cut.objects) == 1 and "valley split" not in cut.rejected


def test_one_object_and_its_smeared_skirt_stay_whole():
    whole, cut = _both([(260, 200, 380, 280, 0.12)], 8.0)
    assert len(cut.objects) == 1 and "valley split" not in cut.rejected
    assert cut.objects[0].bbox == whole.objects[0].bbox


@pytest.mark.parametrize("gap", [0, 6])
def test_a_low_object_beside_a_tall_one_is_no_peak(gap):
    """A marker lying (1.8 cm) against or near a box: the bridge is as high as the marker
    itself, so it never stands three times the bridge's height. What parts them is left to the
    other rules, as without this one."""
    whole, cut = _both([(230, 200, 330, 280, 0.12), (330 + gap, 190, 344 + gap, 290, 0.018)], 4.0)
    assert [o.bbox for o in cut.objects] == [o.bbox for o in whole.objects]
    assert "valley split" not in cut.rejected
