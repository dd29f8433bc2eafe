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
    `outputs` are removed; then (re)write the marker. Anything else stays; any other folder with
    files in it raises ValueError."""
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()):
        if not (folder / marker).is_file():
            raise ValueError(f"{folder} is not empty and holds no earlier output of `{command}` ({marker}); choose a "
                             f"new or empty folder (`{command}` never deletes files it did not write)")
        for name in outputs:
            entry = folder / name
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            elif entry.exists() or entry.is_symlink():
                entry.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / marker).write_text(f"written by `{command}`: a run into this folder replaces {', '.join(outputs)} "
                                 "here and nothing else\n")
