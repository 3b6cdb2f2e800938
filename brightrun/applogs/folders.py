"""Which files the app may read as logs: only under the workspace's `imports/` folder, or under folders
the operator lists in `BRIGHTRUN_IMPORT_DIRS` (separated by the path separator, `:` on Linux and macOS).

A path is checked after resolving symlinks and `..`, so neither leads outside. The CLI's
`brightrun import-log PATH` is run by the operator in a terminal and reads any path they can.
"""

from __future__ import annotations

import os
from pathlib import Path

from brightrun.applogs.readers import FORMATS
from brightrun.errors import BrightRunError
from brightrun.workspace import Workspace

ENV_VAR = "BRIGHTRUN_IMPORT_DIRS"
LISTED = 500
"""Files listed at most, newest first."""


def import_dirs(ws: Workspace) -> list[Path]:
    """The folders the app may read logs from, resolved: `<workspace>/imports` first, then the operator's."""
    folders = [ws.root / "imports"]
    folders += [Path(p).expanduser() for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p.strip()]
    return [f.resolve() for f in folders]


def _inside(path: Path, folders: list[Path]) -> bool:
    return any(path.is_relative_to(folder) for folder in folders)


def allowed_log_path(ws: Workspace, path: str | os.PathLike) -> Path:
    """The real path of a log file the app may read: `path` (relative ones are taken under `imports/`) with
    symlinks and `..` resolved must lie in one of `import_dirs(ws)`. Otherwise a BrightRunError."""
    folders = import_dirs(ws)
    given = Path(path).expanduser()
    real = (given if given.is_absolute() else folders[0] / given).resolve()
    if not _inside(real, folders):
        shown = ", ".join(str(f) for f in folders)
        raise BrightRunError(
            f"{path}: the app reads logs only from {shown}, and this path leads to {real}. Fix: copy the file "
            f"into {folders[0]}, upload it, or ask the operator to add its folder to {ENV_VAR} (or to run "
            f"`brightrun import-log {real}` in a terminal).")
    if not real.is_file():
        raise BrightRunError(f"no file {path} in {folders[0]}. Fix: pick one of the files listed, or copy the "
                             f"log into that folder first.")
    return real


def list_log_files(ws: Workspace) -> list[Path]:
    """Log files (by suffix) in the allowed folders and their subfolders, newest first, at most LISTED;
    a symlink leading outside them is left out. The import summaries (`imports/log-*.json`) are not logs."""
    folders = import_dirs(ws)
    found: dict[Path, float] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        for candidate in folder.rglob("*"):
            summary = candidate.parent == folders[0] and candidate.name.startswith("log-")
            if summary or candidate.suffix.lower() not in FORMATS:
                continue
            real = candidate.resolve()
            if real.is_file() and _inside(real, folders):
                found[candidate] = real.stat().st_mtime
    return sorted(found, key=found.__getitem__, reverse=True)[:LISTED]
