"""Atomic file writes and safe names: the only way BrightRun puts bytes on disk."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from typing import Any

import orjson

from brightrun.errors import WorkspaceError

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _\-]{0,119}$")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary name in the same folder, fsync, then rename into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{uuid.uuid4().hex}-{path.name}"
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))


def read_json(path: Path) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise WorkspaceError(f"{path}: not valid JSON ({exc}). Fix: restore it or delete it.") from exc


def safe_name(name: str, what: str = "name") -> str:
    """A user-given name usable as a file name: it can never leave its folder."""
    if not _SAFE_NAME.match(name or "") or name.strip() != name:
        raise WorkspaceError(
            f"{what} {name!r} is not allowed. Fix: use 1 to 120 letters, digits, spaces, dashes or "
            f"underscores, starting with a letter or digit."
        )
    return name
