"""Files of an export: the folder layout, atomic writing, the manifest, the dataset card, and reading back.

Layout of every export folder (formats.md §5, "BrightRun layout"):
    data/<split>.jsonl              one JSON object per line, UTF-8, no BOM (Parquet: data/<split>-0000N-of-0000M.parquet)
    README.md                       a Hugging Face dataset card whose `configs` name the splits
    manifest.json                   format, files, split and record id of every line (validators use it
                                    to name records)
    + the format's own files        dataset_info.json (LLaMA-Factory), axolotl.yaml (Axolotl snippets)
The folder is built beside the target and renamed into place, so a reader never sees half an export; an
existing folder is replaced only when it is empty or a previous BrightRun export.
"""

from __future__ import annotations

import gc
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
import yaml

from brightrun.exports.base import ExportError, Report, Where

SPLIT_ORDER = ("train", "validation", "test")
SPLIT_NAME = re.compile(r"^\w+(\.\w+)*$")
MANIFEST = "manifest.json"
# datasets' SPLIT_KEYWORDS (src/datasets/data_files.py): a keyword delimited by - . _ space, digits or the ends
_KEYWORDS = {"train": ("train", "training"), "validation": ("validation", "valid", "dev", "val"),
             "test": ("test", "testing", "eval", "evaluation")}
_DELIM = r"[-._ 0-9/]"


def hf_split_of(relpath: str) -> str | None:
    """The split `datasets` infers from a file path (a keyword in the name or a directory), else None."""
    text = "/" + relpath.replace("\\", "/").lower()
    for split, words in _KEYWORDS.items():
        for word in words:
            if re.search(rf"(^|{_DELIM}){word}($|{_DELIM})", text):
                return split
    return None


def group_by_split(records: list[dict], split_names: Mapping[str, str] | None) -> dict[str, list[dict]]:
    """Records by output split name (split_names renames, e.g. {"validation": "valid"}), train first."""
    groups: dict[str, list[dict]] = {}
    for record in records:
        name = (split_names or {}).get(record["split"], record["split"])
        if not SPLIT_NAME.match(name):
            raise ExportError(f"split name {name!r} (record {record['id']!r}) is not a valid split name. Fix: use "
                              "letters, digits and underscores, e.g. train, validation, test.")
        groups.setdefault(name, []).append(record)
    order = {s: i for i, s in enumerate(SPLIT_ORDER)}
    return dict(sorted(groups.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))


def jsonl_bytes(rows: list[dict]) -> bytes:
    return b"\n".join(map(orjson.dumps, rows)) + b"\n" if rows else b""


def size_category(n: int) -> str:
    for bound, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                         (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):
        if n < bound:
            return label
    return "n>10M"


def dataset_card(fmt: str, description: str, split_files: Mapping[str, tuple[str, int]],
                 card_metadata: Mapping[str, Any] | None = None) -> str:
    """README.md with YAML front matter: one `default` config whose data_files name each split's path."""
    total = sum(n for _, n in split_files.values())
    meta: dict[str, Any] = {"pretty_name": f"BrightRun export ({fmt})", "task_categories": ["text-generation"],
                            "size_categories": [size_category(total)], **(card_metadata or {})}
    meta["configs"] = [{"config_name": "default", "default": True, "data_files": [
        {"split": split, "path": path} for split, (path, _) in split_files.items()]}]
    counts = "\n".join(f"| {split} | `{path}` | {n} |" for split, (path, n) in split_files.items())
    return (f"---\n{yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)}---\n\n"
            f"# BrightRun export: {fmt}\n\n{description}\n\n| split | files | examples |\n|---|---|---|\n{counts}\n\n"
            f"Written by BrightRun on {datetime.now(UTC).date().isoformat()}. Load it with "
            f"`datasets.load_dataset(\"<this folder>\")`; `manifest.json` maps every line to its source record.\n")


def write_export(folder: Path, fmt: str, files: Mapping[str, bytes | Callable[[Path], None]],
                 ids: Mapping[str, tuple[str, list[str]]]) -> list[Path]:
    """Write `files` (relative path -> bytes, or a function writing that path) and the manifest into a
    staging folder, then swap it into `folder`. `ids`: data file -> (split, record id of each line/row)."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not _is_export(folder):
        raise ExportError(f"{folder} is not empty and is not a BrightRun export. Fix: choose an empty or new "
                          "folder (an earlier export in it would be replaced).")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.parent / f".{folder.name}-{uuid.uuid4().hex}"
    try:
        for rel, content in files.items():
            path = staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                content(path)
        manifest = {"brightrun_export": 1, "format": fmt, "created_at": datetime.now(UTC).isoformat(),
                    "files": [{"path": rel, "split": split, "examples": len(rids), "ids": rids}
                              for rel, (split, rids) in ids.items()],
                    "extra_files": [rel for rel in files if rel not in ids]}
        (staging / MANIFEST).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
        old = folder.parent / f".{folder.name}-old-{uuid.uuid4().hex}"
        if folder.exists():
            folder.rename(old)
        staging.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _manifest.cache_clear()
    return [folder / rel for rel in files]


def _is_export(folder: Path) -> bool:
    try:
        return "brightrun_export" in orjson.loads((folder / MANIFEST).read_bytes())
    except (OSError, orjson.JSONDecodeError, TypeError):
        return False


@lru_cache(maxsize=64)
def _manifest(folder: str, mtime: float) -> dict[str, tuple[str, list[str]]]:
    data = orjson.loads((Path(folder) / MANIFEST).read_bytes())
    return {f["path"]: (f["split"], f["ids"]) for f in data.get("files", [])}


def manifest_entry(path: Path) -> tuple[str | None, list[str] | None]:
    """(split, ids per line) for a data file from the manifest of its export, when there is one."""
    for root in (path.parent, path.parent.parent):
        candidate = root / MANIFEST
        if candidate.exists() and _is_export(root):
            entries = _manifest(str(root), candidate.stat().st_mtime)
            rel = path.resolve().relative_to(root.resolve()).as_posix() if path.resolve().is_relative_to(
                root.resolve()) else path.name
            if rel in entries:
                return entries[rel]
    return None, None


def split_of_file(path: Path) -> str:
    split, _ = manifest_entry(path)
    return split or hf_split_of(path.name) or "train"


_IN_HAND: ContextVar[dict[tuple[int, int, int], list] | None] = ContextVar("rows_in_hand", default=None)


@contextmanager
def rows_in_hand() -> Iterator[None]:
    """Within it, the JSONL writers keep the rows they write (keep_rows) and iter_jsonl hands a file's rows
    back instead of reading and parsing the file again: an export validates what it has just written without
    a second parse. A file is matched by its inode, size and modification time, so a file changed since
    (or any other file) is read from disk. The rows are what the file holds: orjson writes each as one
    line, and every writer's rows are plain JSON values (dicts, lists, str, int, float, bool, None; tested
    for every format). Rows are dropped as they are handed back, and all of them when the block ends."""
    token = _IN_HAND.set({})
    try:
        yield
    finally:
        _IN_HAND.reset(token)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Within it, CPython's cyclic garbage collector does not run (left as it is when already off). An export
    holds hundreds of thousands of records, each a few dicts and lists, for the length of the export; every
    full collection walks all of them again, which took about 15% of a 1,000,000-pair export's time
    (docs/benchmarks.md). The records, rows and examples hold no reference cycles, so reference counting
    frees them as before; only cyclic garbage made inside the block waits until it ends."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _file_key(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns


def keeping_rows() -> bool:
    """Whether a writer should keep its rows (inside rows_in_hand)."""
    return _IN_HAND.get() is not None


def keep_rows(path: Path, rows: list) -> None:
    """Remember the rows just written to `path` (closed) for iter_jsonl, inside rows_in_hand only."""
    kept = _IN_HAND.get()
    if kept is not None:
        kept[_file_key(path)] = rows


def _rows_in_hand(path: Path) -> list | None:
    kept = _IN_HAND.get()
    if not kept:
        return None
    try:
        return kept.pop(_file_key(path), None)
    except OSError:
        return None


def _where(file: str, n: int, ids: list[str] | None, obj: dict) -> Where:
    where = Where(file, n, ids[n - 1] if ids and n <= len(ids) else None)
    if where.record_id is None and isinstance(obj.get("id"), str):
        where = Where(file, n, obj["id"])
    return where


def iter_jsonl(path: Path, report: Report) -> Iterator[tuple[Where, Any]]:
    """Each line of a JSONL file as (where, parsed object). Encoding, BOM, blank lines, invalid JSON and
    non-object lines are reported (check 1 of formats.md §7) and skipped. Inside rows_in_hand, a file an
    export has just written is not read: its rows are handed back as they were written."""
    _, ids = manifest_entry(path)
    file = str(path)
    rows = _rows_in_hand(path)
    if rows is not None:
        for k in range(len(rows)):
            obj, rows[k] = rows[k], None  # each row is dropped once checked
            yield _where(file, k + 1, ids, obj), obj
        if not rows:
            report.error(Where(file, None), "empty_file", "the file has no records", "export at least one record")
        return
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below; streamed so a large file is not held whole
    except OSError as exc:
        report.error(Where(file, None), "unreadable_file", f"cannot read the file ({exc})",
                     "check the path and permissions")
        return
    n = 0
    with handle:
        for n, raw in enumerate(handle, start=1):
            where = Where(file, n, ids[n - 1] if ids and n <= len(ids) else None)
            raw = raw.rstrip(b"\n")
            if n == 1 and raw.startswith(b"\xef\xbb\xbf"):
                report.error(where, "bom", "the file starts with a UTF-8 byte order mark",
                             "save it as UTF-8 without BOM")
                raw = raw[3:]
            obj = _parse(report, where, raw)
            if obj is None:
                continue
            yield _where(file, n, ids, obj), obj
    if n == 0:
        report.error(Where(file, None), "empty_file", "the file has no records", "export at least one record")


def _parse(report: Report, where: Where, raw: bytes) -> dict | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        report.error(where, "encoding", f"the line is not valid UTF-8 ({exc.reason} at byte {exc.start})",
                     "re-encode the file as UTF-8")
        return None
    if not text.strip():
        report.error(where, "blank_line", "the line is empty", "remove blank lines: one JSON object per line")
        return None
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        report.error(where, "invalid_json", f"the line is not valid JSON ({exc})",
                     "write exactly one complete JSON object per line")
        return None
    if not isinstance(obj, dict):
        report.error(where, "data_type", f"the line is a JSON {type(obj).__name__}, not an object",
                     "each line must be one JSON object")
        return None
    return obj


def data_files(paths: list[Path] | Path, suffix: str = ".jsonl") -> list[Path]:
    """The data files among a writer's paths (or in an export folder's data/), in order."""
    if isinstance(paths, (str, Path)):
        root = Path(paths)
        return sorted(root.glob(f"data/*{suffix}")) if root.is_dir() else [root]
    return [Path(p) for p in paths if Path(p).name.endswith(suffix)]
