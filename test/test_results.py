"""Typed results <-> the /object_labels document, and stamps <-> nanoseconds."""
import json
from pathlib import Path

import jsonschema
import pytest

from robot_classify.runtime.results import SCHEMA, FrameLabels, ObjectResult
from robot_classify.runtime.stamps import header_to_ns, ns_to_stamp, stamp_to_ns

DOC_SCHEMA = json.loads((Path(__file__).parents[1] / "config" / "object_labels.schema.json").read_text())


def labels(warning=None):
    mug = ObjectResult(3, "mug", 0.75, (("mug", 0.75), ("large_marker", 0.25)), (10, 20, 30, 40),
                       (0.1, -0.2, 0.9), 812)
    lost = ObjectResult(4, "unknown", 0.4, (("sugar_box", 0.4),), (0, 0, 5, 6), None, 30)
    return FrameLabels((1_700_000_000, 33_333_333), "camera_color_optical_frame", "m", "ab" * 32, (mug, lost),
                       warning)


def test_document_has_the_published_keys_in_order_and_validates():
    doc = labels().to_doc()
    assert list(doc) == ["schema", "header", "model", "objects"] and doc["schema"] == SCHEMA
    assert doc["header"] == {"stamp": {"sec": 1_700_000_000, "nanosec": 33_333_333},
                             "frame_id": "camera_color_optical_frame"}
    assert doc["objects"][0] == {"instance": 3, "label": "mug", "score": 0.75,
                                 "top_k": [{"label": "mug", "score": 0.75}, {"label": "large_marker", "score": 0.25}],
                                 "bbox": {"x_offset": 10, "y_offset": 20, "width": 30, "height": 40},
                                 "centroid": {"x": 0.1, "y": -0.2, "z": 0.9}, "pixels": 812}
    assert list(doc["objects"][0]) == ["instance", "label", "score", "top_k", "bbox", "centroid", "pixels"]
    assert doc["objects"][1]["centroid"] is None
    jsonschema.validate(doc, DOC_SCHEMA)


def test_warning_is_written_only_when_there_is_one():
    assert "warning" not in labels().to_doc()
    assert labels("no support plane").to_doc()["warning"] == "no support plane"


def test_document_reads_back_into_equal_results():
    for frame in (labels(), labels("no support plane")):
        assert FrameLabels.from_doc(json.loads(json.dumps(frame.to_doc()))) == frame


def test_ground_truth_needs_only_the_stamp_and_each_objects_label_and_bbox():
    doc = {"header": {"stamp": {"sec": 1, "nanosec": 5}},
           "objects": [{"label": "mug", "bbox": {"x_offset": 1, "y_offset": 2, "width": 3, "height": 4},
                        "visible_fraction": 0.25}]}
    truth = FrameLabels.from_doc(doc)
    assert truth.stamp_ns == 1_000_000_005 and truth.frame_id == ""
    assert truth.objects == (ObjectResult(0, "mug", 1.0, (), (1, 2, 3, 4), None, None, 0.25),)
    assert truth.objects[0].to_doc()["visible_fraction"] == 0.25 and "pixels" not in truth.objects[0].to_doc()


@pytest.mark.parametrize("doc, error", [
    ([], TypeError),
    ({"schema": "robot_classify/ObjectLabels/9", "header": {"stamp": {"sec": 1, "nanosec": 0}}, "objects": []},
     ValueError),
    ({"header": {"stamp": {"sec": 1}}, "objects": []}, KeyError),
    ({"header": {"stamp": {"sec": 1, "nanosec": 0}}, "objects": [{"label": 7, "bbox": {}}]}, TypeError),
    ({"header": {"stamp": {"sec": 1, "nanosec": 0}}, "objects": [{"label": "mug", "bbox": {"x_offset": 1}}]},
     KeyError),
])
def test_from_doc_refuses_what_is_not_an_object_labels_document(doc, error):
    with pytest.raises(error):
        FrameLabels.from_doc(doc)


def test_stamps_round_trip_through_nanoseconds():
    assert stamp_to_ns(1_700_000_000, 999_999_999) == 1_700_000_000_999_999_999
    assert ns_to_stamp(1_700_000_000_999_999_999) == (1_700_000_000, 999_999_999)
    assert ns_to_stamp(1_000_000_000) == (1, 0)
    assert stamp_to_ns(**{"sec": 2, "nanosec": 7}) == 2_000_000_007  # a JSON header stamp

    class Stamp:
        sec, nanosec = 3, 4

    class Header:
        stamp = Stamp()

    assert header_to_ns(Header()) == 3_000_000_004
