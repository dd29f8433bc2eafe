"""draft-labels: the node's segments as BOP scenes that import-dataset reads back, corrected by hand."""
import json
import shutil

import cv2
import numpy as np
import pytest

from robot_classify import cli
from robot_classify.data.bags import BagError
from robot_classify.data.frames import CLASS_MAP, DatasetError, load_class_map
from robot_classify.data.import_dataset import import_dataset
from robot_classify.evaluation import draft_labels as draft_module
from robot_classify.evaluation.draft_labels import draft_labels, object_id
from robot_classify.evaluation.replay_eval import replay_eval
from robot_classify.learn.model_io import save_model
from robot_classify.runtime.frame_processor import FrameProcessor
from test_replay_eval import TOPICS, tiny  # noqa: F401  (the hand-counted bag and its model)


def _line(text, oid):
    return next(ln for ln in text.splitlines() if ln.startswith(f"{oid}:"))


def test_a_draft_imports_back_as_the_nodes_own_answers_and_edits_flow_through(tiny, tmp_path):
    bag, model = tiny
    out = tmp_path / "draft"
    counts = draft_labels([bag], model, out, TOPICS, quiet=True)
    # Frames A (red, blue), B (red), C (blue): 4 segments, each named by the two-class model.
    assert counts == {"frames": 3, "objects": 4, "named": 4, "skipped": {}}
    text = (out / CLASS_MAP).read_text()
    import_dataset(out, tmp_path / "bag", class_map=load_class_map(out / CLASS_MAP))
    m = replay_eval(tmp_path / "bag", model, tmp_path / "r1", TOPICS, quiet=True, report=False)
    assert m["object_accuracy"] == 1.0 and m["detection_recall"] == 1.0 and m["named"]["precision"] == 1.0
    # Frame B's red box is, by the hand count of test_replay_eval, a blue_box; frame C's segment is no object.
    b, c = object_id(0, 1, 0), object_id(0, 2, 0)
    assert _line(text, b).split()[1] == "red_box" and "node: red_box" in _line(text, b)
    edited = text.replace(_line(text, b), f"{b}: blue_box").replace(_line(text, c), f"{c}: ignore")
    (out / CLASS_MAP).write_text(edited)
    import_dataset(out, tmp_path / "bag2", class_map=load_class_map(out / CLASS_MAP))
    m = replay_eval(tmp_path / "bag2", model, tmp_path / "r2", TOPICS, quiet=True, report=False)
    assert m["object_accuracy"] == pytest.approx(2 / 3)  # A's two right, B's wrong; C's segment is clutter now
    assert m["detection_recall"] == 1.0 and m["named"]["named"] == 4 and m["named"]["clutter_named"] == 1


def test_the_draft_holds_the_nodes_masks_depth_camera_and_model(tiny, tmp_path):
    bag, model = tiny
    draft_labels([bag], model, tmp_path / "d", TOPICS, quiet=True, made_with="(params file robot.yaml)")
    scene = tmp_path / "d" / "000000"
    mask = cv2.imread(str(scene / "mask_visib" / "000000_000000.png"), cv2.IMREAD_UNCHANGED)
    assert mask.dtype == np.uint8 and (mask > 0).sum() == 3600  # a 60x60 box
    depth = cv2.imread(str(scene / "depth" / "000000.png"), cv2.IMREAD_UNCHANGED)
    assert depth.dtype == np.uint16 and set(np.unique(depth)) == {900, 1000}  # millimetres, depth_scale 1
    cam = json.loads((scene / "scene_camera.json").read_text())
    assert cam["0"]["cam_K"][0] == 615.0 and cam["0"]["depth_scale"] == 1.0
    info = json.loads((scene / "scene_gt_info.json").read_text())
    assert sorted(o["bbox_visib"][0] for o in info["0"]) == [100, 300]
    assert (tmp_path / "d" / "overlays" / "000000_000000.png").stat().st_size > 1000
    head = (tmp_path / "d" / CLASS_MAP).read_text().splitlines()[0]
    assert "params file robot.yaml" in head and str(model.meta.get("name", "model")) in head


def copied(bag, tmp_path):
    """A second bag with the same frames (one bag given twice is refused)."""
    shutil.copytree(bag, tmp_path / "copy")
    return tmp_path / "copy"


def test_every_skips_frames_without_processing_them_and_max_frames_is_per_bag(tiny, tmp_path, monkeypatch):
    bag, model = tiny
    calls = []
    real = FrameProcessor.process_messages
    monkeypatch.setattr(FrameProcessor, "process_messages", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    assert draft_labels([bag], model, tmp_path / "d", TOPICS, every=2, quiet=True)["frames"] == 2  # A, C
    assert len(calls) == 2
    counts = draft_labels([bag, copied(bag, tmp_path)], model, tmp_path / "e", TOPICS, max_frames=1, quiet=True)
    assert counts["frames"] == 2 and sorted(p.name for p in (tmp_path / "e").iterdir()) == [
        "000000", "000001", CLASS_MAP, "overlays"]


def test_two_bags_give_two_scenes_with_ids_unique_over_both(tiny, tmp_path):
    bag, model = tiny
    draft_labels([bag, copied(bag, tmp_path)], model, tmp_path / "d", TOPICS, quiet=True)
    ids = [o["obj_id"] for s in ("000000", "000001")
           for objs in json.loads((tmp_path / "d" / s / "scene_gt.json").read_text()).values() for o in objs]
    assert len(ids) == len(set(ids)) == 8 and object_id(1, 0, 0) in ids
    n = import_dataset(tmp_path / "d", tmp_path / "bag", class_map=load_class_map(tmp_path / "d" / CLASS_MAP))
    assert n == 6


def test_unusable_input_is_refused_with_its_reason_and_leaves_nothing(tiny, tmp_path):
    bag, model = tiny
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("")
    with pytest.raises(ValueError, match="not an empty folder"):
        draft_labels([bag], model, tmp_path / "taken", TOPICS, quiet=True)
    with pytest.raises(BagError, match="missing topic"):
        draft_labels([bag], model, tmp_path / "new", ("/no/color", "/no/depth", TOPICS[2]), quiet=True)
    with pytest.raises(BagError, match="missing topic.s. /wrong/info"):  # the reason, not "0 frames"
        draft_labels([bag], model, tmp_path / "new", (*TOPICS[:2], "/wrong/info"), quiet=True)
    params = {"segmentation.mode": "mask"}  # a camera bag has no mask topic: every frame skipped, and why
    with pytest.raises(ValueError, match=r"no frame could be processed \(no mask: 3\)"):
        draft_labels([bag], model, tmp_path / "new", TOPICS, params, quiet=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
    (tmp_path / "empty").mkdir()  # an empty folder is taken
    assert draft_labels([bag], model, tmp_path / "empty", TOPICS, max_frames=1, quiet=True)["frames"] == 1


def test_replay_eval_names_a_missing_camera_info_topic(tiny, tmp_path):
    bag, model = tiny
    with pytest.raises(BagError, match="missing topic.s. /wrong/info"):
        replay_eval(bag, model, tmp_path / "r", (*TOPICS[:2], "/wrong/info"), quiet=True, report=False)


def test_unknown_answers_say_why(tiny, tmp_path, monkeypatch):
    from robot_classify.runtime.results import ObjectResult

    def answer(**kw):
        return ObjectResult(0, kw.get("label", "unknown"), kw.get("score", 0.0), kw.get("top_k", ()), (0, 0, 1, 1),
                            None, ruled_out=kw.get("ruled_out", ()), unknown_reason=kw.get("reason"))
    assert draft_module._answer(answer(label="mug", score=0.9, top_k=(("mug", 0.9),))) == "mug 0.90"
    assert "unknown examples are nearest" in draft_module._answer(answer(reason="unknown_examples"))
    # a segment no class fits is not classified (0.9.18): nothing scored, every class ruled out
    assert "no class's product has this size" in draft_module._answer(answer(ruled_out=("mug",), reason="size_or_pose"))
    assert "mug 0.70 ruled out by size" in draft_module._answer(answer(score=0.7, top_k=(("mug", 0.7),),
                                                                      ruled_out=("mug",)))
    assert "below min_score" in draft_module._answer(answer(score=0.2, top_k=(("mug", 0.2),)))


def test_cli_drafts_and_import_finds_the_drafts_class_map(tiny, tmp_path, capsys):
    bag, model = tiny
    save_model(model, tmp_path / "m.safetensors")
    assert cli.main(["draft-labels", "--bag", str(bag), "--model", str(tmp_path / "m.safetensors"),
                     "--out", str(tmp_path / "d"), "--quiet", "--topics", ",".join(TOPICS)]) == 0
    out = capsys.readouterr().out
    assert "4 segments in 3 frames" in out and f"--class-map {tmp_path / 'd' / CLASS_MAP}" in out
    path = tmp_path / "d" / CLASS_MAP
    path.write_text(path.read_text().replace(f"{object_id(0, 0, 0)}:", "1040:"))  # a mistyped id
    assert cli.main(["import-dataset", str(tmp_path / "d"), "--out", str(tmp_path / "bag")]) == 0
    cap = capsys.readouterr()
    assert f"class map: {path} (found beside the scenes" in cap.err and "class map's id 1040" in cap.err
    assert "1 red_box" in cap.out and "1 distractor" in cap.out  # the mistyped id's object
    # one scene of the draft: its map is a folder up
    scene = next(p for p in (tmp_path / "d").iterdir() if p.is_dir() and p.name != "overlays")
    assert cli.main(["import-dataset", str(scene), "--out", str(tmp_path / "bag_scene")]) == 0
    assert f"class map: {path} (found in the folder above this scene" in capsys.readouterr().err
    # a name key matches no BOP object (they have ids only): said, not silently unused
    path.write_text(path.read_text() + "025_mugg: mug\n")
    assert cli.main(["import-dataset", str(tmp_path / "d"), "--out", str(tmp_path / "bag_n"), "--quiet"]) == 0
    assert "class map's name 025_mugg (names match YCB-Video's object names" in capsys.readouterr().err


def test_import_names_the_settings_a_draft_was_made_with(tiny, tmp_path, capsys):
    bag, model = tiny
    save_model(model, tmp_path / "m.safetensors")
    assert cli.main(["draft-labels", "--bag", str(bag), "--model", str(tmp_path / "m.safetensors"), "--scale", "1",
                     "--out", str(tmp_path / "d"), "--quiet", "--topics", ",".join(TOPICS)]) == 0
    assert load_class_map(tmp_path / "d" / CLASS_MAP).draft_settings == "--scale 1"
    capsys.readouterr()
    assert cli.main(["import-dataset", str(tmp_path / "d"), "--out", str(tmp_path / "bag"), "--quiet"]) == 0
    assert "note: the draft was made with --scale 1: evaluate and calibrate this bag with the same" in \
        capsys.readouterr().err


def test_a_class_map_yaml_error_names_its_line(tmp_path):
    (tmp_path / "m.yaml").write_text("1000: red_box\n1001: blue_box\n1002 red_box\n1003: x\n")
    with pytest.raises(DatasetError, match="line 3"):
        load_class_map(tmp_path / "m.yaml")


def test_replay_eval_names_ground_truth_classes_the_model_lacks(tiny, tmp_path, caplog):
    bag, model = tiny
    draft_labels([bag], model, tmp_path / "d", TOPICS, quiet=True)
    path = tmp_path / "d" / CLASS_MAP
    path.write_text(path.read_text().replace(f"{object_id(0, 0, 0)}: red_box ", f"{object_id(0, 0, 0)}: red_boks "))
    import_dataset(tmp_path / "d", tmp_path / "bag", class_map=load_class_map(path))
    with caplog.at_level("WARNING", logger="robot_classify"):
        replay_eval(tmp_path / "bag", model, tmp_path / "r", TOPICS, quiet=True, report=False)
    assert "ground truth names red_boks, no class of this model" in caplog.text


def test_teach_from_a_bag_names_a_missing_camera_info_topic(tiny, tmp_path, capsys):
    bag, model = tiny
    save_model(model, tmp_path / "m.safetensors")
    code = cli.main(["teach", "--bag", str(bag), "--model", str(tmp_path / "m.safetensors"), "--label", "cup",
                     "--out", str(tmp_path / "t.safetensors"), "--topics", ",".join((*TOPICS[:2], "/wrong/info"))])
    assert code == 2 and "missing topic(s) /wrong/info" in capsys.readouterr().err  # not "the frames ended"


def test_ids_stay_unique_past_a_hundred_frames_and_a_draft_too_long_is_refused():
    assert object_id(0, 100, 0) != object_id(1, 0, 0)  # 100,000 a scene had made these equal
    assert len({object_id(s, i, k) for s in range(2) for i in (0, 99, 100, 5000) for k in (0, 19)}) == 16
    with pytest.raises(ValueError, match="at most"):
        object_id(0, draft_module.MAX_IMAGES, 0)


def test_topics_of_the_wrong_kind_and_an_out_inside_the_bag_are_refused_before_any_frame(tiny, tmp_path):
    bag, model = tiny
    gt_topic = "/ground_truth/object_labels"  # std_msgs/String, given as camera_info
    with pytest.raises(BagError, match=f"{gt_topic} is std_msgs/msg/String, not sensor_msgs/msg/CameraInfo"):
        draft_labels([bag], model, tmp_path / "d", (*TOPICS[:2], gt_topic), quiet=True)
    with pytest.raises(BagError, match=f"{gt_topic} is std_msgs/msg/String"):
        replay_eval(bag, model, tmp_path / "r", (*TOPICS[:2], gt_topic), quiet=True, report=False)
    with pytest.raises(ValueError, match="is inside .*, which this command reads"):
        draft_labels([bag], model, bag / "draft", TOPICS, quiet=True)
    assert not (bag / "draft").exists()
    with pytest.raises(ValueError, match="is given twice"):
        draft_labels([bag, bag], model, tmp_path / "draft", TOPICS, quiet=True)
    assert not (tmp_path / "draft").exists()


def test_import_flags_near_miss_names_and_another_drafts_map(tiny, tmp_path, capsys):
    bag, model = tiny
    draft_labels([bag], model, tmp_path / "d", TOPICS, quiet=True)
    draft_labels([bag], model, tmp_path / "e", TOPICS, max_frames=1, quiet=True)
    # e's map lists image 0's segments only: imported over d's three images, two have no line
    assert cli.main(["import-dataset", str(tmp_path / "d"), "--out", str(tmp_path / "b1"), "--quiet",
                     "--class-map", str(tmp_path / "e" / CLASS_MAP)]) == 0
    assert "2 objects have no line in the draft's class map" in capsys.readouterr().err
    (tmp_path / "m.yaml").write_text(f"{object_id(0, 0, 0)}: Mustard_bottle\n")
    assert cli.main(["import-dataset", str(tmp_path / "d"), "--out", str(tmp_path / "b2"), "--quiet",
                     "--class-map", str(tmp_path / "m.yaml")]) == 0
    assert "Mustard_bottle (did you mean mustard_bottle?)" in capsys.readouterr().err
    (tmp_path / "i.yaml").write_text(f"{object_id(0, 0, 0)}: Ignore\n")
    assert cli.main(["import-dataset", str(tmp_path / "d"), "--out", str(tmp_path / "b3"), "--quiet",
                     "--class-map", str(tmp_path / "i.yaml")]) == 2
    assert "write 'ignore'" in capsys.readouterr().err


def test_a_duplicate_key_is_reported_at_its_second_line(tmp_path):
    (tmp_path / "m.yaml").write_text("1000: red_box\n1001: blue_box\n1002: red_box\n1001: red_box\n")
    with pytest.raises(DatasetError, match="line 4: .*1001 is given twice"):
        load_class_map(tmp_path / "m.yaml")


def test_the_settings_a_draft_was_made_with_are_in_its_first_line(tiny, tmp_path):
    bag, model = tiny
    save_model(model, tmp_path / "m.safetensors")
    assert cli.main(["draft-labels", "--bag", str(bag), "--model", str(tmp_path / "m.safetensors"), "--scale", "1",
                     "--out", str(tmp_path / "d"), "--quiet", "--topics", ",".join(TOPICS)]) == 0
    assert "(--scale 1)" in (tmp_path / "d" / CLASS_MAP).read_text().splitlines()[0]
