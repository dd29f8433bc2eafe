"""draft-labels: the node's segments as a BOP scene that import-dataset reads back, corrected by hand."""
import json

import cv2
import numpy as np
import pytest

from robot_classify import cli
from robot_classify.data.frames import ClassMap
from robot_classify.data.import_dataset import import_dataset
from robot_classify.evaluation.draft_labels import CLASS_MAP, draft_labels, object_id
from robot_classify.evaluation.replay_eval import replay_eval
from robot_classify.learn.model_io import save_model
from test_replay_eval import TOPICS, tiny  # noqa: F401  (the hand-counted bag and its model)


def _class_map(path):
    import yaml

    return ClassMap(yaml.safe_load(path.read_text()))


def test_a_draft_imports_back_as_the_nodes_own_answers_and_an_edit_flows_through(tiny, tmp_path):
    bag, model = tiny
    out = tmp_path / "draft"
    counts = draft_labels(bag, model, out, TOPICS, quiet=True)
    # Frames A (red, blue), B (red), C (blue): 4 segments, each named by the two-class model.
    assert counts == {"frames": 3, "objects": 4, "named": 4, "skipped": 0}
    text = (out / CLASS_MAP).read_text()
    assert f"{object_id(0, 0)}: " in text and f"{object_id(2, 0)}: " in text
    imported = tmp_path / "bag"
    import_dataset(out, imported, class_map=_class_map(out / CLASS_MAP))
    m = replay_eval(imported, model, tmp_path / "r1", TOPICS, quiet=True, report=False)
    assert m["object_accuracy"] == 1.0 and m["detection_recall"] == 1.0 and m["named"]["precision"] == 1.0
    # Frame B's red box is, by the hand count of test_replay_eval, a blue_box: one line corrected.
    line = next(ln for ln in text.splitlines() if ln.startswith(f"{object_id(1, 0)}:"))
    assert line.split()[1] == "red_box"
    (out / CLASS_MAP).write_text(text.replace(line, f"{object_id(1, 0)}: blue_box"))
    m = replay_eval(tmp_path / "bag", model, tmp_path / "r2", TOPICS, quiet=True, report=False)  # unchanged bag
    assert m["object_accuracy"] == 1.0
    import_dataset(out, tmp_path / "bag2", class_map=_class_map(out / CLASS_MAP))
    m = replay_eval(tmp_path / "bag2", model, tmp_path / "r3", TOPICS, quiet=True, report=False)
    assert m["object_accuracy"] == pytest.approx(3 / 4)


def test_the_draft_holds_the_nodes_masks_depth_and_camera(tiny, tmp_path):
    bag, model = tiny
    draft_labels(bag, model, tmp_path / "d", TOPICS, quiet=True)
    scene = tmp_path / "d" / "000000"
    mask = cv2.imread(str(scene / "mask_visib" / "000000_000000.png"), cv2.IMREAD_UNCHANGED)
    assert mask.dtype == np.uint8 and (mask > 0).sum() == 3600  # a 60x60 box
    depth = cv2.imread(str(scene / "depth" / "000000.png"), cv2.IMREAD_UNCHANGED)
    assert depth.dtype == np.uint16 and set(np.unique(depth)) == {900, 1000}  # millimetres, depth_scale 1
    cam = json.loads((scene / "scene_camera.json").read_text())
    assert cam["0"]["cam_K"][0] == 615.0 and cam["0"]["depth_scale"] == 1.0
    info = json.loads((scene / "scene_gt_info.json").read_text())
    assert sorted(o["bbox_visib"][0] for o in info["0"]) == [100, 300]
    assert (tmp_path / "d" / "overlays" / "000000.png").stat().st_size > 1000


def test_every_and_max_frames_pick_frames(tiny, tmp_path):
    bag, model = tiny
    assert draft_labels(bag, model, tmp_path / "d", TOPICS, every=2, quiet=True)["frames"] == 2  # A, C
    assert draft_labels(bag, model, tmp_path / "e", TOPICS, max_frames=1, quiet=True)["frames"] == 1


def test_an_existing_folder_is_refused_and_a_failed_draft_leaves_nothing(tiny, tmp_path):
    bag, model = tiny
    (tmp_path / "taken").mkdir()
    with pytest.raises(ValueError, match="exists"):
        draft_labels(bag, model, tmp_path / "taken", TOPICS, quiet=True)
    with pytest.raises(Exception, match="topic"):
        draft_labels(bag, model, tmp_path / "new", ("/no/color", "/no/depth", "/no/info"), quiet=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_cli_prints_the_next_step(tiny, tmp_path, capsys):
    bag, model = tiny
    save_model(model, tmp_path / "m.safetensors")
    assert cli.main(["draft-labels", "--bag", str(bag), "--model", str(tmp_path / "m.safetensors"),
                     "--out", str(tmp_path / "d"), "--quiet", "--topics", ",".join(TOPICS)]) == 0
    out = capsys.readouterr().out
    assert "4 segments in 3 frames" in out and f"--class-map {tmp_path / 'd' / CLASS_MAP}" in out
