"""The members of a training-file version, serialized chunk by chunk, and the hashes of what they make.

Each chunk holds, per conversation, its JSON head (the conversation without its training pairs) and how
many training pairs it has, and all their training pairs as JSONL, read with one query and shaped by
polars expressions (build.py writes both files from these bytes). Each chunk also carries what the
records hash (RecordsHash) is made of, from the same rows, so a build checks the records it wrote; core.py
makes the same hash from a narrow read when a version is made (records_hash), and the rows of the index of
the JSONL's lines (pairs_index). Imports no other module of training_files but pairs_index (which imports
none), so core, build and writing can all import it.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass

import orjson
import polars as pl

from brightrun.enrichment import emotions
from brightrun.errors import TrainingFileError
from brightrun.quality import scoring
from brightrun.training_files.pairs_index import index_rows
from brightrun.workspace import Workspace
from brightrun.workspace.tables import SEQ

CHUNK = 4_000
"""Members read, shaped and written per step (bounds memory at any size)."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def content_hash(json_frame_sha: str, jsonl_sha: str) -> str:
    """The hash of both files' every byte (see _JsonPieces.frame)."""
    return sha256(json_frame_sha.encode() + b"\n" + jsonl_sha.encode())


class Buffers:
    """Byte buffers used in turn. Serializing each chunk into a fresh buffer of about 100 MB costs a page
    fault per 4 KiB, which on a VM is a quarter of the serializing time; reusing buffers does not. A
    buffer handed out is overwritten `slots` turns later, so `slots` bounds how many chunks a consumer
    may hold at once."""

    def __init__(self, slots: int = 1) -> None:
        self.slots = [bytearray() for _ in range(slots)]
        self.turn = -1

    def advance(self) -> int:
        self.turn = (self.turn + 1) % len(self.slots)
        return self.turn

    def take(self, size: int) -> bytearray:
        """The next buffer, at least `size` bytes long."""
        turn = self.advance()
        if len(self.slots[turn]) < size:
            self.slots[turn] = bytearray(size + size // 4)
        return self.slots[turn]

    def ndjson(self, frame: pl.DataFrame) -> memoryview:
        """`frame.write_ndjson` into the next buffer; a view of the bytes written."""
        sink = _Sink(self, self.advance())
        if frame.height:
            frame.write_ndjson(sink)
        return memoryview(self.slots[sink.turn])[:sink.size]


class _Sink:
    """A writable file for polars that fills a buffer of a Buffers, growing it when needed."""

    def __init__(self, buffers: Buffers, turn: int) -> None:
        self.buffers, self.turn, self.size = buffers, turn, 0

    def write(self, data: bytes) -> int:
        end = self.size + len(data)
        buffer = self.buffers.slots[self.turn]
        if end > len(buffer):
            grown = bytearray(end + end // 2)
            grown[:self.size] = memoryview(buffer)[:self.size]
            self.buffers.slots[self.turn] = buffer = grown
        buffer[self.size:end] = data
        self.size = end
        return len(data)

    def flush(self) -> None:
        pass


# -- shaping -----------------------------------------------------------------------------------------


def _lookup(ws: Workspace) -> dict[str, dict[str, str]]:
    s = ws.scaffolding
    return {
        "client_persona": {k: p.name for k, p in s.personas.items()},
        "persona_archetype": {k: p.archetype for k, p in s.personas.items()},
        "client_background": {k: p.background for k, p in s.personas.items()},
        "emotional_arc": {k: a.name for k, a in s.arcs.items()},
        "training_topic": {k: t.name for k, t in s.topics.items()},
    }


_KEYED = {"client_persona": "persona_key", "persona_archetype": "persona_key", "client_background": "persona_key",
          "emotional_arc": "arc_key", "training_topic": "topic_key"}
"""Each field the scaffolding names, with the key column it is looked up by."""


def _shaped(frame: pl.DataFrame, lookup: dict[str, dict[str, str]]) -> pl.DataFrame:
    """One row per training pair with a single struct column `pair`, keys sorted at every level: the
    record enrichment.enriched_conversation gives, plus the pair's split."""
    keyed = _KEYED
    named = {field: pl.col(column).replace_strict(lookup[field], default=None, return_dtype=pl.String).alias(field)
             for field, column in keyed.items()}
    frame = frame.with_columns(*named.values())
    for field, column in keyed.items():
        missing = frame.filter(pl.col(field).is_null())[column].unique().to_list()
        if missing:
            raise TrainingFileError(f"the scaffolding has no {column.removesuffix('_key')} {missing[0]!r}, which "
                                    f"training pairs use. Fix: restore it in the scaffolding, or remove those "
                                    f"conversations from the training file.")
    metadata = pl.struct(
        pl.col("client_background"), pl.col("client_persona"), pl.col("emotional_arc"),
        pl.col("arc_key").alias("emotional_arc_key"), pl.col("persona_archetype"), pl.col("training_topic"),
        pl.col("topic_key").alias("training_topic_key")).alias("conversation_metadata")
    history = pl.col("conversation_history").list.eval(
        pl.struct(pl.element().struct.field("content"), pl.element().struct.field("role")))
    emotional = pl.struct(
        pl.col("detected_emotions"), pl.col("expected_stage_emotion"), pl.col("intensity"),
        pl.lit(emotions.METHOD).alias("method"), pl.col("primary_emotion"), pl.col("valence"),
    ).alias("emotional_context")
    training = pl.struct(
        pl.col("enrichment_version"), pl.col("history_turns"), pl.col("is_scripted"), pl.col("model"),
        pl.col("provider"), pl.col("quality_score"),
        pl.struct(*(pl.col(d) for d in sorted(scoring.DIMENSIONS))).alias("quality_scores"),
        pl.col("response_word_count"), pl.col("template_key"), pl.col("template_version"), pl.col("tier"),
        pl.col("user_input_word_count")).alias("training_metadata")
    pair = pl.struct(
        history.alias("conversation_history"), pl.col("conversation_id"), metadata, pl.col("current_user_input"),
        emotional, pl.col("pair_id").alias("id"), pl.col("split"), pl.col("system_prompt"),
        pl.col("target_response"), training, pl.col("turn_number")).alias("pair")
    return frame.select(pl.col("ord"), pl.col("conversation_id"), pl.col("split"), metadata, pair)


def _ndjson(frame: pl.DataFrame) -> bytes:
    """The frame as JSONL: one compact JSON object a line, each ending with a newline."""
    if not frame.height:
        return b""
    buffer = io.BytesIO()
    frame.write_ndjson(buffer)
    return buffer.getvalue()


@dataclass(frozen=True)
class Chunk:
    """The members of one step, serialized: per conversation its JSON head (the object without its
    training pairs) and how many training pairs it has, and all their training pairs as JSONL."""

    ids: list[str]
    splits: list[str]
    heads: list[bytes]
    counts: list[int]
    jsonl: memoryview
    """The training pairs of the chunk's conversations in order, one line each (a view of a buffer of
    the Buffers given to iter_chunks: valid until that buffer's next turn)."""
    rows: bytes = b""
    """The chunk's part of the records hash: a line per training pair read (records_lines)."""
    named: frozenset[tuple[str, str]] = frozenset()
    """The (key column, key) of every persona, arc and topic its training pairs name (named_keys)."""
    index: pl.DataFrame | None = None
    """The rows of the index of the JSONL's lines for the chunk's training pairs (pairs_index.index_rows)."""


def _read_pairs(ws: Workspace, ids: list[str], splits: list[str]) -> pl.DataFrame:
    """The training pairs of `ids` (every column but created_at) with each one's member position `ord`
    (from 1) and split, in (ord, turn_number) order. Bounded by the first and last id, so that row
    groups of other conversations are skipped by their statistics."""
    members = pl.LazyFrame({"conversation_id": ids, "split": splits, "ord": range(1, len(ids) + 1)},
                           schema={"conversation_id": pl.String, "split": pl.String, "ord": pl.Int64})
    low, high = min(ids), max(ids)
    return ws.read("training_pairs", lambda rows: (
        rows.filter(pl.col("conversation_id").is_between(pl.lit(low), pl.lit(high))).drop("created_at")
        .join(members, on="conversation_id", how="inner").sort("ord", "turn_number")), seq=True)


def iter_chunks(ws: Workspace, ids: list[str], splits: list[str], chunk: int = CHUNK,
                name: str = "", buffers: Buffers | None = None) -> Iterator[Chunk]:
    """The members `ids` (with their `splits`) in order, `chunk` at a time, serialized. Each chunk's JSONL
    is written into the next buffer of `buffers` (by default one buffer: a chunk is valid until the
    next is made)."""
    lookup = _lookup(ws)
    buffers = buffers or Buffers()
    for start in range(0, len(ids), chunk):
        part, part_splits = ids[start:start + chunk], splits[start:start + chunk]
        frame = _read_pairs(ws, part, part_splits)
        counted = dict(frame.group_by("ord").len().iter_rows()) if frame.height else {}
        counts = [counted.get(o, 0) for o in range(1, len(part) + 1)]
        empty = [cid for cid, n in zip(part, counts, strict=True) if n == 0]
        if empty:
            where = f" of training file {name!r}" if name else ""
            raise TrainingFileError(f"conversation {empty[0]!r}{where} has no training pairs any more "
                                    f"({len(empty)} such). Fix: enrich it again, or remove it from the "
                                    f"training file.")
        rows, named = records_lines(frame), named_keys(frame)
        shaped = _shaped(frame.drop(SEQ), lookup)
        jsonl = buffers.ndjson(shaped.select("pair").unnest("pair"))
        heads = _ndjson(shaped.unique("ord", keep="first", maintain_order=True)
                        .select("conversation_id", "conversation_metadata", "split")).split(b"\n")[:-1]
        yield Chunk(part, part_splits, heads, counts, jsonl, rows, named, index_rows(frame))


def jsonl_sha256(ws: Workspace, ids: list[str], splits: list[str], name: str = "") -> str:
    """The sha256 of the training.jsonl a version with these members and splits has: computed without
    writing it (the records hash of versions made before RecordsHash)."""
    digest = hashlib.sha256()
    for part in iter_chunks(ws, ids, splits, CHUNK, name):
        digest.update(part.jsonl)
    return digest.hexdigest()


# -- the records hash ----------------------------------------------------------------------------------


RECORDS_PREFIX = "records-2:"
"""How a records hash of this definition starts (one made before it is a bare sha256 of training.jsonl)."""
KEY_COLUMNS = ("persona_key", "arc_key", "topic_key")


def records_lines(frame: pl.DataFrame) -> bytes:
    """A line per training pair of `frame` (in its order): conversation id, split, pair id and _seq, the
    stamp of the append that wrote the row (no two appends share one, and compaction keeps it)."""
    if not frame.height:
        return b""
    line = pl.concat_str(pl.col("conversation_id"), pl.col("split"), pl.col("pair_id"),
                         pl.col(SEQ).cast(pl.String), separator="\t")
    return (frame.select(line.str.join("\n")).item() + "\n").encode()


def named_keys(frame: pl.DataFrame) -> frozenset[tuple[str, str]]:
    """The (key column, key) of every persona, arc and topic the training pairs of `frame` name."""
    return frozenset((column, key) for column in KEY_COLUMNS for key in frame[column].unique().to_list())


class RecordsHash:
    """A version's records hash: what a build of its members reads, made without serializing it. The sha256
    of a header (this definition and the export code's constants), a line per training pair of the members
    in order (records_lines: conversation, split, pair id and the row's append stamp), then the names the
    scaffolding gives each persona, arc and topic they use. It changes when a member is re-enriched (even to
    the same text), loses or gains a training pair, moves split, or a persona, arc or topic it uses is
    renamed; the training pairs' text is fixed by the rows' stamps."""

    def __init__(self, ws: Workspace) -> None:
        self.digest = hashlib.sha256(f"brightrun-records-2\n{emotions.METHOD}\n{sorted(scoring.DIMENSIONS)}\n"
                                     .encode())
        self.named: set[tuple[str, str]] = set()
        self.lookup = _lookup(ws)

    def add(self, rows: bytes, named: frozenset[tuple[str, str]]) -> None:
        self.digest.update(rows)
        self.named |= named

    def hexdigest(self) -> str:
        digest = self.digest.copy()
        digest.update(b"--\n")
        for column, key in sorted(self.named):
            names = [self.lookup[f].get(key) for f, c in _KEYED.items() if c == column]
            digest.update(orjson.dumps([column, key, names]) + b"\n")
        return RECORDS_PREFIX + digest.hexdigest()


def records_hash_of(ws: Workspace, ids: list[str], splits: list[str]) -> str:
    """The RecordsHash of members `ids` with `splits`, from a narrow read of their training pairs (ids,
    stamps and keys: a few seconds for a million pairs, where serializing them takes tens)."""
    made = RecordsHash(ws)
    members = pl.LazyFrame({"conversation_id": ids, "split": splits, "ord": range(1, len(ids) + 1)},
                           schema={"conversation_id": pl.String, "split": pl.String, "ord": pl.Int64})
    if ids:
        low, high = min(ids), max(ids)
        frame = ws.read("training_pairs", lambda rows: (
            rows.filter(pl.col("conversation_id").is_between(pl.lit(low), pl.lit(high)))
            .select("conversation_id", "pair_id", "turn_number", *KEY_COLUMNS, SEQ)
            .join(members, on="conversation_id", how="inner").sort("ord", "turn_number")), seq=True)
        made.add(records_lines(frame), named_keys(frame))
    return made.hexdigest()


def records_match(ws: Workspace, v) -> bool:  # noqa: ANN001 - a core.Version (not imported: core imports this)
    """Whether the members of version `v` still have the records it was made with. A version made before
    the records hash had its prefix holds the sha256 of its training.jsonl, which is made again to compare."""
    if v.records_hash.startswith(RECORDS_PREFIX):
        return records_hash_of(ws, v.member_ids, v.splits) == v.records_hash
    return jsonl_sha256(ws, v.member_ids, v.splits, v.name) == v.records_hash
