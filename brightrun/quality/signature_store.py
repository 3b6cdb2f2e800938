"""Each conversation's near-duplicate features, computed once and kept in the workspace.

What is kept, per conversation: the exact-duplicate key of its text (blake2b of the normalized text, as
`duplicates.exact_key`), its MinHash signature (`duplicates.signatures`) and its sorted distinct shingle
hashes (for exact Jaccard checks). All three are functions of the normalized text alone, so the key also
names the text they were made from. The text is the conversation's turns in order, joined by newlines (as
training files read them). Each entry also keeps the fingerprint of the turns it was made from (DuckDB's
hash of each turn's number and content, xor-ed over the conversation's turns): an entry is used only while
the conversation's turns still have that fingerprint, so changed turns are signed again. Enrichment signs
every conversation it completes, and a training file signs the members it finds unsigned, so adding members
to a training file reads these instead of shingling and signing every text again.

Kept in `cache/conversation_signatures/<METHOD>/` as Parquet parts (one per enrichment chunk or add, named
in write order; the latest entry of a conversation wins). Safe to delete: the next add signs what it misses.
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from brightrun.quality import duplicates
from brightrun.workspace.files import atomic_write_bytes

if TYPE_CHECKING:
    from brightrun.workspace import Workspace

METHOD = f"1-p{duplicates.NUM_PERM}-s3-seed1"
"""The scheme of the kept features (permutations, shingle size, seed); another scheme, another folder."""

COMPACT_PARTS = 32
"""A write that leaves more parts than this merges them into one."""


@dataclass(frozen=True)
class Signed:
    """Features of conversations `ids`, row k for ids[k]: exact keys, signatures (len x NUM_PERM uint32) and,
    when asked for, shingle sets."""

    ids: list[str]
    keys: list[str]
    signatures: np.ndarray
    sets: list[np.ndarray] | None = None

    def by_id(self) -> dict[str, tuple[str, np.ndarray]]:
        return {cid: (self.keys[k], self.signatures[k]) for k, cid in enumerate(self.ids)}


def folder(ws: Workspace) -> Path:
    return ws.root / "cache" / "conversation_signatures" / METHOD


def compute(ids: Sequence[str], texts: Sequence[str]) -> Signed:
    """The features of `texts` (one per id), computed in one pass over each text: a pure function."""
    sets: list[np.ndarray] = []
    keys: list[str] = []
    sig = (duplicates.signatures(list(texts), sets=sets, keys=keys) if len(texts)
           else np.empty((0, duplicates.NUM_PERM), np.uint32))
    return Signed(list(ids), keys, sig, sets)


def texts_of_turns(turns: pl.DataFrame) -> dict[str, str]:
    """{conversation_id: its turns' content in turn order, joined by newlines} of turns rows."""
    frame = (turns.sort("conversation_id", "turn_number").group_by("conversation_id", maintain_order=True)
             .agg(pl.col("content").str.join("\n")))
    return dict(zip(frame["conversation_id"].to_list(), frame["content"].to_list(), strict=True))


_FINGERPRINTS = "SELECT conversation_id, bit_xor(hash(turn_number, content)) AS turns_hash FROM turns"


def fingerprints(ws: Workspace, ids: Sequence[str] | None = None) -> dict[str, int]:
    """{conversation_id: the fingerprint of its turns} of `ids` (every conversation's when None: one scan of
    the turns table, cheaper than filtering it by many ids)."""
    frame = fingerprint_frame(ws) if ids is None else ws.sql(
        _FINGERPRINTS + " WHERE conversation_id IN (SELECT unnest(?)) GROUP BY 1", [list(ids)])
    return dict(zip(frame["conversation_id"].to_list(), frame["turns_hash"].to_list(), strict=True))


def fingerprint_frame(ws: Workspace) -> pl.DataFrame:
    """(conversation_id, turns_hash) of every conversation with turns: `fingerprints` as a frame."""
    return ws.sql(_FINGERPRINTS + " GROUP BY 1")


def current(ws: Workspace, turns: pl.DataFrame, rows: int) -> tuple[Iterator[Signed], list[str]]:
    """The kept features, with their sets, of the conversations of `turns` (`fingerprint_frame`) whose latest
    entry was made from their current turns, about `rows` at a time (memory holds one batch); and the ids, sorted,
    of those with no such entry. The parts are opened at once, so a compaction meanwhile cannot take them away."""
    with ws.lock("conversation-signatures"):
        handles = [path.open("rb") for path in _parts(folder(ws))]
    try:
        index = pl.concat([pl.DataFrame(schema={"_row": pl.UInt32, "conversation_id": pl.String,
                                                "turns_hash": pl.UInt64, "_part": pl.Int32})] + [
            pl.read_parquet(h, columns=["conversation_id", "turns_hash"]).with_row_index("_row")
            .with_columns(pl.lit(k, pl.Int32).alias("_part")) for k, h in enumerate(handles)], how="vertical_relaxed")
        valid = (index.unique("conversation_id", keep="last", maintain_order=True)
                 .join(turns.select("conversation_id", pl.col("turns_hash").cast(pl.UInt64)),
                       on=["conversation_id", "turns_hash"]))
        missing = turns.join(valid, on="conversation_id", how="anti")["conversation_id"].sort().to_list()
    except BaseException:
        for h in handles:
            h.close()
        raise
    return _batches(handles, valid.select("_part", "_row"), rows), missing


def _batches(handles: list, chosen: pl.DataFrame, rows: int) -> Iterator[Signed]:
    columns = ["conversation_id", "text_key", "signature", "shingles"]
    try:
        for k, handle in enumerate(handles):
            wanted = np.sort(chosen.filter(pl.col("_part") == k)["_row"].to_numpy().astype(np.int64))
            offset = 0
            for batch in pq.ParquetFile(handle).iter_batches(batch_size=rows, columns=columns):
                lo, hi = np.searchsorted(wanted, [offset, offset + batch.num_rows])
                offset += batch.num_rows
                if lo == hi:
                    continue
                picked = batch.take(wanted[lo:hi] - (offset - batch.num_rows))
                sig = np.frombuffer(b"".join(picked.column("signature").to_pylist()), dtype=np.uint32)
                yield Signed(picked.column("conversation_id").to_pylist(), picked.column("text_key").to_pylist(),
                             sig.reshape(-1, duplicates.NUM_PERM),
                             [np.frombuffer(b, dtype=np.uint32) for b in picked.column("shingles").to_pylist()])
    finally:
        for h in handles:
            h.close()


def texts_by_range(ws: Workspace, ids: list[str], rows: int) -> Iterator[tuple[list[str], list[str]]]:
    """(ids, texts) of the conversations `ids` (sorted), about `rows` at a time: each read as a range of ids,
    which the turns' files, sorted by conversation, answer from a few row groups."""
    for k in range(0, len(ids), rows):
        chunk = ids[k:k + rows]
        wanted = pl.Series(chunk, dtype=pl.String).implode()
        frame = ws.read("turns", lambda r, lo=chunk[0], hi=chunk[-1], wanted=wanted: r.filter(
            pl.col("conversation_id").is_between(pl.lit(lo), pl.lit(hi)) & pl.col("conversation_id").is_in(wanted))
            .select("conversation_id", "turn_number", "content"))
        texts = texts_of_turns(frame)
        yield list(texts), list(texts.values())


def write(ws: Workspace, signed: Signed, turns: Mapping[str, int] | None = None) -> None:
    """Keep `signed` (with its sets) as a new part, each entry with its turns' fingerprint (from `turns`, else
    read); merge the parts once there are more than COMPACT_PARTS."""
    if not signed.ids:
        return
    assert signed.sets is not None
    turns = fingerprints(ws, signed.ids) if turns is None else turns
    frame = pl.DataFrame({
        "conversation_id": signed.ids, "turns_hash": [turns.get(cid) for cid in signed.ids], "text_key": signed.keys,
        "signature": [row.tobytes() for row in np.ascontiguousarray(signed.signatures, dtype=np.uint32)],
        "shingles": [s.astype(np.uint32).tobytes() for s in signed.sets]},
        schema={"conversation_id": pl.String, "turns_hash": pl.UInt64, "text_key": pl.String, "signature": pl.Binary,
                "shingles": pl.Binary})
    _write_part(folder(ws), frame)
    if len(_parts(folder(ws))) > COMPACT_PARTS:
        compact(ws)


def _write_part(where: Path, frame: pl.DataFrame, name: str | None = None) -> Path:
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    path = where / (name or f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet")  # names sort in write order
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _parts(where: Path) -> list[Path]:
    return sorted(where.glob("*.parquet")) if where.exists() else []


def _read(where: Path, ids: Sequence[str] | None, columns: list[str]) -> pl.DataFrame:
    """The latest entry of each id (all ids when None) among the parts, `columns` and conversation_id."""
    parts = _parts(where)
    types = {"turns_hash": pl.UInt64, "text_key": pl.String, "signature": pl.Binary, "shingles": pl.Binary}
    schema = {"conversation_id": pl.String, **{c: types[c] for c in columns}}
    if not parts:
        return pl.DataFrame(schema=schema)
    frames = []
    for number, path in enumerate(parts):
        try:
            frame = pl.scan_parquet(path).select("conversation_id", *columns)
            if ids is not None:
                frame = frame.filter(pl.col("conversation_id").is_in(pl.Series(list(ids), dtype=pl.String).implode()))
            frames.append(frame.with_columns(pl.lit(number).alias("_part")).collect())
        except FileNotFoundError:  # merged away by a concurrent compact: its rows are in the merged part
            continue
    return (pl.concat(frames).sort("_part").unique("conversation_id", keep="last", maintain_order=True)
            .drop("_part"))


def load(ws: Workspace, ids: Sequence[str], turns: Mapping[str, int]) -> Signed:
    """The kept keys and signatures of those of `ids` that have them, made from turns with the fingerprints
    `turns` ({id: fingerprint}, as `fingerprints` gives them), in `ids`' order."""
    frame = _read(folder(ws), ids, ["turns_hash", "text_key", "signature"])
    where = {cid: k for k, (cid, made) in enumerate(zip(frame["conversation_id"].to_list(),
                                                        frame["turns_hash"].to_list(), strict=True))
             if made is not None and made == turns.get(cid)}
    found = [cid for cid in ids if cid in where]
    rows = [where[cid] for cid in found]
    frame = frame[rows] if rows else frame.clear()
    sig = np.frombuffer(b"".join(frame["signature"].to_list()), dtype=np.uint32).reshape(-1, duplicates.NUM_PERM)
    return Signed(found, frame["text_key"].to_list(), sig.copy())


def load_sets(ws: Workspace, ids: Sequence[str]) -> dict[str, np.ndarray]:
    """{id: sorted distinct shingle hashes} of those of `ids` that have them kept."""
    frame = _read(folder(ws), ids, ["shingles"])
    return {cid: np.frombuffer(blob, dtype=np.uint32)
            for cid, blob in zip(frame["conversation_id"].to_list(), frame["shingles"].to_list(), strict=True)}


def sign_missing(ws: Workspace, texts: Mapping[str, str], turns: Mapping[str, int]) -> Signed:
    """Compute and keep the features of `texts` ({id: text}, made from turns with fingerprints `turns`);
    returns them, with their sets."""
    signed = compute(list(texts), list(texts.values()))
    write(ws, signed, turns)
    return signed


def compact(ws: Workspace) -> None:
    """Merge the parts into one (the latest entry of each conversation), under the workspace's lock."""
    where = folder(ws)
    with ws.lock("conversation-signatures"):
        parts = _parts(where)
        if len(parts) < 2:
            return
        merged = _read(where, None, ["turns_hash", "text_key", "signature", "shingles"])
        _write_part(where, merged, f"{parts[-1].stem}-merged.parquet")  # sorts before any part written since
        for path in parts:
            path.unlink(missing_ok=True)
