"""The chunks of a training-file build made by worker processes (`brightrun training-file build --workers N`).

Each worker opens the workspace read-only, reads and shapes one chunk of members (chunks.iter_chunks, the code
a single-process build runs) and returns its bytes; the parent writes them in order, so the files are the
same bytes for any number of workers. Kept apart from build.py so that the build itself changes by one call.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from brightrun.training_files.chunks import CHUNK, Buffers, Chunk, iter_chunks
from brightrun.workspace import Workspace
from brightrun.workspace.pool import map_ordered, workers_for

_OPENED: dict[str, Workspace] = {}
"""The workspace a worker process opened, kept for its next chunks."""


def member_chunks(ws: Workspace, ids: list[str], splits: list[str], name: str, buffers: Buffers,
                  workers: int = 1, chunk: int = CHUNK) -> Iterator[Chunk]:
    """iter_chunks(ws, ids, splits, chunk, name, buffers), the chunks made by `workers` processes when
    there is more than one chunk (their JSONL then in buffers of their own, not `buffers`)."""
    parts = [(ids[i:i + chunk], splits[i:i + chunk]) for i in range(0, len(ids), chunk)]
    workers = workers_for(workers, len(parts))
    if workers == 1:
        yield from iter_chunks(ws, ids, splits, chunk, name, buffers)
        return
    for _, made in map_ordered(_make_chunk, parts, workers, shared=(str(ws.root), name)):
        yield replace(made, jsonl=memoryview(made.jsonl))


def _make_chunk(part: tuple[list[str], list[str]], root: str, name: str) -> Chunk:
    """One chunk, in a worker: read only, nothing written; its JSONL as bytes (a memoryview cannot be sent)."""
    ws = _OPENED.get(root)
    if ws is None:
        ws = _OPENED[root] = Workspace.open(root, create=False, threads=1)
    ids, splits = part
    made = next(iter_chunks(ws, ids, splits, len(ids), name))
    return replace(made, jsonl=bytes(made.jsonl))
