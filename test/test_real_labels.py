"""bench/real_labels.py keeps hand labels of real frames without the frames: a round trip on
frames this test makes in one source's layout, and a refusal when the frames differ."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import real_labels  # noqa: E402  (bench/ is no package)


def _source(root: Path, seed: int = 0) -> Path:
    """Nine frames in NVlabs/UnseenObjectClustering's `data/demo` layout."""
    rng = np.random.default_rng(seed)
    demo = root / "data" / "demo"
    demo.mkdir(parents=True)
    for i in range(9):
        cv2.imwrite(str(demo / f"{i:06d}-color.png"), rng.integers(0, 255, (48, 64, 3), np.uint8))
        cv2.imwrite(str(demo / f"{i:06d}-depth.png"), rng.integers(400, 1500, (48, 64), np.uint16))
    (demo / "camera_params.json").write_text(json.dumps({"fx": 60.0, "fy": 60.0, "x_offset": 32.0, "y_offset": 24.0}))
    return root


def _labelled(files: Path, out: Path) -> Path:
    """The BOP folder a labeller leaves: the frames, one mask per object, the class map."""
    scene = out / "000000"
    for sub in ("rgb", "depth", "mask_visib"):
        (scene / sub).mkdir(parents=True)
    cams, gt, info = {}, {}, {}
    for i in range(9):
        demo = files / "data" / "demo"
        cv2.imwrite(str(scene / "rgb" / f"{i:06d}.png"), cv2.imread(str(demo / f"{i:06d}-color.png")))
        cv2.imwrite(str(scene / "depth" / f"{i:06d}.png"), cv2.imread(str(demo / f"{i:06d}-depth.png"), cv2.IMREAD_UNCHANGED))
        mask = np.zeros((48, 64), np.uint8)
        mask[10 + i:30, 20:40] = 255
        cv2.imwrite(str(scene / "mask_visib" / f"{i:06d}_000000.png"), mask)
        cams[str(i)] = {"cam_K": [60.0, 0, 32.0, 0, 60.0, 24.0, 0, 0, 1], "depth_scale": 1.0}
        gt[str(i)] = [{"obj_id": 5}]
        info[str(i)] = [{"bbox_visib": [20, 10 + i, 20, 20 - i], "visib_fract": 1.0}]
    for name, doc in (("scene_camera", cams), ("scene_gt", gt), ("scene_gt_info", info)):
        (scene / f"{name}.json").write_text(json.dumps(doc))
    (out / "class_map.yaml").write_text("5: mustard_bottle\n")
    return out


def test_labels_come_back_beside_the_same_frames_and_not_beside_others(tmp_path):
    files = _source(tmp_path / "src")
    bop = _labelled(files, tmp_path / "labelled")
    packed = tmp_path / "uoc.json"
    real_labels.pack(bop, "uoc", files, packed)
    doc = json.loads(packed.read_text())
    assert set(doc["scenes"]["000000"]["frames"]["0"]) == {"file", "pixels_sha256", "masks"}  # no pixels

    real_labels.unpack(packed, files, tmp_path / "again")
    again = tmp_path / "again" / "000000"
    for i in range(9):
        for sub, name in (("rgb", f"{i:06d}.png"), ("depth", f"{i:06d}.png"), ("mask_visib", f"{i:06d}_000000.png")):
            a = cv2.imread(str(bop / "000000" / sub / name), cv2.IMREAD_UNCHANGED)
            b = cv2.imread(str(again / sub / name), cv2.IMREAD_UNCHANGED)
            assert np.array_equal(a, b), (sub, name)
    assert json.loads((again / "scene_gt.json").read_text()) == json.loads((bop / "000000" / "scene_gt.json").read_text())
    assert (tmp_path / "again" / "class_map.yaml").read_text().strip() == "5: mustard_bottle"

    with pytest.raises(SystemExit, match="exists"):
        real_labels.unpack(packed, files, tmp_path / "again")
    with pytest.raises(SystemExit, match="never overwritten"):
        real_labels.pack(bop, "uoc", files, packed)
    other = _source(tmp_path / "other", seed=1)  # another version of the frames
    with pytest.raises(SystemExit, match="not the ones labelled"):
        real_labels.unpack(packed, other, tmp_path / "wrong")
    assert not (tmp_path / "wrong").exists()


def test_labels_come_back_from_a_clone_at_the_labelled_commit_and_name_what_is_missing(tmp_path):
    files = _source(tmp_path / "src")
    packed = tmp_path / "uoc.json"
    real_labels.pack(_labelled(files, tmp_path / "labelled"), "uoc", files, packed)
    if shutil.which("git") is None:
        pytest.skip("no git")
    git = ["git", "-C", str(files), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "frames"], check=True)
    commit = subprocess.run(git + ["rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    doc = json.loads(packed.read_text())
    doc["origin"]["commit"] = commit  # the test's own repository stands for the source's
    packed.write_text(json.dumps(doc))
    real_labels.unpack(packed, None, tmp_path / "from_git", git_dir=files / ".git")
    assert len(list((tmp_path / "from_git" / "000000" / "rgb").iterdir())) == 9

    (files / "data" / "demo" / "camera_params.json").unlink()
    with pytest.raises(SystemExit, match="lacks data/demo/camera_params.json"):
        real_labels.unpack(packed, files, tmp_path / "missing")
