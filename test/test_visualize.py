import itertools

import numpy as np

from robot_classify.runtime.visualize import draw_objects, place_labels


def overlap(a, b):
    return not (a[0] >= b[0] + b[2] or b[0] >= a[0] + a[2] or a[1] >= b[1] + b[3] or b[1] >= a[1] + a[3])


def test_labels_of_touching_and_stacked_boxes_do_not_cover_each_other():
    boxes = [(100, 100, 60, 80), (100, 100, 60, 80), (150, 95, 50, 50), (0, 0, 30, 30), (610, 460, 30, 20),
             (100, 100, 60, 80)]
    sizes = [(90, 16)] * len(boxes)
    spots = place_labels(boxes, sizes, (480, 640, 3))
    assert len(spots) == len(boxes)
    for a, b in itertools.combinations(spots, 2):
        assert not overlap(a, b), (a, b)
    for x, y, w, h in spots:  # inside the image
        assert 0 <= x and x + w <= 640 and 0 <= y and y + h <= 480
    assert spots[0] == (100, 84, 90, 16)  # a box alone keeps its label above it


def test_draw_objects_draws_every_box_and_label_on_a_copy():
    rgb = np.zeros((120, 160, 3), np.uint8)
    out = draw_objects(rgb, [((10, 40, 30, 30), "mug", 0.9), ((12, 42, 30, 30), "unknown", None)])
    assert not rgb.any() and out.shape == rgb.shape and out.any()
    assert out[24:40, 10:40].any() and out[40:56, 10:40].any()  # one label above, the other inside the box top


def test_a_crowded_label_takes_the_nearest_free_place_not_the_bottom_of_the_column():
    """A report's ground-truth tag once sat 170 px below its can, under another object's box:
    with all four places at its box taken, the nearest free one, up or down, is taken."""
    box, size = (100, 100, 60, 80), (90, 16)
    taken = [(100, y, 90, 16) for y in range(84, 400, 16)]  # above, inside and a whole column below
    taken = [t for t in taken if not 36 <= t[1] < 84]  # room two labels above the box
    (x, y, w, h), = place_labels([box], [size], (480, 640, 3), placed=list(taken), below=True)
    assert 36 <= y < 84 and not any(overlap((x, y, w, h), t) for t in taken)


def test_a_gap_just_one_label_tall_is_found():
    """Found in review: stepping half a label at a time missed a free gap off that grid."""
    box, size = (100, 120, 60, 60), (90, 16)
    taken = [(100, y, 90, 16) for y in list(range(36, 100, 16)) + list(range(116, 400, 16))]  # free: 100-116
    (x, y, w, h), = place_labels([box], [size], (480, 640, 3), placed=list(taken))
    assert y == 100 and not any(overlap((x, y, w, h), t) for t in taken)
