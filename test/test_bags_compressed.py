"""Bags recorded with image_transport's compressed topics, as robot teams record them: written by
make-bag, found by replay-eval, bag-to-dataset and teach without being asked."""
import json

import numpy as np
import pytest

from robot_classify.data.bags import (COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC, BagError, open_reader,
                                      read_frames, resolve_image_topics, topics_of, write_bag)
from robot_classify.evaluation.replay_eval import bag_to_dataset, replay_eval
from robot_classify.learn.features import FeaturePipeline
from robot_classify.learn.knn import KNNClassifier
from robot_classify.learn.model import ClassifierModel
from robot_classify.runtime.camera import Intrinsics
from robot_classify.runtime.image_conversion import color_from_msg, depth_from_msg
from robot_classify.runtime.patches import extract_objects
from robot_classify.sim.scene_render import RenderedScene

K = {"fx": 615.0, "fy": 615.0, "cx": 320.0, "cy": 240.0}
RED, BLUE = (220, 20, 20), (20, 20, 220)
TOPICS = (COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC)


def frame(boxes) -> RenderedScene:
    """60x60 px boxes at 0.9 m on a table at 1 m, each with its ground truth."""
    depth = np.full((480, 640), 1000, np.uint16)
    color = np.full((480, 640, 3), 110, np.uint8)
    for x, y, rgb in boxes:
        depth[y:y + 60, x:x + 60] = 900
        color[y:y + 60, x:x + 60] = rgb
    objects = [{"instance": i + 1, "class_name": "red_box" if rgb == RED else "blue_box", "visible_fraction": 1.0,
                "pixels": 3600, "bbox": {"x_offset": x, "y_offset": y, "width": 60, "height": 60}, "centroid": None}
               for i, (x, y, rgb) in enumerate(boxes)]
    return RenderedScene(color, depth, np.zeros((480, 640), np.uint16), {"intrinsics": K, "objects": objects})


@pytest.fixture(scope="module")
def scenes():
    return [frame([(100, 100, RED), (300, 100, BLUE)]), frame([(100, 300, RED)]), frame([(300, 300, BLUE)])]


@pytest.fixture(scope="module")
def model(scenes):
    a = scenes[0]
    ex = extract_objects(a.color, a.depth, Intrinsics(**K))
    crops = ex.patches[np.argsort([o.bbox[0] for o in ex.objects])]
    return ClassifierModel(FeaturePipeline("pixels", center=False), KNNClassifier(1, "l2", device="cpu"),
                           ["red_box", "blue_box"]).fit(crops, np.array([0, 1]))


@pytest.fixture(scope="module")
def bags(tmp_path_factory, scenes):
    root = tmp_path_factory.mktemp("bags")
    return {"raw": write_bag(root / "raw", scenes),
            "png_rvl": write_bag(root / "png_rvl", scenes, color_format="png", depth_format="rvl"),
            "jpeg_png": write_bag(root / "jpeg_png", scenes, "sqlite3", color_format="jpeg", depth_format="png")}


def test_make_bag_writes_image_transports_compressed_topics_only(bags):
    reader = open_reader(bags["png_rvl"])
    try:
        have = topics_of(reader)
    finally:
        reader.close()
    assert have[COLOR_TOPIC + "/compressed"] == "sensor_msgs/msg/CompressedImage"
    assert have[DEPTH_TOPIC + "/compressedDepth"] == "sensor_msgs/msg/CompressedImage"
    assert COLOR_TOPIC not in have and DEPTH_TOPIC not in have


@pytest.mark.parametrize("name", ["png_rvl", "jpeg_png"])
def test_read_frames_finds_the_compressed_topics_when_raw_ones_are_absent(bags, scenes, name):
    frames = list(read_frames(bags[name]))  # the default (raw) topic names
    assert len(frames) == 3
    for f, s in zip(frames, scenes):
        assert f.color.format == ("rgb8; png compressed bgr8" if name == "png_rvl" else "rgb8; jpeg compressed bgr8")
        assert f.depth.format == ("16UC1; compressedDepth rvl" if name == "png_rvl" else "16UC1; compressedDepth png")
        np.testing.assert_array_equal(depth_from_msg(f.depth), s.depth)  # lossless either way
        color = color_from_msg(f.color)
        if name == "png_rvl":
            np.testing.assert_array_equal(color, s.color)
        else:
            assert np.abs(color.astype(int) - s.color).mean() < 2.0


def test_resolution_prefers_raw_then_compressed_then_compressed_depth_order():
    have = {"/c", "/c/compressed", "/d/compressed", "/d/compressedDepth"}
    assert resolve_image_topics(have, ("/c", "/d", "/i")) == ("/c", "/d/compressedDepth", "/i")
    assert resolve_image_topics({"/d/compressed"}, ("/c", "/d", "/i")) == ("/c", "/d/compressed", "/i")
    assert resolve_image_topics(set(), ("/c", "/d", "/i")) == ("/c", "/d", "/i")


def test_a_bag_with_neither_raw_nor_compressed_topics_names_what_it_has(bags):
    with pytest.raises(BagError, match=r"missing topic\(s\) /nope(.|\n)*compressed \[sensor_msgs/msg/CompressedImage\]"):
        list(read_frames(bags["png_rvl"], ("/nope", DEPTH_TOPIC, INFO_TOPIC)))


def test_replay_eval_on_a_lossless_compressed_bag_equals_the_raw_bag(bags, model, tmp_path):
    raw = replay_eval(bags["raw"], model, tmp_path / "raw", TOPICS, quiet=True, report=False)
    packed = replay_eval(bags["png_rvl"], model, tmp_path / "png_rvl", TOPICS, quiet=True, report=False)
    for key in ("object_accuracy", "detection_recall", "detection_precision", "per_class", "confusion"):
        assert packed[key] == raw[key], key
    assert packed["frames"]["processed"] == 3

    def docs(folder):
        return [{k: v for k, v in json.loads(line).items() if k != "diagnostics"}
                for line in (folder / "object_labels.jsonl").read_text().splitlines()]

    assert [d["objects"] for d in docs(tmp_path / "png_rvl")] == [d["objects"] for d in docs(tmp_path / "raw")]
    bag = json.loads((tmp_path / "png_rvl" / "metrics.json").read_text())["run"]["bag"]
    assert bag["color_topic"] == COLOR_TOPIC + "/compressed"
    assert bag["depth_topic"] == DEPTH_TOPIC + "/compressedDepth"


def test_replay_eval_and_bag_to_dataset_on_a_jpeg_bag(bags, model, tmp_path):
    m = replay_eval(bags["jpeg_png"], model, tmp_path / "r", TOPICS, quiet=True, report=False)
    assert m["object_accuracy"] == 1.0 and m["detection_recall"] == 1.0
    counts = bag_to_dataset(bags["jpeg_png"], model, tmp_path / "ds", TOPICS, split_by_time=0.5, quiet=True)
    assert counts == {"train/red_box": 1, "train/blue_box": 1, "test/red_box": 1, "test/blue_box": 1}


def test_teach_from_a_compressed_bag(bags, model, tmp_path):
    from robot_classify.cli import main
    from robot_classify.learn.model_io import load_model, save_model

    model_file = save_model(model, tmp_path / "m.safetensors")
    out = tmp_path / "taught.safetensors"
    code = main(["teach", "--model", str(model_file), "--device", "cpu", "--bag", str(bags["png_rvl"]),
                 "--label", "red_thing", "--views", "1", "--select", "largest", "--out", str(out), "--quiet"])
    assert code == 0  # one view: the bag's frames are other scenes, each with another largest object
    taught = load_model(out, device="cpu")
    assert "red_thing" in taught.class_names
    assert taught.meta["name"] == load_model(model_file).meta["name"] + "+taught"  # not the untaught model's name
