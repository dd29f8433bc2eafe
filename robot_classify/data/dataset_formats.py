"""Which real RGB-D dataset layout a folder holds (BOP or YCB-Video's own), and its reader:
`import-dataset` reads it, and a bag reader names it when a dataset is given where a bag goes."""
from __future__ import annotations

from pathlib import Path

from . import bop, ycb_video
from .frames import DatasetError

FORMATS = ("auto", "bop", "ycbv")
LOADERS = {"bop": bop, "ycbv": ycb_video}


def detect_format(path: str | Path) -> str:
    """'bop' for a BOP split or scene folder, 'ycbv' for YCB-Video's own layout."""
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(f"{path}: no such folder (a dataset is a BOP split/scene or a YCB-Video folder)")
    incomplete = None
    for fmt, loader in LOADERS.items():
        try:
            loader.find_scenes(path)
            return fmt
        except bop.IncompleteScene as e:  # a BOP scene but for its camera file: that file is the news
            incomplete = e
        except DatasetError:
            continue
    if incomplete is not None:
        raise incomplete
    raise DatasetError(f"{path}: neither a BOP split/scene (NNNNNN/scene_camera.json) nor YCB-Video frames "
                       f"(NNNN/NNNNNN-color.png); pass --format bop|ycbv")
