"""Reading a built training.jsonl back for an export (brightrun.training_files.pairs_file): the records are
those a whole parse of every line gives, whatever the block size, and the bytes are still checked."""

from __future__ import annotations

import gc
import hashlib
from itertools import groupby

import orjson
import polars as pl
import pytest

import brightrun.training_files as tf
from brightrun.exports.files import collector_paused
from brightrun.exports.records import sft_records_from_enriched
from brightrun.training_files import pairs_file
from brightrun.training_files.export import records_of


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


@pytest.mark.parametrize("block", [pairs_file.BLOCK, 4096, 100])
def test_records_equal_those_of_a_whole_parse_of_every_line(demo_copy, monkeypatch, block):
    built = _version(demo_copy)
    expected = _whole_parse(built.jsonl_path)
    monkeypatch.setattr(pairs_file, "BLOCK", block)  # 100 bytes: every line is longer than a block
    got = records_of(demo_copy, "r")
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

    def refuse(*args, **kwargs):
        raise pl.exceptions.ComputeError("cannot read")
    monkeypatch.setattr(pairs_file.pl, "read_ndjson", refuse)
    assert records_of(demo_copy, "r") == expected
    # the pairs come out whatever the bytes are, but the digest says whether they are the version's
    digest = hashlib.sha256()
    assert sum(len(p) for p in pairs_file.member_pairs(built.jsonl_path, digest)) == built.training_pairs
    assert digest.hexdigest() == hashlib.sha256(built.jsonl_path.read_bytes()).hexdigest()


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
