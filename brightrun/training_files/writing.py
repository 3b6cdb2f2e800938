"""The byte machinery of a training-file build: the writer thread, and the JSON's pieces made from the
JSONL's bytes (build.py decides what is written; this, how)."""

from __future__ import annotations

import hashlib
import queue
import threading

from brightrun.training_files.chunks import Buffers, Chunk
from brightrun.training_files.pairs_index import IndexWriter
from brightrun.workspace.files import StreamFile


class _Writer:
    """Writes and hashes in a thread of its own, one chunk behind the reading and serializing: when the
    kernel makes a writer wait for the disk (too many dirty pages), that wait overlaps with the next
    chunk's work instead of adding to it. The first error is raised on the next put or on close."""

    def __init__(self) -> None:
        self.queue: queue.Queue = queue.Queue(maxsize=1)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="training-file-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            if self.error is None:
                try:
                    for out, pieces in item:
                        out.write(pieces)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    self.error = exc

    def put(self, item: list[tuple[StreamFile | IndexWriter, list]]) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(item)

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


class _JsonPieces:
    """Chunks as pieces of training.json: each conversation's head, then its lines of the JSONL with the
    newlines between them made commas. The commas go into a copy held by buffers used in turn (three
    chunks are alive at once: the one the writer works on, one in its queue, the one being made)."""

    def __init__(self) -> None:
        self.copies = Buffers(3)
        self.first = True
        self.frame = hashlib.sha256()
        """The sha256 of the JSON's own bytes: every piece but the JSONL's lines, and how many lines each
        conversation has. With the JSONL's sha256 it fixes every byte of the JSON (its training pairs
        are the JSONL's lines by construction), for a third of the cost of hashing the whole file."""

    def own(self, piece: bytes) -> bytes:
        self.frame.update(piece)
        return piece

    def __call__(self, part: Chunk) -> list[bytes | memoryview]:
        size = part.jsonl.nbytes
        commas = self.copies.take(size)
        commas[:size] = part.jsonl
        view, find, pos, pieces = memoryview(commas), commas.find, 0, []
        for head, n in zip(part.heads, part.counts, strict=True):
            begin = pos
            for _ in range(n):
                pos = find(b"\n", pos, size) + 1
                commas[pos - 1] = 44  # ","
            pieces.append(self.own((b"\n" if self.first else b",\n") + head[:-1] + b',"training_pairs":['))
            self.frame.update(b"%d" % n)
            pieces.append(view[begin:pos - 1])
            pieces.append(self.own(b"]}"))
            self.first = False
        return pieces
