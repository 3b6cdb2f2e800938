"""`brightrun quality report --engine ray`: the duplicate-detection features (normalized-text keys, MinHash
signatures, shingle sets: duplicates.text_features) computed in Ray tasks over the published Delta tables.

What moves: each task reads its share of the published `training_pairs` (pair id and target response) or
`turns` table itself; conversation texts need every turn of a conversation, so turns are grouped by a hash of
the conversation id into buckets of about FEATURE_CHUNK conversations (a Ray shuffle). Each task returns, per
text, its id, its key, its 128 signature values and its shingle hashes (about 4 bytes per word). The driver
then links the candidate pairs (LSH, with --workers local processes) and builds the rest of the report
(score summary, diversity per cell) from the workspace, as a local run does: the same report.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

from brightrun.quality.duplicates import FEATURE_CHUNK, NUM_PERM, Features, text_features
from brightrun.workspace import Workspace
from brightrun.workspace.ray_engine import published_dataset, start_ray


def _rows(ids: list[str], features: Features) -> pa.Table:
    return pa.table({"id": ids, "key": features.keys,
                     "signature": [row.tobytes() for row in features.signatures],
                     "shingles": [s.astype(np.uint32).tobytes() for s in features.sets]})


def _pair_features(batch: pa.Table) -> pa.Table:
    frame = pl.from_arrow(batch)
    return _rows(frame["pair_id"].to_list(), text_features(frame["target_response"].to_list()))


def _bucket(batch: pa.Table, buckets: int) -> pa.Table:
    frame = pl.from_arrow(batch)
    return frame.with_columns((pl.col("conversation_id").hash(seed=0) % buckets).alias("bucket")).to_arrow()


def _conversation_features(turns: pa.Table) -> pa.Table:
    """Each conversation's turns joined in order (duplicates.conversation_texts), then their features."""
    texts = (pl.from_arrow(turns).sort("conversation_id", "turn_number")
             .group_by("conversation_id", maintain_order=True).agg(pl.col("content").str.join("\n")))
    return _rows(texts["conversation_id"].to_list(), text_features(texts["content"].to_list()))


def ray_features(ws: Workspace, which: str) -> tuple[list[str], Features]:
    """(ids, Features) of every conversation (which="conversations") or training pair, computed by Ray."""
    ray = start_ray()
    if which == "conversations":
        buckets = max(1, -(-int(ws.scalar("SELECT count(*) FROM conversations")) // FEATURE_CHUNK))
        computed = (published_dataset(ws, "turns", ["conversation_id", "turn_number", "content"])
                    .map_batches(_bucket, fn_kwargs={"buckets": buckets}, batch_format="pyarrow")
                    .groupby("bucket").map_groups(_conversation_features, batch_format="pyarrow"))
    else:
        computed = published_dataset(ws, "training_pairs", ["pair_id", "target_response"]).map_batches(
            _pair_features, batch_format="pyarrow", batch_size=FEATURE_CHUNK)
    refs = computed.to_arrow_refs()
    table = pa.concat_tables(ray.get(refs)) if refs else _rows([], Features([], np.empty((0, NUM_PERM)), []))
    signatures = np.frombuffer(b"".join(table["signature"].to_pylist()), dtype=np.uint32).reshape(-1, NUM_PERM)
    sets = [np.frombuffer(value, dtype=np.uint32) for value in table["shingles"].to_pylist()]
    return table["id"].to_pylist(), Features(table["key"].to_pylist(), signatures.copy(), sets)
