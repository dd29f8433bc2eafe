"""One object on another (runtime.stacks): a can standing on a box lying flat, ray-cast as a
RealSense would see it, is two objects, and the can's pose is measured from the box's top."""
from __future__ import annotations

import numpy as np
import pytest

from robot_classify.runtime.patches import SegmentationParams, extract_objects
from robot_classify.runtime.stacks import FOOT_FRACTION, _mostly_below, rests_on, split_stack
from robot_classify.runtime.support import plane_basis

from raycast import K, scene  # noqa: E402  (beside this file)

RED, WHITE = (200, 30, 30), (230, 230, 225)


CRACKER_FLAT = ((0.0, 0.0, 0.03), (0.105, 0.08, 0.03))  # 21 x 16 cm, lying on its face: 6 cm high
SOUP_ON_TOP = (0.0, 0.0, 0.06, 0.101, 0.033)  # a soup can standing on it


def _params(**kw) -> SegmentationParams:
    """Without the crease cut: a ray-cast crease is clean and closed all round, and would part the
    stack by itself; a real sensor's is not (the soup can on the SPAM can, doc/real_frames.md)."""
    return SegmentationParams(min_area=50, max_depth=4.0, crease=0.0, **kw)


def test_a_can_standing_on_a_box_is_two_objects_measured_from_their_own_bases():
    color, depth = scene([(*CRACKER_FLAT, RED)], [(*SOUP_ON_TOP, WHITE)])
    one = extract_objects(color, depth, K, _params(split_stacks=False))
    assert len(one.objects) == 1  # depth alone: one segment, 16 cm tall
    ex = extract_objects(color, depth, K, _params())
    assert ex.rejected.get("stack split") == 1
    assert len(ex.objects) == 2
    box, can = sorted(ex.objects, key=lambda o: o.top)
    assert box.top == pytest.approx(0.06, abs=0.01)
    assert can.top == pytest.approx(0.101, abs=0.012)  # from the box's top, not the floor (0.161)
    assert can.footprint[1] == pytest.approx(0.066, abs=0.015)
    assert (can.rests_on, box.rests_on) == (box.instance, None)  # what a grasp planner takes first
    # each mask holds its own object's colour
    for obj, rgb in ((box, RED), (can, WHITE)):
        x, y, w, h = obj.bbox
        assert (color[y:y + h, x:x + w][obj.mask] == rgb).all(-1).mean() > 0.9


def test_a_soup_can_on_a_spam_can_is_two_objects_though_little_of_its_top_shows():
    """The SPAM can (10 x 6 x 8 cm, blue) under a soup can shows only its top's ends beside the
    can: a few square centimetres, under the 12 of 0.9.15, which left the two one segment on a
    real table (UOC frames 2 and 3; since 0.9.16 3 cm² will do)."""
    spam = ((0.0, 0.0, 0.04), (0.051, 0.029, 0.04), (40, 60, 160))
    color, depth = scene([spam], [(0.0, 0.0, 0.08, 0.101, 0.0335, WHITE)])
    ex = extract_objects(color, depth, K, _params())
    assert ex.rejected.get("stack split") == 1 and len(ex.objects) == 2
    box, can = sorted(ex.objects, key=lambda o: o.top)
    assert box.top == pytest.approx(0.08, abs=0.01)
    assert can.rests_on == box.instance


def test_a_stack_of_one_colour_stays_one_object():
    """A step within one product (a drill's battery below its body) shows its colours on both
    sides; so does a stack of two things of one colour, which depth and colour cannot part."""
    color, depth = scene([(*CRACKER_FLAT, RED)], [(*SOUP_ON_TOP, RED)])
    ex = extract_objects(color, depth, K, _params())
    assert len(ex.objects) == 1 and "stack split" not in ex.rejected


@pytest.mark.parametrize("scale", [1, 2])
def test_a_box_or_a_can_alone_shows_no_step(scale):
    for boxes, cans in (([(*CRACKER_FLAT, RED)], []), ([], [(0.0, 0.0, 0.0, 0.101, 0.033, WHITE)]),
                        ([((0.0, 0.0, 0.0875), (0.0445, 0.019, 0.0875), RED)], [])):
        color, depth = scene(boxes, cans)
        ex = extract_objects(color, depth, K, _params(scale=scale))
        assert len(ex.objects) == 1 and "stack split" not in ex.rejected


def test_split_stack_needs_a_flat_top_and_something_rising_from_it():
    """Unit level: a height map of a 6 cm plateau with a 10 cm tower on it is cut at 6 cm; the
    plateau alone, and a ramp with no flat level, are not."""
    z = np.full((60, 60), 0.7, np.float32)
    fx = 600.0  # a pixel spans ~1.2 mm: the 40 x 40 plateau is ~23 cm^2
    mask = np.zeros((60, 60), bool)
    mask[10:50, 10:50] = True
    height = np.where(mask, 0.06, 0.0).astype(np.float32)

    def cut(h: np.ndarray):
        return split_stack(mask, h, z, fx, 20)
    assert cut(height) is None  # nothing rises from it
    height[20:32, 20:32] = 0.16
    lower, upper, level, top = cut(height)
    assert level == pytest.approx(0.06, abs=0.003)
    assert upper[20:32, 20:32].all() and not (upper & ~mask).any()
    assert not (lower & upper).any() and lower.sum() > 1000 and top.sum() > 500
    ramp = np.where(mask, np.linspace(0.0, 0.2, 60, dtype=np.float32)[:, None], 0.0).astype(np.float32)
    assert cut(ramp) is None  # a slope is no top to stand on


def test_an_object_behind_a_top_rests_on_the_support_not_on_that_top():
    """`rests_on`: a can over the box's top rests on it; one standing behind it, its foot hidden
    by the box, stands on the table."""
    basis = plane_basis(np.array([0.0, 0.0, 1.0, 0.0]))
    g = np.stack(np.meshgrid(np.linspace(-0.1, 0.1, 20), np.linspace(-0.08, 0.08, 16)), -1).reshape(-1, 2)
    top = np.column_stack([g, np.full(len(g), 0.06)])
    ring = np.linspace(0, 2 * np.pi, 60, endpoint=False)
    can = np.column_stack([0.033 * np.cos(ring), 0.033 * np.sin(ring), np.full(60, 0.12)])
    assert rests_on(top, can, basis)
    assert not rests_on(top, can + [0.0, 0.08 + 0.033 + 0.005, 0.0], basis)  # just beyond the far edge


def test_a_can_cut_from_the_box_at_a_crease_is_measured_from_the_box_top():
    """With the crease cut on (the default), the ray-cast stack parts at its clean crease before
    any step is looked for; the can's foot floats 6 cm up, over the box's top: its base."""
    color, depth = scene([(*CRACKER_FLAT, RED)], [(*SOUP_ON_TOP, WHITE)])
    ex = extract_objects(color, depth, K, SegmentationParams(min_area=50, max_depth=4.0))
    assert len(ex.objects) == 2 and "stack split" not in ex.rejected
    box, can = sorted(ex.objects, key=lambda o: o.top)
    assert box.top == pytest.approx(0.06, abs=0.01)
    assert can.top == pytest.approx(0.101, abs=0.012)
    assert (can.rests_on, box.rests_on) == (box.instance, None)
    off = extract_objects(color, depth, K, SegmentationParams(min_area=50, max_depth=4.0, split_stacks=False))
    assert max(o.top for o in off.objects) == pytest.approx(0.161, abs=0.012)  # from the floor


@pytest.mark.parametrize("crease", [0.0, 0.15])
def test_a_can_standing_behind_a_low_box_is_measured_from_the_floor(crease):
    """Its foot is hidden by the box in front, so it floats at about the box's height; but it
    stands beyond the box's top, not on it."""
    color, depth = scene([(*CRACKER_FLAT, RED)], [(0.0, 0.08 + 0.033 + 0.003, 0.0, 0.101, 0.033, WHITE)])
    ex = extract_objects(color, depth, K, SegmentationParams(min_area=50, max_depth=4.0, crease=crease))
    assert len(ex.objects) == 2
    box, can = sorted(ex.objects, key=lambda o: o.top)
    assert box.top == pytest.approx(0.06, abs=0.01)
    assert can.top == pytest.approx(0.101, abs=0.012)
    assert can.rests_on is None and box.rests_on is None


def test_the_node_publishes_what_an_object_rests_on():
    """Through `FrameProcessor`, as the node runs it: /object_labels carries `rests_on`, the
    instance of the object below, valid against the published schema; nothing for the box."""
    import json
    from pathlib import Path

    import jsonschema

    from robot_classify.data.datasets import PatchSet
    from robot_classify.learn.training import TrainOptions, train_model
    from robot_classify.runtime.frame_processor import FrameProcessor

    color, depth = scene([(*CRACKER_FLAT, RED)], [(*SOUP_ON_TOP, WHITE)])
    patches = np.random.default_rng(0).integers(0, 255, (12, 32, 32, 3), dtype=np.uint8)
    model = train_model(PatchSet(patches, np.repeat([0, 1], 6), ["cracker_box", "tomato_soup_can"], np.arange(12) % 6),
                        TrainOptions(classifier="knn", k="1", features=["hog_color"], device="cpu", quiet=True))
    frame = FrameProcessor(model, _params()).process(color, depth, K, (1, 0), "camera").labels
    doc = frame.to_doc()
    schema = json.loads((Path(__file__).parents[1] / "config" / "object_labels.schema.json").read_text())
    jsonschema.validate(doc, schema)
    rests = {o["instance"]: o.get("rests_on") for o in doc["objects"]}
    assert len(rests) == 2 and sum(r is not None for r in rests.values()) == 1
    upper = next(i for i, r in rests.items() if r is not None)
    assert rests[upper] in rests and rests[rests[upper]] is None
    assert type(frame).from_doc(doc).objects[upper].rests_on == rests[upper]  # and read back


def test_counting_settles_a_foot_on_the_support_only_where_the_percentile_would():
    rng = np.random.default_rng(0)
    settled = 0
    for n in list(range(1, 60)) + [200, 1000]:
        for _ in range(20):
            values = rng.choice([0.0, 0.01, 0.02, 0.03, 0.05], size=n).astype(np.float32)  # ties, as heights have
            level = 0.03
            if _mostly_below(values, level):
                settled += 1
                assert np.percentile(values, FOOT_FRACTION) < level
    assert settled > 500  # most draws are settled by counting alone
