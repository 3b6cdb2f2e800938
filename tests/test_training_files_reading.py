"""Reading a built training.jsonl back for an export (brightrun.training_files.pairs_file): the records are
those a whole parse of every line gives, whatever the block size, with the build's index of the lines
(pairs_index) and without it (a build made before it), and the bytes are still checked."""

from __future__ import annotations

import gc
import hashlib
from itertools import groupby

import orjson
import polars as pl
import pyarrow.parquet as pq
import pytest

import brightrun.training_files as tf
from brightrun.errors import TrainingFileError
from brightrun.exports.files import collector_paused
from brightrun.exports.records import sft_records_from_enriched
from brightrun.training_files import pairs_file, pairs_index
from brightrun.training_files.export import records_of
from brightrun.workspace.files import file_sha256


def _version(ws, n: int = 40):
    ids = ws.sql("SELECT conversation_id FROM conversations WHERE enrichment_status = 'completed' "
                 "ORDER BY conversation_id")["conversation_id"].to_list()[:n]
    tf.create_training_file(ws, "r")
    tf.add_conversations(ws, "r", ids)
    return tf.build_version(ws, "r")


def _whole_parse(path) -> list[dict]:
    """The records as the export made them before: every line parsed whole by orjson."""
    pairs = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    meta = {"dataset_name": "r-v2"}
    return [_record(list(group), meta) for _, group in groupby(pairs, key=lambda p: p["conversation_id"])]


def _record(pairs: list[dict], meta: dict) -> dict:
    return sft_records_from_enriched({"training_pairs": pairs, "dataset_metadata": meta}, split=pairs[0]["split"])


def _without_index(built) -> None:
    """The build as one made before the index: no pairs.parquet, no pairs_index_sha256 in its manifest."""
    (built.jsonl_path.parent / pairs_index.NAME).unlink()
    manifest = orjson.loads(built.manifest_path.read_bytes())
    del manifest["pairs_index_sha256"]
    built.manifest_path.write_bytes(orjson.dumps(manifest))


@pytest.mark.parametrize("indexed", [True, False])
@pytest.mark.parametrize("block", [pairs_file.BLOCK, 4096, 100])
def test_records_equal_those_of_a_whole_parse_of_every_line(demo_copy, monkeypatch, block, indexed):
    monkeypatch.setattr("brightrun.training_files.build.CHUNK", 7)  # the index in row groups of 7 conversations
    built = _version(demo_copy)
    assert pq.ParquetFile(built.jsonl_path.parent / pairs_index.NAME).num_row_groups == 6  # 40 conversations
    expected = _whole_parse(built.jsonl_path)
    if not indexed:
        _without_index(built)
    used = {"indexed": 0, "member": 0}
    for name in used:
        real_reader = getattr(pairs_file, f"{name}_pairs")
        monkeypatch.setattr(f"brightrun.training_files.export.{name}_pairs",
                            lambda *a, _r=real_reader, _n=name: used.__setitem__(_n, used[_n] + 1) or _r(*a))
    monkeypatch.setattr(pairs_file, "BLOCK", block)  # 100 bytes: every line is longer than a block
    got = records_of(demo_copy, "r")
    assert used == {"indexed": int(indexed), "member": int(not indexed)}
    assert len(got) == 40 and got == expected
    # the few fields taken from polars have the types a whole parse gives them (a score is a float)
    scores = [s for r in got for s in r["metadata"]["quality_scores"].values()]
    assert scores and all(type(s) is float for s in scores)
    # and no whole parse of any but each conversation's last pair
    parsed = []
    real = orjson.loads
    monkeypatch.setattr(pairs_file.orjson, "loads", lambda b: parsed.append(b if isinstance(b, str) else bytes(b)) or real(b))
    records_of(demo_copy, "r")
    assert len([b for b in parsed if isinstance(b, bytes) and b.startswith(b'{"conversation_history"')]) == 40


def test_a_block_polars_cannot_read_is_parsed_whole_and_the_bytes_are_still_checked(demo_copy, monkeypatch):
    built = _version(demo_copy, 12)
    expected = _whole_parse(built.jsonl_path)
    _without_index(built)

    def refuse(*args, **kwargs):
        raise pl.exceptions.ComputeError("cannot read")
    monkeypatch.setattr(pairs_file.pl, "read_ndjson", refuse)
    assert records_of(demo_copy, "r") == expected
    # the pairs come out whatever the bytes are, but the digest says whether they are the version's
    digest = hashlib.sha256()
    assert sum(len(p) for p in pairs_file.member_pairs(built.jsonl_path, digest)) == built.training_pairs
    assert digest.hexdigest() == hashlib.sha256(built.jsonl_path.read_bytes()).hexdigest()


def _rewrite_index(built, change) -> None:
    """Replace the build's index with `change(index)`, its manifest saying the new bytes are the build's."""
    path = built.jsonl_path.parent / pairs_index.NAME
    change(pl.read_parquet(path)).write_parquet(path)
    manifest = orjson.loads(built.manifest_path.read_bytes())
    manifest["pairs_index_sha256"] = file_sha256(path)
    built.manifest_path.write_bytes(orjson.dumps(manifest))


def test_an_index_that_is_not_the_builds_is_not_used(demo_copy, monkeypatch):
    built = _version(demo_copy, 12)
    expected = _whole_parse(built.jsonl_path)
    path = built.jsonl_path.parent / pairs_index.NAME
    frame = pl.read_parquet(path)
    # other bytes than the build recorded, with other answers: the JSONL is read alone, the records are right
    frame.with_columns(pl.lit("forged").alias("target_response")).write_parquet(path)
    monkeypatch.setattr("brightrun.training_files.export.indexed_pairs", None)  # never called
    assert records_of(demo_copy, "r") == expected


@pytest.mark.parametrize("change, says", [
    (lambda f: f.with_columns(pl.col("id").reverse()), "holds another"),
    (lambda f: f.head(f.height - 1), "more lines than its index"),
    (lambda f: pl.concat([f, f.tail(1)]), "lines, its index"),
])
def test_an_index_that_disagrees_with_the_lines_is_refused(demo_copy, change, says):
    built = _version(demo_copy, 12)
    _rewrite_index(built, change)
    with pytest.raises(TrainingFileError, match=says):
        records_of(demo_copy, "r")


def test_the_index_holds_a_row_per_line_in_order(demo_copy):
    built = _version(demo_copy, 12)
    index = pl.read_parquet(built.jsonl_path.parent / pairs_index.NAME)
    pairs = [orjson.loads(line) for line in built.jsonl_path.read_bytes().splitlines()]
    assert index.to_dicts() == [
        {"conversation_id": p["conversation_id"], "id": p["id"], "turn_number": p["turn_number"],
         "target_response": p["target_response"], "split": p["split"],
         "quality_score": p["training_metadata"]["quality_score"]} for p in pairs]
    manifest = orjson.loads(built.manifest_path.read_bytes())
    assert manifest["pairs_index_sha256"] == hashlib.sha256(
        (built.jsonl_path.parent / pairs_index.NAME).read_bytes()).hexdigest()


def test_the_collector_is_paused_inside_and_left_off_when_it_was_off():
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def _reader_threads() -> list:
    import threading
    return [t for t in threading.enumerate() if t.name == "training-jsonl-reader"]


def test_the_read_ahead_falls_back_to_the_page_cache_and_stops_with_its_reader(demo_copy, monkeypatch, tmp_path):
    import errno
    import fcntl
    import os

    built = _version(demo_copy, 12)
    data = built.jsonl_path.read_bytes()
    whole = hashlib.sha256(data).hexdigest()
    monkeypatch.setattr(pairs_file._ReadAhead, "RAW", 4096)  # many raw blocks, lines across them

    def read_all() -> tuple[bytes, str]:
        digest = hashlib.sha256()
        got = b"".join(bytes(block) for block in pairs_file._blocks(built.jsonl_path, digest))
        return got, digest.hexdigest()
    assert read_all() == (data, whole)
    # O_DIRECT refused when reading (some filesystems open with it and refuse the reads): through the cache
    real_readv, refused = os.readv, []

    def readv(fd, buffers):
        if not refused and fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            refused.append(fd)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_readv(fd, buffers)
    monkeypatch.setattr(pairs_file.os, "readv", readv)
    assert read_all() == (data, whole)
    direct = pairs_file._open(built.jsonl_path)
    os.close(direct[0])
    assert bool(refused) == direct[1]  # (a filesystem that refuses O_DIRECT at open, such as tmpfs, never reads so)
    monkeypatch.setattr(pairs_file.os, "readv", real_readv)
    # a filesystem without O_DIRECT
    monkeypatch.setattr(pairs_file, "_open", lambda path: (os.open(path, os.O_RDONLY), False))
    assert read_all() == (data, whole)
    # a reader that stops early leaves no thread behind; a read error reaches the reader
    blocks = pairs_file._blocks(built.jsonl_path, hashlib.sha256())
    next(blocks)
    blocks.close()
    assert not _reader_threads()

    def broken(fd, buffers):
        raise OSError(errno.EIO, "Input/output error")
    monkeypatch.setattr(pairs_file.os, "readv", broken)
    with pytest.raises(OSError, match="Input/output"):
        read_all()
    assert not _reader_threads()
