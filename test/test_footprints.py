"""The footprints a crowded scene is laid out with (`sim.footprints`), and the layout itself."""
import math

import cv2
import numpy as np
import pytest

from robot_classify.sim.footprints import contact_distance, fits_on_top, footprint, overlap
from robot_classify.sim.object_catalog import CATALOG
from robot_classify.sim.scene_render import SceneRenderer


def test_footprints_have_the_products_sizes_standing_and_lying():
    box = footprint(CATALOG["cracker_box"], 0.0, lie=False)
    assert np.ptp(box, axis=0) == pytest.approx([0.16, 0.06])
    assert np.ptp(footprint(CATALOG["cracker_box"], 0.0, lie=True), axis=0) == pytest.approx([0.16, 0.21])
    can = footprint(CATALOG["tomato_soup_can"], 0.3, lie=False)
    assert np.linalg.norm(can, axis=1) == pytest.approx(0.033)
    marker = footprint(CATALOG["large_marker"], 0.0, lie=True)  # lying: its length along y
    assert np.ptp(marker, axis=0) == pytest.approx([0.018, 0.12])
    turned = footprint(CATALOG["cracker_box"], math.pi / 2, lie=False)
    assert np.ptp(turned, axis=0) == pytest.approx([0.06, 0.16])


def test_overlap_is_the_separating_axis_test():
    square = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float)
    assert overlap(square, square + [1.5, 0.5])
    assert not overlap(square, square + [2.1, 0.0])
    diamond = np.array([[0, -1], [1, 0], [0, 1], [-1, 0]], float)
    assert not overlap(square, diamond + [2.9, 0.0]) and overlap(square, diamond + [1.9, 0.0])
    assert not overlap(square, diamond + [2.6, 2.6])  # their boxes overlap, the shapes do not


def test_contact_distance_puts_two_footprints_edge_to_edge():
    box = footprint(CATALOG["potted_meat_can"], 0.0, lie=False)  # 10 x 5 cm
    can = footprint(CATALOG["tomato_soup_can"], 0.0, lie=False)  # radius 3.3 cm
    dx = contact_distance(box, can, np.array([1.0, 0.0]))
    assert dx == pytest.approx(0.05 + 0.033, abs=2e-4)
    assert contact_distance(box, can, np.array([0.0, 1.0])) == pytest.approx(0.025 + 0.033, abs=2e-4)
    assert not overlap(box, can + [dx, 0.0]) and overlap(box, can + [dx - 0.002, 0.0])


def test_a_small_product_fits_on_a_boxs_top_and_a_large_one_does_not():
    spam = footprint(CATALOG["potted_meat_can"], 0.4, lie=False)
    assert fits_on_top(spam, footprint(CATALOG["tomato_soup_can"], 0.0, lie=False))  # as on the UOC table
    assert not fits_on_top(spam, footprint(CATALOG["master_chef_can"], 0.0, lie=False))
    assert fits_on_top(footprint(CATALOG["cracker_box"], 0.0, lie=True), footprint(CATALOG["mug"], 0.0, lie=False))


def test_crowded_scenes_put_objects_in_contact_and_on_boxes_and_leave_the_default_alone():
    with SceneRenderer() as r:
        apart = r.render(5, n_objects=(4, 8))
        again = r.render(5, n_objects=(4, 8), layout="apart")
        crowded = [r.render(seed, layout="crowded") for seed in (4, 5)]  # 4-8 objects unless told
        with pytest.raises(ValueError, match="layout must be one of"):
            r.render(5, layout="heaped")
    assert np.array_equal(apart.depth, again.depth) and np.array_equal(apart.mask, again.mask)
    k3 = np.ones((3, 3), np.uint8)

    def touching_pairs(scene):
        ids = [o["instance"] for o in scene.meta["objects"]]
        grown = {i: cv2.dilate((scene.mask == i).view(np.uint8), k3).view(bool) for i in ids}
        return sum(int((grown[a] & (scene.mask == b)).any()) for a in ids for b in ids if a < b)
    assert sum(touching_pairs(s) for s in crowded) > 2 * sum(touching_pairs(s) for s in (apart,))
    on = [(o, s) for s in crowded for o in s.meta["objects"] if "resting_on" in o]
    assert on, "seeds 4 and 5 stand a product on a box"
    for o, s in on:  # the box below may be hidden from view, and then has no entry
        for below in (b for b in s.meta["objects"] if b["instance"] == o["resting_on"]):
            assert below["class_name"] in CATALOG and CATALOG[below["class_name"]].parts[0].shape == "box"


def test_a_distractor_is_placed_by_its_drawn_size():
    from robot_classify.sim.scene_render import Distractor

    assert Distractor(1100 + 3, (0.08, 0.05), (1, 1, 1, 1)).radius == 0.08  # a bowl: its rim
    assert Distractor(1000 + 2, (1.2,), (1, 1, 1, 1)).radius == pytest.approx(0.054)  # a mug scaled 1.2
    assert Distractor(17, (0.1,), (1, 1, 1, 1)).radius == pytest.approx(0.06)  # a random shape
