"""Tiny real-dataset folders written by the tests themselves: BOP and YCB-Video layouts."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np


def write_png(path: Path, image: np.ndarray, rgb: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image[:, :, ::-1] if rgb else image), path


def bop_scene(root: Path, images: list[dict], masks: bool = True) -> Path:
    """images: dicts with color (H, W, 3 RGB), depth (raw uint16), K (3x3), depth_scale, and
    objects: list of (obj_id, mask (H, W) bool, visib_fract). Writes scene_camera/gt/gt_info,
    rgb/, depth/ and (with `masks`) mask_visib/. bbox_visib is written BOP's way (w = last - first)."""
    cams, gts, infos = {}, {}, {}
    for im_id, im in enumerate(images):
        cams[str(im_id)] = {"cam_K": np.asarray(im["K"], float).ravel().tolist(), "depth_scale": im["depth_scale"]}
        gts[str(im_id)], infos[str(im_id)] = [], []
        write_png(root / "rgb" / f"{im_id:06d}.png", im["color"], rgb=True)
        write_png(root / "depth" / f"{im_id:06d}.png", im["depth"])
        for gt_id, (obj_id, mask, visib) in enumerate(im["objects"]):
            gts[str(im_id)].append({"cam_R_m2c": np.eye(3).ravel().tolist(), "cam_t_m2c": [0, 0, 900],
                                    "obj_id": obj_id})
            vs, us = np.nonzero(mask)
            box = [int(us.min()), int(vs.min()), int(us.max() - us.min()), int(vs.max() - vs.min())] if len(vs) \
                else [-1, -1, -1, -1]
            infos[str(im_id)].append({"bbox_obj": box, "bbox_visib": box, "px_count_all": int(mask.sum()),
                                      "px_count_valid": int(mask.sum()), "px_count_visib": int(mask.sum()),
                                      "visib_fract": visib})
            if masks:
                write_png(root / "mask_visib" / f"{im_id:06d}_{gt_id:06d}.png", mask.astype(np.uint8) * 255)
    for name, doc in (("scene_camera", cams), ("scene_gt", gts), ("scene_gt_info", infos)):
        (root / f"{name}.json").write_text(json.dumps(doc))
    return root


def ycbv_frame(folder: Path, frame: str, color: np.ndarray, depth: np.ndarray, label: np.ndarray, K: np.ndarray,
               factor_depth: float, objects: list[tuple[int, str]], box: bool = True) -> None:
    """One YCB-Video frame: objects are (class index, box.txt name) in cls_indexes order."""
    from scipy.io import savemat

    write_png(folder / f"{frame}-color.png", color, rgb=True)
    write_png(folder / f"{frame}-depth.png", depth)
    write_png(folder / f"{frame}-label.png", label)
    savemat(str(folder / f"{frame}-meta.mat"), {"cls_indexes": np.array([[i] for i, _ in objects], np.float64),
                                                "factor_depth": np.array([[factor_depth]]),
                                                "intrinsic_matrix": np.asarray(K, float)})
    if box:
        (folder / f"{frame}-box.txt").write_text("".join(f"{n} 1.0 2.0 30.5 40.5\n" for _, n in objects))
