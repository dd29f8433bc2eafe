"""Ground truth recorded as vision_msgs/Detection2DArray in a bag (replay-eval, bag-to-dataset).

rosbags reads the type from the definition the recorder stored in the bag. To record such a bag
here the test needs vision_msgs' own definitions, so it runs where vision_msgs is installed
(its share/vision_msgs/msg) and skips otherwise; the conversion itself is tested without it
(test_detections.py).
"""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from robot_classify.data.bags import BagError, COLOR_TOPIC, DEPTH_TOPIC, GT_TOPIC, INFO_TOPIC, read_ground_truth, \
    write_bag
from robot_classify.evaluation.replay_eval import bag_to_dataset
from robot_classify.learn.features import FeaturePipeline
from robot_classify.learn.knn import KNNClassifier
from robot_classify.learn.model import ClassifierModel
from robot_classify.runtime.camera import Intrinsics
from robot_classify.runtime.detections import detections_2d
from robot_classify.runtime.patches import extract_objects
from robot_classify.runtime.results import FrameLabels
from robot_classify.sim.scene_render import RenderedScene

K = {"fx": 615.0, "fy": 615.0, "cx": 320.0, "cy": 240.0}
TOPICS = (COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC)
DETECTIONS = "/detector/detections"


def vision_msgs_definitions() -> Path | None:
    """share/vision_msgs/msg of an installed vision_msgs (found without importing it)."""
    spec = importlib.util.find_spec("vision_msgs")
    if spec is None or spec.origin is None:
        return None
    for parent in Path(spec.origin).parents:
        if (parent / "share" / "vision_msgs" / "msg" / "Detection2DArray.msg").is_file():
            return parent / "share" / "vision_msgs" / "msg"
    return None


def scene(boxes, truth) -> RenderedScene:
    """60x60 px boxes at 0.9 m over a table at 1 m; truth: (label, x, y)."""
    depth = np.full((480, 640), 1000, np.uint16)
    color = np.full((480, 640, 3), 110, np.uint8)
    for x, y, rgb in boxes:
        depth[y:y + 60, x:x + 60], color[y:y + 60, x:x + 60] = 900, rgb
    objects = [{"instance": i + 1, "class_name": lab, "visible_fraction": 1.0, "pixels": 3600,
                "bbox": {"x_offset": x, "y_offset": y, "width": 60, "height": 60}, "centroid": None}
               for i, (lab, x, y) in enumerate(truth)]
    return RenderedScene(color, depth, np.zeros((480, 640), np.uint16), {"intrinsics": K, "objects": objects})


RED, BLUE = (220, 20, 20), (20, 20, 220)


@pytest.fixture(scope="module")
def json_bag(tmp_path_factory):
    a = scene([(100, 100, RED), (300, 100, BLUE)], [("red_box", 100, 100), ("blue_box", 300, 100)])
    b = scene([(100, 300, RED)], [("blue_box", 100, 300)])
    c = scene([(300, 300, BLUE)], [("blue_box", 300, 300)])
    ex = extract_objects(a.color, a.depth, Intrinsics(**K))
    crops = ex.patches[np.argsort([o.bbox[0] for o in ex.objects])]
    model = ClassifierModel(FeaturePipeline("pixels", center=False), KNNClassifier(1, "l2", device="cpu"),
                            ["red_box", "blue_box"]).fit(crops, np.array([0, 1]))
    return write_bag(tmp_path_factory.mktemp("bag") / "json_gt", [a, b, c]), model


def test_ground_truth_topic_of_another_type_is_a_clear_error(json_bag, tmp_path, capsys):
    with pytest.raises(BagError, match="is sensor_msgs/msg/CameraInfo; ground truth must be one of"):
        read_ground_truth(json_bag[0], topic=INFO_TOPIC)
    from robot_classify import cli
    from robot_classify.learn.model_io import save_model

    model = save_model(json_bag[1], tmp_path / "tiny.safetensors")  # loads in milliseconds
    for argv in (["bag-to-dataset", "--out", str(tmp_path / "ds")], ["replay-eval", "--report", str(tmp_path / "r")]):
        assert cli.main([*argv, "--bag", str(json_bag[0]), "--model", str(model), "--quiet",
                         "--ground-truth-topic", INFO_TOPIC]) == 2
        err = capsys.readouterr().err
        assert "is sensor_msgs/msg/CameraInfo; ground truth must be one of std_msgs/msg/String, " \
               "vision_msgs/msg/Detection2DArray" in err, err
    assert not (tmp_path / "ds").exists()


def test_bag_to_dataset_warns_when_its_test_split_lacks_a_class(json_bag, tmp_path, capsys):
    """Found from outside: --split-by-time 0.67 on a real bag left test/ without any class object,
    and `evaluate` then said only "accuracy n/a"."""
    from robot_classify import cli
    from robot_classify.learn.model_io import save_model

    model = save_model(json_bag[1], tmp_path / "tiny.safetensors")
    assert cli.main(["bag-to-dataset", "--bag", str(json_bag[0]), "--model", str(model), "--quiet",
                     "--out", str(tmp_path / "ds"), "--split-by-time", "0.5"]) == 0
    out, err = capsys.readouterr()
    assert "test/blue_box: 2" in out
    assert "warning: test/ holds no crop of red_box, which train/ has: `evaluate` cannot score them on this split; " \
           "its frames come last in the bag (--split-by-time 0.5)" in err


def _copy_with_detections(src: Path, dst: Path, definitions: Path) -> None:
    """The bag with its JSON ground truth re-recorded as Detection2DArray (and the JSON dropped)."""
    from rosbags.highlevel import AnyReader
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    ts = get_typestore(Stores.ROS2_JAZZY)
    ts.register({k: v for f in definitions.glob("*.msg")
                 for k, v in get_types_from_msg(f.read_text(), f"vision_msgs/msg/{f.stem}").items()})
    T = ts.types
    with AnyReader([src], default_typestore=ts) as reader, \
            Writer(dst, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conns = {}
        for c in reader.connections:
            if c.topic == GT_TOPIC:
                conns[c.id] = writer.add_connection(DETECTIONS, "vision_msgs/msg/Detection2DArray", typestore=ts)
            else:
                conns[c.id] = writer.add_connection(c.topic, c.msgtype, typestore=ts)
        for c, t, raw in reader.messages():
            if c.topic != GT_TOPIC:
                writer.write(conns[c.id], t, raw)
                continue
            labels = FrameLabels.from_doc(json.loads(reader.deserialize(raw, c.msgtype).data))
            Time, Header = T["builtin_interfaces/msg/Time"], T["std_msgs/msg/Header"]
            header = Header(stamp=Time(sec=labels.stamp[0], nanosec=labels.stamp[1]), frame_id=labels.frame_id)
            Pose = T["geometry_msgs/msg/Pose"]
            no_pose = T["geometry_msgs/msg/PoseWithCovariance"](
                pose=Pose(position=T["geometry_msgs/msg/Point"](x=0.0, y=0.0, z=0.0),
                          orientation=T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0)),
                covariance=np.zeros(36))
            dets = [T["vision_msgs/msg/Detection2D"](
                header=header, id=d.id, results=[T["vision_msgs/msg/ObjectHypothesisWithPose"](
                    hypothesis=T["vision_msgs/msg/ObjectHypothesis"](class_id=h.class_id, score=h.score),
                    pose=no_pose) for h in d.results],
                bbox=T["vision_msgs/msg/BoundingBox2D"](
                    center=T["vision_msgs/msg/Pose2D"](position=T["vision_msgs/msg/Point2D"](
                        x=d.center[0], y=d.center[1]), theta=0.0), size_x=d.size[0], size_y=d.size[1]))
                for d in detections_2d(labels)]
            msg = T["vision_msgs/msg/Detection2DArray"](header=header, detections=dets)
            writer.write(conns[c.id], t, ts.serialize_cdr(msg, "vision_msgs/msg/Detection2DArray"))


def test_bag_to_dataset_reads_ground_truth_recorded_as_detection_2d_array(json_bag, tmp_path):
    definitions = vision_msgs_definitions()
    if definitions is None:
        pytest.skip("vision_msgs is not installed: no message definitions to record a Detection2DArray bag with "
                    "(reading needs none: the bag carries them)")
    src, model = json_bag
    dst = tmp_path / "vision_gt"
    _copy_with_detections(src, dst, definitions)
    # read back with the stock Jazzy typestore: the type comes from the bag itself
    want, got = read_ground_truth(src), read_ground_truth(dst, topic=DETECTIONS)
    assert sorted(got) == sorted(want)
    for stamp, truth in want.items():
        assert [(o.label, o.bbox, o.instance) for o in got[stamp].objects] == \
               [(o.label, o.bbox, o.instance) for o in truth.objects]
    assert read_ground_truth(dst) == {}  # the JSON topic is gone
    from_json = bag_to_dataset(src, model, tmp_path / "a", TOPICS, split_by_time=0.5, quiet=True)
    from_vision = bag_to_dataset(dst, model, tmp_path / "b", TOPICS, split_by_time=0.5, quiet=True,
                                 gt_topic=DETECTIONS)
    assert from_vision == from_json == {"train/red_box": 1, "train/blue_box": 1, "test/blue_box": 2}
