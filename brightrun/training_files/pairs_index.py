"""The index a build writes beside a version's training.jsonl: `pairs.parquet`, one row per line of the JSONL,
in the same order, with the few fields an SFT export takes from every training pair (conversation id, pair
id, turn number, answer, split, quality score).

An SFT record needs the whole of only each conversation's last pair (its history holds the turns before);
of the others it takes just those fields. Without the index an export parses those fields out of every
line of the JSONL (about 4 GB for a million pairs, each line carrying the whole conversation before it),
which was most of its reading time; with it, the export reads the index's columns and parses only the
last line of each conversation. The build makes the index's rows from the same rows it serializes, and
the manifest records the index's sha256 (`pairs_index_sha256`); an export uses the index only when its
bytes hash to that, and still checks the JSONL's own sha256 and that each parsed line is the pair the index
says. Versions built before the index (no `pairs_index_sha256` in their manifest) are read as before.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

NAME = "pairs.parquet"
COLUMNS = {"conversation_id": pl.String, "id": pl.String, "turn_number": pl.Int64, "target_response": pl.String,
           "split": pl.String, "quality_score": pl.Float64}


def index_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """The index rows of a chunk's training pairs (`frame`: rows of the training_pairs table with their
    member's split, in the order they are written)."""
    return frame.select(pl.col("conversation_id"), pl.col("pair_id").alias("id"), pl.col("turn_number"),
                        pl.col("target_response"), pl.col("split"), pl.col("quality_score")).cast(COLUMNS)


class IndexWriter:
    """Writes the index a chunk at a time (a row group each), so it is never in memory whole."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.schema = pl.DataFrame(schema=COLUMNS).to_arrow().schema
        self.handle = open(path, "wb")  # noqa: SIM115 - closed by finish or close
        self.writer = pq.ParquetWriter(self.handle, self.schema, compression="zstd")

    def add(self, rows: pl.DataFrame) -> None:
        if rows.height:
            self.writer.write_table(pa.Table.from_batches(rows.to_arrow().to_batches(), self.schema))

    def finish(self) -> str:
        """Close the file, synced; its sha256 (the caller syncs the folder it is in)."""
        self.writer.close()
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        return file_sha256(self.path)

    def close(self) -> None:
        """Close without finishing (after an error: the folder is thrown away)."""
        try:
            self.writer.close()
        finally:
            self.handle.close()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(8 << 20):
            digest.update(block)
    return digest.hexdigest()


def read_index(folder: Path, manifest: dict) -> pl.DataFrame | None:
    """The index of the build in `folder` whose manifest is `manifest`, or None when the build has none or its
    bytes are not the ones the build recorded (the export then reads the JSONL alone)."""
    sha = manifest.get("pairs_index_sha256")
    path = folder / NAME
    if not sha or not path.exists() or file_sha256(path) != sha:
        return None
    try:
        frame = pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError):
        return None
    return frame if dict(frame.schema) == COLUMNS else None
