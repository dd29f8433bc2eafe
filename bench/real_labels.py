r"""The hand labels of the real frames, kept without the frames.

The real frames of doc/real_frames.md may not be committed, and the scratch folder that held
them and their hand labels was lost four times; each time they were labelled again, by hand,
for about an hour a source. This script keeps the labels (ours: masks, boxes, classes) in
`bench/real_labels/SRC.json` and puts them back beside the frames once the frames are fetched
again:

    pack    a labelled BOP folder (rgb/, depth/, mask_visib/, scene_*.json, class_map.yaml) ->
            SRC.json: everything but the pixels, the masks as PNG, and a digest of each frame's
            pixels as `bench/real_sources.py` reads them from the source's own files
    unpack  SRC.json + the source's own files (the paths the JSON names, as in the repository)
            -> the BOP folder again, refused when a frame's pixels are not those labelled

    python bench/real_labels.py unpack bench/real_labels/uoc.json --git-dir MIRROR --out bop_uoc
    robot-classify import-dataset bop_uoc --out real_uoc
    python bench/real_labels.py pack bop_uoc --source uoc --files SRC_FOLDER --out new_uoc.json

(with the checkout's venv active). The JSON's `origin` names the repository, the commit and the
paths of the source's files. `--git-dir` reads them at that commit from a local clone of the
repository (its `.git`, or a bare one); `--files` takes a folder that already holds them under
their repository paths. Nothing here fetches.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_sources  # noqa: E402  (beside this script)

LABELS_DIR = Path(__file__).resolve().parent / "real_labels"
SCENE_FILES = ("scene_camera.json", "scene_gt.json", "scene_gt_info.json")
FORMAT = 1


def depth_units(depth_m: np.ndarray, depth_scale: float) -> np.ndarray:
    """Metres -> BOP's uint16 units of `depth_scale` millimetres, 0 where unknown."""
    units = np.round(np.nan_to_num(depth_m, nan=0.0, posinf=0.0, neginf=0.0) * 1000.0 / depth_scale)
    return np.clip(units, 0, 65535).astype(np.uint16)


def digest(rgb: np.ndarray, depth: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in (np.ascontiguousarray(rgb, np.uint8), np.ascontiguousarray(depth, np.uint16)):
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _png_b64(mask: np.ndarray) -> str:
    ok, buf = cv2.imencode(".png", mask)
    assert ok
    return base64.b64encode(buf.tobytes()).decode("ascii")


def _png_unb64(text: str) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(base64.b64decode(text), np.uint8), cv2.IMREAD_UNCHANGED)


def _converted(source: str, files: Path, depth_scale: list[float]) -> list[tuple[str, np.ndarray, np.ndarray, str]]:
    out = []
    got = real_sources.frames(source, files)
    if len(got) != len(depth_scale):
        raise SystemExit(f"error: {len(depth_scale)} labelled images but the source gives {len(got)} frames")
    for (name, rgb, depth_m, _k), scale in zip(got, depth_scale):
        units = depth_units(depth_m, scale)
        out.append((name, rgb, units, digest(rgb, units)))
    return out


def _order(scenes: dict[str, dict]) -> list[tuple[str, str]]:
    """(scene, image id) in the order `real_sources` gives the frames: scenes, then ids, ascending."""
    return [(sc, i) for sc in sorted(scenes) for i in sorted(scenes[sc]["scene_gt"], key=int)]


def _scale(scenes: dict[str, dict], order: list[tuple[str, str]]) -> list[float]:
    return [float(scenes[sc]["scene_camera"][i].get("depth_scale", 1.0)) for sc, i in order]


def pack(bop: Path, source: str, files: Path, out: Path) -> None:
    if out.exists():
        raise SystemExit(f"error: {out} exists: give a new --out (labels are never overwritten)")
    folders = sorted(p for p in bop.iterdir() if p.is_dir() and (p / "scene_gt.json").is_file())
    if not folders:
        raise SystemExit(f"error: {bop} holds no BOP scene folder")
    scenes = {p.name: {f.removesuffix(".json"): json.loads((p / f).read_text()) for f in SCENE_FILES}
              for p in folders}
    order = _order(scenes)
    converted = _converted(source, files, _scale(scenes, order))
    for sc in scenes:
        scenes[sc]["frames"] = {}
    for (sc, i), (name, _rgb, units, dig) in zip(order, converted):
        scene = bop / sc
        labelled = cv2.imread(str(next((scene / "depth").glob(f"{int(i):06d}.*"))), cv2.IMREAD_UNCHANGED)
        if labelled.shape != units.shape:
            raise SystemExit(f"error: {sc}/{i}: labelled depth {labelled.shape}, source {units.shape}")
        off = np.abs(labelled.astype(np.int64) - units.astype(np.int64))
        if np.count_nonzero(off > 1) > 0.001 * off.size:
            raise SystemExit(f"error: {sc}/{i} ({name}): the labelled depth is not the source's")
        masks = []
        for k in range(len(scenes[sc]["scene_gt"][i])):
            mask = cv2.imread(str(scene / "mask_visib" / f"{int(i):06d}_{k:06d}.png"), cv2.IMREAD_GRAYSCALE)
            if mask is None or mask.shape != units.shape:
                raise SystemExit(f"error: {sc}/{i} object {k}: missing or mis-sized mask")
            masks.append(_png_b64(np.where(mask > 127, 255, 0).astype(np.uint8)))
        scenes[sc]["frames"][i] = {"file": name, "pixels_sha256": dig, "masks": masks}
    doc = {"format": FORMAT, "source": source, "origin": real_sources.ORIGINS[source],
           "class_map_yaml": (bop / "class_map.yaml").read_text(), "scenes": scenes}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")
    n = sum(len(v) for sc in scenes.values() for v in sc["scene_gt"].values())
    print(f"packed {len(order)} frames, {n} objects -> {out} ({out.stat().st_size // 1024} KiB)")


def extract(origin: dict, git_dir: Path, into: Path) -> None:
    """The source's files at the labelled commit, from a local clone, under their repository paths."""
    for path in origin["paths"]:
        got = subprocess.run(["git", "--git-dir", str(git_dir), "show", f"{origin['commit']}:{path}"],
                             capture_output=True)
        if got.returncode:
            raise SystemExit(f"error: {git_dir} has no {path} at {origin['commit'][:12]} (a clone of "
                             f"{origin['repository']}?): {got.stderr.decode(errors='replace').strip()}")
        (into / path).parent.mkdir(parents=True, exist_ok=True)
        (into / path).write_bytes(got.stdout)


def unpack(labels: Path, files: Path | None, out: Path, git_dir: Path | None = None) -> None:
    doc = json.loads(labels.read_text())
    if doc.get("format") != FORMAT:
        raise SystemExit(f"error: {labels}: format {doc.get('format')}, this script reads {FORMAT}")
    if out.exists():
        raise SystemExit(f"error: {out} exists: give a new folder")
    origin = doc["origin"]
    if git_dir is not None:
        with tempfile.TemporaryDirectory(prefix="real_labels_") as tmp:
            extract(origin, git_dir, Path(tmp))
            return unpack(labels, Path(tmp), out)
    missing = [p for p in origin["paths"] if not (files / p).is_file()]
    if missing:
        raise SystemExit(f"error: {files} lacks {missing[0]} ({len(missing)} of the {len(origin['paths'])} files "
                         f"missing): --files takes a folder with {origin['repository']}'s files under their "
                         "repository paths, or give --git-dir")
    scenes = doc["scenes"]
    order = _order(scenes)
    converted = _converted(doc["source"], files, _scale(scenes, order))
    for (sc, i), (name, _rgb, _units, dig) in zip(order, converted):
        want = scenes[sc]["frames"][i]
        if dig != want["pixels_sha256"]:
            raise SystemExit(f"error: {sc}/{i} ({name}): its pixels are not the ones labelled "
                             f"(another version of {want['file']}?)")
    for (sc, i), (_name, rgb, units, _dig) in zip(order, converted):
        scene = out / sc
        for sub in ("rgb", "depth", "mask_visib"):
            (scene / sub).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(scene / "rgb" / f"{int(i):06d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(scene / "depth" / f"{int(i):06d}.png"), units)
        for k, m in enumerate(scenes[sc]["frames"][i]["masks"]):
            cv2.imwrite(str(scene / "mask_visib" / f"{int(i):06d}_{k:06d}.png"), _png_unb64(m))
    for sc, meta in scenes.items():
        for f in SCENE_FILES:
            (out / sc / f).write_text(json.dumps(meta[f.removesuffix(".json")], indent=1) + "\n")
    (out / "class_map.yaml").write_text(doc["class_map_yaml"])
    print(f"unpacked {len(order)} frames of {doc['source']} -> {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("bop", type=Path)
    p.add_argument("--source", required=True, choices=sorted(real_sources.ORIGINS))
    p.add_argument("--files", type=Path, required=True)
    p.add_argument("--out", type=Path, help="default: bench/real_labels/SOURCE.json")
    u = sub.add_parser("unpack")
    u.add_argument("labels", type=Path)
    where = u.add_mutually_exclusive_group(required=True)
    where.add_argument("--files", type=Path, help="a folder with the source's files under their repository paths")
    where.add_argument("--git-dir", type=Path, help="a local clone of the source repository (its .git, or bare)")
    u.add_argument("--out", type=Path, required=True, help="a new folder for the BOP scenes")
    args = ap.parse_args()
    if args.cmd == "pack":
        pack(args.bop, args.source, args.files, args.out or LABELS_DIR / f"{args.source}.json")
    else:
        unpack(args.labels, args.files, args.out, args.git_dir)


if __name__ == "__main__":
    main()
