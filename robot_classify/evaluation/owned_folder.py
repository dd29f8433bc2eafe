"""Output folders a command may run into again: it replaces what it wrote there, and nothing else.

`demo`, `replay-eval --report` and `--compare` write several files into one folder, and users run
them again into the same one. A marker file, written before anything else, says which command owns
the folder and what it writes; a run into a marked folder removes those entries first (a re-run had
left an earlier run's failure crops beside new metrics), and an unmarked folder with files in it
is refused (a folder holding someone else's `metrics.json` had been taken for a report and
emptied). An interrupted run leaves its marker, so the next run may replace what it left.
"""
from __future__ import annotations

import shutil
from pathlib import Path


def prepare_owned_folder(folder: Path, marker: str, outputs: tuple[str, ...], command: str) -> None:
    """Make `folder` ready for `command`: new or empty, or marked by it (`marker`), in which case
    `outputs` are removed (names, or glob patterns such as `patch_*.png` for outputs numbered per
    run, so that a run with fewer objects leaves no crops of an earlier frame); then (re)write the
    marker. Anything else stays; any other folder with files in it raises ValueError."""
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()):
        if not (folder / marker).is_file():
            raise ValueError(f"{folder} is not empty and holds no earlier output of `{command}` ({marker}); choose a "
                             f"new or empty folder (`{command}` never deletes files it did not write)")
        for name in outputs:
            for entry in sorted(folder.glob(name)) if any(c in name for c in "*?[") else [folder / name]:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                elif entry.exists() or entry.is_symlink():
                    entry.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / marker).write_text(f"written by `{command}`: a run into this folder replaces {', '.join(outputs)} "
                                 "here and nothing else\n")


def refuse_existing(path: str | Path, command: str) -> Path:
    """`path` for a new file `command` writes: an existing one is the user's, and is refused
    (ValueError) before any work is done, as `train` and `teach` refuse an existing model."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        raise ValueError(f"{path} exists; choose a new path (`{command}` never overwrites a file)")
    return path
