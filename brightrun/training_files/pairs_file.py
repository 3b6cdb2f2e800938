"""Reading a version's built training.jsonl back, one member conversation at a time, for an export.

Each line is one training pair, and each pair carries the whole conversation before it
(`conversation_history`), so the file holds every conversation about as many times as it has turns: a
million pairs are about 4 GB. An SFT record needs the whole of only one pair per conversation, its last
(history + user input + answer); of the others it takes the id, the turn number, the answer, the quality
score and the split. So the file is read in blocks of whole lines; polars parses those few fields of every
line (in its own code, without making Python objects of the histories), and only each conversation's last
pair is parsed whole, by orjson. The pairs handed out are dicts: the last one as orjson parses it, the others
with just those fields ({"conversation_id", "id", "turn_number", "target_response", "split",
"training_metadata": {"quality_score"}}), equal to what a whole parse gives for those fields (the build
writes the score from a float column; polars reads it as a float, as orjson does).

The bytes are hashed as they are read: when the file does not hash to the version's records hash, nothing
read from it may be trusted and TrainingFileError is raised at the end.

A build since 2026-12-04 also writes an index of its lines (pairs_index): then `indexed_pairs` takes those few
fields from the index's columns and finds each conversation's last line with a byte search, so nothing but
the last lines is parsed at all.
"""

from __future__ import annotations

import errno
import hashlib
import io
import mmap
import os
import queue
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import orjson
import polars as pl

from brightrun.errors import TrainingFileError

BLOCK = 8 << 20
"""Bytes read at a time into one buffer, reused (cut at the last whole line; a longer line grows it): the
file is never in memory whole, and no block is copied. A fresh buffer per read costs page faults: reading
a 4 GB file in fresh 32 MiB blocks spent 10 of its 12 seconds in them, fresh 8 MiB blocks under 2 s, one
reused buffer 0.6 s."""
FIELDS = {"conversation_id": pl.String, "id": pl.String, "turn_number": pl.Int64, "target_response": pl.String,
          "split": pl.String, "training_metadata": pl.Struct({"quality_score": pl.Float64})}


def _blocks(path: Path, digest: hashlib._Hash) -> Iterator[memoryview]:
    """The file in blocks of whole lines (the last may lack its newline), each hashed into `digest`: views of
    one buffer, each valid until the next block is asked for. The bytes come from a read-ahead thread
    (_ReadAhead), copied into the buffer."""
    buf, start = bytearray(BLOCK), 0
    reader = _ReadAhead(path, digest)
    try:
        for raw in reader:
            at = 0
            while at < len(raw):
                n = min(len(buf) - start, len(raw) - at)
                buf[start:start + n] = raw[at:at + n]
                at, end = at + n, start + n
                cut = buf.rfind(b"\n", 0, end) + 1
                if not cut:  # a line longer than the buffer: a larger one (a copy: the views out may be alive)
                    if end == len(buf):
                        grown = bytearray(2 * len(buf))
                        grown[:end] = buf[:end]
                        buf = grown
                    start = end
                    continue
                yield memoryview(buf)[:cut]
                buf[:end - cut] = buf[cut:end]  # the start of the next line begins the next block
                start = end - cut
        if start:
            yield memoryview(buf)[:start]
    finally:
        reader.stop()


class _ReadAhead:
    """The file's bytes in order, read by a thread of its own a few blocks ahead of the reader, and hashed
    there. Where the filesystem allows, the reads bypass the page cache (O_DIRECT): a build writes
    training.jsonl the same way, so an export after it would read it from the disk anyway, and reading through
    the cache costs the kernel several seconds of CPU per 4 GB on the VMs BrightRun is measured on; bypassing it
    costs a tenth of that, and the thread overlaps the waits for the disk with the parsing. Iterating gives
    views of SLOTS buffers used in turn, each valid until the next is asked for."""

    SLOTS = 4
    RAW = 8 << 20

    def __init__(self, path: Path, digest: hashlib._Hash) -> None:
        self.buffers = [mmap.mmap(-1, self.RAW) for _ in range(self.SLOTS)]  # page-aligned, as O_DIRECT requires
        self.queue: queue.Queue = queue.Queue(maxsize=self.SLOTS - 2)  # (the one read, the one being read)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(path, digest), name="training-jsonl-reader",
                                       daemon=True)
        self.thread.start()

    def _run(self, path: Path, digest: hashlib._Hash) -> None:
        try:
            fd, direct = _open(path)
            try:
                size, done, turn = os.fstat(fd).st_size, 0, 0
                while done < size:
                    buffer = self.buffers[turn % self.SLOTS]
                    try:
                        got = os.readv(fd, [buffer])
                    except OSError as exc:  # O_DIRECT refused at read time: through the cache from here on
                        if not direct or exc.errno != errno.EINVAL:
                            raise
                        os.close(fd)
                        fd, direct = os.open(path, os.O_RDONLY), False
                        os.lseek(fd, done, os.SEEK_SET)
                        continue
                    if not got:
                        break
                    view = memoryview(buffer)[:got]
                    digest.update(view)
                    if not self._put(view):
                        return
                    done, turn = done + got, turn + 1
            finally:
                os.close(fd)
            self._put(None)
        except BaseException as exc:  # noqa: BLE001 - raised in the reading thread by __iter__
            self._put(exc)

    def _put(self, item: object) -> bool:
        while not self.stopping.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[memoryview]:
        while True:
            item = self.queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join()


def _open(path: Path) -> tuple[int, bool]:
    """(a file descriptor for reading `path`, whether it bypasses the page cache)."""
    if hasattr(os, "O_DIRECT"):
        try:
            return os.open(path, os.O_RDONLY | os.O_DIRECT), True
        except OSError:
            pass
    return os.open(path, os.O_RDONLY), False


def _line_bounds(data: memoryview) -> tuple[list[int], list[int]]:
    """(starts, ends) of the lines of a block, without their newlines."""
    ends = np.flatnonzero(np.frombuffer(data, np.uint8) == 10)
    stops = ends.tolist()
    if not stops or stops[-1] + 1 < len(data):
        stops.append(len(data))  # the file's last line, without a newline
    return [0, *(e + 1 for e in stops[:-1])], stops


def _light_pairs(data: memoryview, lines: list[memoryview]) -> list[dict]:
    """The few fields of each line's pair (module docstring); a block polars cannot read line for line is
    parsed whole by orjson instead, so a malformed line fails as it always did."""
    try:
        frame = pl.read_ndjson(io.BytesIO(data), schema=FIELDS)
    except pl.exceptions.PolarsError:
        frame = None
    if frame is None or frame.height != len(lines):
        return [orjson.loads(line) for line in lines]
    scores = frame["training_metadata"].struct.field("quality_score").to_list()
    return [{"conversation_id": cid, "id": pid, "turn_number": turn, "target_response": answer, "split": split,
             "training_metadata": {"quality_score": score}}
            for cid, pid, turn, answer, split, score in zip(
                frame["conversation_id"].to_list(), frame["id"].to_list(), frame["turn_number"].to_list(),
                frame["target_response"].to_list(), frame["split"].to_list(), scores, strict=True)]


def _whole_last(pairs: list[dict], lines: list[bytes]) -> list[dict]:
    """The conversation's pairs with its last pair (the highest turn number; the later line of equal ones,
    as a stable sort by turn puts last) parsed whole."""
    last = max(range(len(pairs)), key=lambda k: (pairs[k]["turn_number"], k))
    if "conversation_history" not in pairs[last]:
        pairs[last] = orjson.loads(lines[last])
    return pairs


def member_pairs(path: Path, digest: hashlib._Hash) -> Iterator[list[dict]]:
    """The pairs of each conversation in file order (one list per run of lines with one conversation id),
    hashing the file's bytes into `digest` as it goes (check the digest after the last list)."""
    pairs: list[dict] = []
    lines: list[memoryview | bytes] = []
    for data in _blocks(path, digest):
        starts, stops = _line_bounds(data)
        block_lines = [data[a:b] for a, b in zip(starts, stops, strict=True)]
        for pair, line in zip(_light_pairs(data, block_lines), block_lines, strict=True):
            if pairs and pair["conversation_id"] != pairs[-1]["conversation_id"]:
                yield _whole_last(pairs, lines)
                pairs, lines = [], []
            pairs.append(pair)
            lines.append(line)
        lines = [bytes(line) for line in lines]  # a conversation going on: its lines outlive the buffer
    if pairs:
        yield _whole_last(pairs, lines)


def indexed_pairs(path: Path, index: Iterable[dict[str, list]], digest: hashlib._Hash) -> Iterator[list[dict]]:
    """member_pairs, with the few fields of every pair taken from the build's index of the file's lines
    (`index`: pairs_index.batches, the index's rows in order, a batch of column lists at a time) instead of
    parsed from the lines. Each whole parsed line must be the pair the index names, and the file must have as
    many lines as the index has rows."""
    batches = iter(index)
    cids: list = []
    at = size_of_batch = k = 0
    pairs: list[dict] = []
    lines: list[memoryview | bytes] = []
    for data in _blocks(path, digest):
        buf, size, pos = data.obj, data.nbytes, 0  # a block is a view of its buffer from offset 0
        find = buf.find
        while pos < size:
            end = find(b"\n", pos, size)
            end = size if end < 0 else end
            while at == size_of_batch:
                batch = next(batches, None)
                if batch is None:
                    raise _index_mismatch(path, f"the file has more lines than its index's {k:,} rows")
                cids, ids, turns = batch["conversation_id"], batch["id"], batch["turn_number"]
                answers, splits, scores = batch["target_response"], batch["split"], batch["quality_score"]
                at, size_of_batch = 0, len(cids)
            if pairs and cids[at] != pairs[-1]["conversation_id"]:
                yield _checked_last(pairs, lines, path)
                pairs, lines = [], []
            pairs.append({"conversation_id": cids[at], "id": ids[at], "turn_number": turns[at],
                          "target_response": answers[at], "split": splits[at],
                          "training_metadata": {"quality_score": scores[at]}})
            lines.append(data[pos:end])
            pos, at, k = end + 1, at + 1, k + 1
        lines = [bytes(line) for line in lines]  # a conversation going on: its lines outlive the buffer
    rest = size_of_batch - at + sum(len(batch["id"]) for batch in batches)
    if rest:
        raise _index_mismatch(path, f"the file has {k:,} lines, its index {k + rest:,} rows")
    if pairs:
        yield _checked_last(pairs, lines, path)


def _checked_last(pairs: list[dict], lines: list, path: Path) -> list[dict]:
    """_whole_last, refusing a parsed line that is not the pair its index row names."""
    last = max(range(len(pairs)), key=lambda k: (pairs[k]["turn_number"], k))
    named = pairs[last]
    whole = orjson.loads(lines[last])
    if not isinstance(whole, dict) or (whole.get("id"), whole.get("conversation_id"), whole.get("turn_number")) != (
            named["id"], named["conversation_id"], named["turn_number"]):
        raise _index_mismatch(path, f"the line its index gives to pair {named['id']!r} holds another")
    pairs[last] = whole
    return pairs


def _index_mismatch(path: Path, what: str) -> TrainingFileError:
    return TrainingFileError(f"{path} does not agree with its index ({what}). Fix: build the version again with "
                             "`brightrun training-file build NAME --version N` and export again.")
