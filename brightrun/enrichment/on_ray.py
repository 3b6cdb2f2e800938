"""`brightrun enrich --engine ray`: the pure part of enrichment (pipeline.compute_chunk) in Ray tasks over the
published Delta tables; this process picks the conversations, then commits what the tasks return through the
store, chunk by chunk, as a local run does. The rows are those of a local run (tests/test_ray.py).

What moves: the driver reads the pending conversations' rows (one per conversation) from the published
`conversations` table through Ray and sends them, with the scaffolding, to every task once (Ray's object
store); each task reads its share of the published `turns` table itself. Turns are grouped into chunks by
Ray (a shuffle keyed by chunk number), each chunk is enriched in one task, and its training pairs, quality
rows and bad records come back to the driver as Arrow IPC bytes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime

import orjson
import polars as pl
import pyarrow as pa

from brightrun.enrichment.pipeline import (
    Chunk,
    ChunkRows,
    EnrichResult,
    _status_rows,
    commit_chunk,
    compute_chunk,
    pending_ids,
)
from brightrun.scaffolding import Scaffolding
from brightrun.workspace import Workspace, utcnow
from brightrun.workspace.ray_engine import published_dataset, start_ray

CONVERSATION_COLUMNS = ["conversation_id", "persona_key", "arc_key", "topic_key", "template_key", "template_version",
                        "tier", "provider", "model", "is_scripted", "turn_count"]
TURN_COLUMNS = ["conversation_id", "turn_number", "role", "content"]
NO_TURNS = {"conversation_id": pl.String, "turn_number": pl.Int64, "role": pl.String, "content": pl.String}


def _ipc(frame: pl.DataFrame | None) -> bytes | None:
    return None if frame is None else frame.write_ipc(None).getvalue()


def _frame(data: bytes | None) -> pl.DataFrame | None:
    return None if data is None else pl.read_ipc(data)


def _pending(batch: pa.Table, chunk_of: pl.DataFrame) -> pa.Table:
    """Rows of pending conversations only, each with its chunk number."""
    return pl.from_arrow(batch).join(chunk_of, on="conversation_id", how="inner").to_arrow()


def _enrich_group(turns: pa.Table, conversations: pl.DataFrame, scaffolding: Scaffolding,
                  now: datetime) -> pa.Table:
    """One chunk's turns (every turn of its conversations) -> one row: the chunk's computed rows."""
    frame = pl.from_arrow(turns)
    number = int(frame["chunk"][0])
    rows = _compute(number, frame.drop("chunk"), conversations, scaffolding, now)
    return pa.table({"chunk": [number], "pairs": [_ipc(rows.pairs)], "quality": [_ipc(rows.quality)],
                     "bad": [orjson.dumps(rows.bad)]})


def _compute(number: int, turns: pl.DataFrame, conversations: pl.DataFrame, scaffolding: Scaffolding,
             now: datetime) -> ChunkRows:
    mine = conversations.filter(pl.col("chunk") == number).drop("chunk")
    return compute_chunk(Chunk(mine["conversation_id"].to_list(), mine, turns, now), scaffolding)


def enrich_on_ray(ws: Workspace, *, force: bool = False, chunk_size: int = 5000,
                  progress: Callable[[int, int], None] | None = None) -> EnrichResult:
    """`enrich` with the chunks computed by Ray Data (see the module's docstring)."""
    ray = start_ray()
    scaffolding = ws.scaffolding
    todo = pending_ids(ws, force)
    result = EnrichResult()
    with ws.lock("enrichment", timeout=5):
        if not todo:
            return result
        now = utcnow()
        ws.append("conversation_status", _status_rows(todo, "enrichment_in_progress", now))
        chunk_of = pl.DataFrame({"conversation_id": todo, "chunk": [i // chunk_size for i in range(len(todo))]},
                                schema={"conversation_id": pl.String, "chunk": pl.Int64})
        read = published_dataset(ws, "conversations", CONVERSATION_COLUMNS).map_batches(
            _pending, fn_kwargs={"chunk_of": chunk_of}, batch_format="pyarrow")
        conversations = pl.from_arrow(pa.concat_tables(ray.get(read.to_arrow_refs())))
        conversations = chunk_of.join(conversations.drop("chunk"), on="conversation_id", how="inner",
                                      maintain_order="left")  # in the order of todo
        computed = (published_dataset(ws, "turns", TURN_COLUMNS)
                    .map_batches(_pending, fn_kwargs={"chunk_of": chunk_of}, batch_format="pyarrow")
                    .groupby("chunk")
                    .map_groups(_enrich_group, fn_kwargs={"conversations": conversations, "scaffolding": scaffolding,
                                                          "now": now}, batch_format="pyarrow"))
        by_chunk = {row["chunk"]: row for row in computed.iter_rows()}
        done = 0
        for number in range(-(-len(todo) // chunk_size)):
            ids = todo[number * chunk_size:(number + 1) * chunk_size]
            row = by_chunk.get(number)
            if row is None:  # no conversation of the chunk has a turn: nothing for Ray to group
                rows = _compute(number, pl.DataFrame(schema=NO_TURNS), conversations, scaffolding, now)
            else:
                rows = ChunkRows(_frame(row["pairs"]), _frame(row["quality"]),
                                 {k: tuple(v) for k, v in orjson.loads(row["bad"]).items()})
            commit_chunk(ws, ids, now, _with_missing(rows, ids, conversations), result)
            done += len(ids)
            if progress:
                progress(done, len(todo))
    ws.compact(tables=["training_pairs", "conversation_status", "enrichment_errors", "conversation_quality"],
               min_parts=8)
    return result


def _with_missing(rows: ChunkRows, ids: list[str], conversations: pl.DataFrame) -> ChunkRows:
    """A pending id the published `conversations` table lacks (it was deleted meanwhile) fails with a reason."""
    known = set(conversations["conversation_id"].to_list())
    missing = {c: ("the conversation is not in the published conversations table",
                   "run `brightrun publish`, then enrich again") for c in ids if c not in known}
    return dataclasses.replace(rows, bad=rows.bad | missing) if missing else rows
