"""The runtime works with OpenCV 4 and 5: the same conversions and segmentation under the other major.

This process has one OpenCV; a subprocess runs the same code with the other major's
`opencv-python-headless` wheel unpacked ahead of it on PYTHONPATH, and both must give the
same arrays. The wheel is taken only from this machine (pip's cache, its find-links and
file:// indexes, or ROBOT_CLASSIFY_WHEEL_DIRS); without one the test skips. Nothing is downloaded.
"""
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import cv2
import numpy as np
import pytest

REPO = Path(__file__).parents[1]
MAJOR = int(cv2.__version__.split(".")[0])
OTHER = 4 if MAJOR >= 5 else 5

# Run in both processes: every supported encoding (tight, padded, big-endian) through the
# converters, and a two-box tabletop frame through segmentation and cropping.
PROBE = r"""
import json, sys
import cv2
import numpy as np
from robot_classify.runtime.camera import Intrinsics
from robot_classify.runtime.image_conversion import ENCODINGS, COLOR_ENCODINGS, array_to_fields, color_from_msg, \
    depth_from_msg, mask_from_msg
from robot_classify.runtime.patches import SegmentationParams, extract_objects
from types import SimpleNamespace as NS

out = {"version": cv2.__version__}
rng = np.random.default_rng(3)
for enc, (dtype, ch) in ENCODINGS.items():
    shape = (5, 7, ch) if ch > 1 else (5, 7)
    arr = (rng.uniform(0, 4, shape) if np.dtype(dtype).kind == "f" else rng.integers(0, 250, shape)).astype(dtype)
    for big in (0, 1):
        f = array_to_fields(arr.astype(np.dtype(dtype).newbyteorder(">")) if big else arr, enc)
        data = np.ascontiguousarray(arr.astype(np.dtype(dtype).newbyteorder(">" if big else "<"))).view(np.uint8)
        rows = data.reshape(5, -1)
        rows = np.concatenate([rows, np.full((5, 3), 7, np.uint8)], 1)  # 3 bytes of row padding
        msg = NS(**{**f, "step": rows.shape[1], "data": rows.tobytes(), "is_bigendian": big})
        if enc in COLOR_ENCODINGS:
            got = color_from_msg(msg)
        elif enc in ("16UC1", "mono16", "32FC1"):
            got = depth_from_msg(msg)
        else:
            got = mask_from_msg(msg)
        out[f"{enc}/{big}"] = [str(got.dtype), got.tolist()]
h, w = 240, 320
depth = np.full((h, w), 1000, np.uint16)
color = np.full((h, w, 3), 90, np.uint8)
depth[60:140, 60:120], color[60:140, 60:120] = 930, (200, 40, 40)
depth[80:150, 180:260], color[80:150, 180:260] = 950, (40, 60, 200)
ex = extract_objects(color, depth, Intrinsics(300.0, 300.0, 160.0, 120.0), SegmentationParams(min_area=50))
out["objects"] = [[list(map(int, o.bbox)), int(o.pixels), [round(float(v), 6) for v in o.centroid],
                   [round(float(v), 6) for v in o.extent], o.patch.astype(int).tolist()] for o in ex.objects]
json.dump(out, open(sys.argv[1], "w"))
"""


def _wheel_dirs() -> list[Path]:
    dirs = [Path(d) for d in os.environ.get("ROBOT_CLASSIFY_WHEEL_DIRS", "").split(os.pathsep) if d]
    try:
        cfg = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                             timeout=30).stdout
        cache = subprocess.run([sys.executable, "-m", "pip", "cache", "dir"], capture_output=True, text=True,
                               timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return dirs
    if cache:
        dirs.append(Path(cache) / "wheels")
    for line in cfg.splitlines():
        if "index-url" in line or "find-links" in line:
            for item in line.split("=", 1)[1].strip("'\" ").split():
                path = Path(urlparse(item).path) if item.startswith("file:") else Path(item)
                dirs += [path, path.parent / "files"]
    return [d for d in dirs if d.is_dir()]


def other_major_wheel() -> Path | None:
    for d in _wheel_dirs():
        for whl in sorted(d.rglob(f"opencv_python_headless-{OTHER}.*-abi3-*x86_64.whl"), reverse=True):
            return whl
    return None


def probe(tmp_path: Path, name: str, pythonpath: str) -> dict:
    out = tmp_path / f"{name}.json"
    env = {**os.environ, "PYTHONPATH": pythonpath}
    proc = subprocess.run([sys.executable, "-c", PROBE, str(out)], capture_output=True, text=True, env=env,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(out.read_text())


def test_conversions_and_segmentation_agree_between_opencv_4_and_5(tmp_path):
    whl = other_major_wheel()
    if whl is None or sys.platform != "linux":
        pytest.skip(f"no opencv-python-headless {OTHER}.x wheel on this machine (pip cache, find-links, "
                    "file:// indexes, ROBOT_CLASSIFY_WHEEL_DIRS)")
    target = tmp_path / f"opencv{OTHER}"
    with zipfile.ZipFile(whl) as z:  # what `pip install --target` would unpack, without pip's resolver
        z.extractall(target)
    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]  # what gave us our cv2
    here = probe(tmp_path, "here", os.pathsep.join([*inherited, str(REPO)]))
    there = probe(tmp_path, "there", os.pathsep.join([str(target), *inherited, str(REPO)]))
    assert int(here["version"].split(".")[0]) == MAJOR and int(there["version"].split(".")[0]) == OTHER
    assert here.keys() == there.keys()
    for key in here:
        if key in ("version", "objects"):
            continue
        assert here[key] == there[key], key  # conversions: exact
    assert len(here["objects"]) == len(there["objects"]) == 2
    for a, b in zip(here["objects"], there["objects"]):
        assert a[:4] == b[:4]  # boxes, areas, centroids, extents
        assert np.abs(np.array(a[4]) - np.array(b[4])).max() <= 1  # crops: resampling may round differently
