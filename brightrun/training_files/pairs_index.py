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

import os
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from brightrun.workspace.files import file_sha256

NAME = "pairs.parquet"
COMPRESSION = "snappy"
"""The cheapest of Parquet's codecs to write (a million pairs: 0.7 s and 54 MiB, against zstd's 1.0 s and 22 MiB
and 0.73 s and 464 MiB uncompressed, one core)."""
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
        self.writer = pq.ParquetWriter(self.handle, self.schema, compression=COMPRESSION)

    def add(self, rows: pl.DataFrame) -> None:
        if rows.height:
            self.writer.write_table(pa.Table.from_batches(rows.to_arrow().to_batches(), self.schema))

    def write(self, pieces: list[pl.DataFrame]) -> None:
        """`add` each of `pieces` (the build's writer thread calls this, as it does StreamFile.write)."""
        for rows in pieces:
            self.add(rows)

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


def verified(folder: Path, manifest: dict) -> Path | None:
    """The index of the build in `folder` whose manifest is `manifest`, or None when the build has none, or its
    bytes are not the ones the build recorded, or its columns are not the index's (the export then reads the
    JSONL alone)."""
    sha = manifest.get("pairs_index_sha256")
    path = folder / NAME
    if not sha or not path.exists() or file_sha256(path) != sha:
        return None
    try:
        schema = dict(pl.read_parquet_schema(path))
    except (OSError, pl.exceptions.PolarsError):
        return None
    return path if schema == COLUMNS else None


def batches(path: Path) -> Iterator[dict[str, list]]:
    """The index's rows, a row group (a build chunk) at a time, as {column: values}: never all in memory."""
    parquet = pq.ParquetFile(path)
    for group in range(parquet.num_row_groups):
        frame = pl.from_arrow(parquet.read_row_group(group))
        yield {column: frame[column].to_list() for column in COLUMNS}
