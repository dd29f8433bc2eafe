"""runtime.detections: the values that go into vision_msgs' Detection2D/3D and LabelInfo, without ROS."""
import json
from pathlib import Path
from types import SimpleNamespace as NS

import numpy as np
import pytest

from robot_classify.runtime.camera import Intrinsics, surface_extent
from robot_classify.runtime.detections import (Hypothesis, detections_2d, detections_3d,
                                               frame_labels_from_detection_2d_array, label_info)
from robot_classify.runtime.patches import SegmentationParams, extract_objects
from robot_classify.runtime.results import FrameLabels, ObjectResult


def frame() -> FrameLabels:
    mug = ObjectResult(instance=4, label="mug", score=0.75, top_k=(("mug", 0.75), ("bowl", 0.2)),
                       bbox=(10, 20, 31, 40), centroid=(0.1, -0.2, 0.9), extent=(0.08, 0.1, 0.03))
    unsure = ObjectResult(instance=7, label="unknown", score=0.4, top_k=(("bowl", 0.4), ("mug", 0.35)),
                          bbox=(100, 50, 20, 10), centroid=None)
    flat = ObjectResult(instance=9, label="bowl", score=0.9, top_k=(("bowl", 0.9),), bbox=(0, 0, 5, 5),
                        centroid=(0.0, 0.0, 1.0))  # a centroid but no extent (ground truth): size 0
    return FrameLabels((1_700_000_000, 5), "camera_color_optical_frame", "m", "s", (mug, unsure, flat))


def test_2d_detection_has_every_object_in_order_with_its_top_k_centre_and_size():
    d = detections_2d(frame())
    assert [x.id for x in d] == ["4", "7", "9"]
    assert d[0].results == (Hypothesis("mug", 0.75), Hypothesis("bowl", 0.2))
    assert d[0].center == (25.5, 40.0) and d[0].size == (31.0, 40.0)
    # unknown objects keep their top-k: the consumer applies its own threshold
    assert [h.class_id for h in d[1].results] == ["bowl", "mug"] and d[1].results[0].score == 0.4


def test_3d_detection_leaves_out_objects_without_depth_and_counts_them():
    d, left_out = detections_3d(frame())
    assert left_out == 1 and [x.id for x in d] == ["4", "9"]
    assert d[0].center == (0.1, -0.2, 0.9) and d[0].size == (0.08, 0.1, 0.03)
    assert all(h.position == (0.1, -0.2, 0.9) for h in d[0].results)
    assert [(h.class_id, h.score) for h in d[0].results] == [("mug", 0.75), ("bowl", 0.2)]
    assert d[1].size == (0.0, 0.0, 0.0)


def test_label_info_maps_index_to_class_name_with_the_threshold_in_force():
    info = label_info(["bowl", "mug", "large_marker"], 0.6)
    assert info.class_map == ((0, "bowl"), (1, "mug"), (2, "large_marker")) and info.threshold == 0.6
    with pytest.raises(ValueError, match="uint16"):
        label_info([str(i) for i in range(65535)], 0.5)


def _as_msg(labels: FrameLabels) -> NS:
    """A Detection2DArray-shaped object built from the 2D fields (what rosbags deserialises)."""
    dets = [NS(id=d.id, results=[NS(hypothesis=NS(class_id=h.class_id, score=h.score)) for h in d.results],
               bbox=NS(center=NS(position=NS(x=d.center[0], y=d.center[1]), theta=0.0), size_x=d.size[0],
                       size_y=d.size[1])) for d in detections_2d(labels)]
    return NS(header=NS(stamp=NS(sec=labels.stamp[0], nanosec=labels.stamp[1]), frame_id=labels.frame_id),
              detections=dets)


def test_a_detection_2d_array_reads_back_as_the_same_boxes_labels_and_top_k():
    src = frame()
    back = frame_labels_from_detection_2d_array(_as_msg(src), "recorded")
    assert back.stamp == src.stamp and back.frame_id == src.frame_id and back.model_name == "recorded"
    assert [o.bbox for o in back.objects] == [o.bbox for o in src.objects]
    assert [o.instance for o in back.objects] == [4, 7, 9]
    # the label is the best hypothesis: a recorded "unknown" comes back as its best guess
    assert [o.label for o in back.objects] == ["mug", "bowl", "bowl"]
    assert back.objects[0].top_k == (("mug", 0.75), ("bowl", 0.2))


def test_detection_without_hypotheses_or_numeric_id_reads_as_unknown_at_its_position():
    msg = _as_msg(frame())
    msg.detections[1].results, msg.detections[1].id = [], "track-a"
    back = frame_labels_from_detection_2d_array(msg)
    assert back.objects[1].label == "unknown" and back.objects[1].score == 0.0 and back.objects[1].instance == 1
    with pytest.raises(ValueError, match="Detection2DArray"):
        frame_labels_from_detection_2d_array(NS(header=msg.header))


def test_extent_is_the_2nd_to_98th_percentile_so_stray_points_do_not_stretch_it():
    rng = np.random.default_rng(0)
    pts = np.column_stack([rng.uniform(-0.05, 0.05, 1000), rng.uniform(0.0, 0.2, 1000), rng.uniform(1.0, 1.02, 1000)])
    pts[:5] = (3.0, 3.0, 3.0)  # 0.5 % bled onto the far background
    size = surface_extent(pts)
    np.testing.assert_allclose(size, (0.1, 0.2, 0.02), rtol=0.06)
    assert surface_extent(np.zeros((0, 3))) is None


def test_extraction_carries_the_extent_of_a_box_on_a_table_into_the_json():
    h, w, K = 240, 320, Intrinsics(300.0, 300.0, 160.0, 120.0)
    depth = np.full((h, w), 1000, np.uint16)
    color = np.full((h, w, 3), 90, np.uint8)
    depth[100:160, 130:190], color[100:160, 130:190] = 950, (200, 40, 40)  # 60 px at 0.95 m: 0.19 m wide
    ex = extract_objects(color, depth, K, SegmentationParams(min_area=50))
    assert len(ex.objects) == 1
    size = ex.objects[0].extent
    np.testing.assert_allclose(size[:2], 59 * 0.95 / 300, rtol=0.05)  # pixel centres 0..59 apart
    assert size[2] < 0.005  # a flat front face: no depth range
    obj = ObjectResult(0, "mug", 1.0, (), (130, 100, 60, 60), tuple(ex.objects[0].centroid),
                       extent=tuple(float(v) for v in size))
    doc = obj.to_doc()
    assert doc["extent"] == dict(zip("xyz", obj.extent)) and ObjectResult.from_doc(doc, 0).extent == obj.extent
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((Path(__file__).parents[1] / "config" / "object_labels.schema.json").read_text())
    frame_doc = FrameLabels((1, 2), "cam", "m", "s", (obj,)).to_doc()
    jsonschema.validate(frame_doc, schema)  # the key added within version 1
    frame_doc["objects"][0]["extent"]["z"] = -0.1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(frame_doc, schema)


def test_an_object_without_alternatives_is_unknown_at_0_and_a_late_frames_untracked_object_has_no_id():
    """Found in review: no class above 0 left top_k empty (results[0] must exist), and an object of a
    late frame that matched no track took its index as id, which could read as a track's."""
    from robot_classify.runtime.results import ObjectResult

    o = ObjectResult(3, "unknown", 0.0, (), (10, 10, 20, 20), (0.0, 0.0, 1.0), 100)
    labels = FrameLabels((1, 0), "cam", "m", "", (o,))
    (d,) = detections_2d(labels)
    assert [(h.class_id, h.score) for h in d.results] == [("unknown", 0.0)] and d.id == "3"
    assert detections_2d(labels, tracking=True)[0].id == "" and detections_3d(labels, tracking=True)[0][0].id == ""
