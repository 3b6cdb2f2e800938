"""The records hash of a training-file version (chunks.RecordsHash): made from a narrow read when a version
is made, made again by the build from the rows it serializes, and changed exactly when what a build would
read changes. Versions made before it (a bare sha256 of training.jsonl) still build, export and refuse."""

from __future__ import annotations

import hashlib

import orjson
import polars as pl
import pytest

import brightrun.training_files as tf
from brightrun.training_files.chunks import RECORDS_PREFIX, jsonl_sha256, records_hash_of, records_match
from brightrun.training_files.export import export_version


def _ids(ws, n):
    return ws.sql("SELECT conversation_id FROM conversations WHERE enrichment_status = 'completed' "
                  "ORDER BY conversation_id LIMIT ?", [n])["conversation_id"].to_list()


def _made(ws, name="f", n=5):
    tf.create_training_file(ws, name)
    return tf.add_conversations(ws, name, _ids(ws, n))


def test_the_build_makes_the_hash_the_add_made_for_any_number_of_workers(demo_copy):
    ws = demo_copy
    v = _made(ws, n=9)
    assert v.records_hash.startswith(RECORDS_PREFIX)
    assert records_hash_of(ws, v.member_ids, v.splits) == v.records_hash
    one = tf.build_version(ws, "f")
    manifest = orjson.loads(one.manifest_path.read_bytes())
    assert manifest["records_hash"] == v.records_hash
    from brightrun.training_files import build as build_module

    two = build_module.build_version(ws, "f", workers=2)
    assert two.jsonl_path.read_bytes() == one.jsonl_path.read_bytes()
    assert two.content_hash == one.content_hash


def test_compaction_keeps_the_hash(demo_copy):
    ws = demo_copy
    v = _made(ws)
    pair = ws.sql("SELECT * FROM training_pairs WHERE conversation_id NOT IN (SELECT unnest(?)) LIMIT 1",
                  [v.member_ids])
    ws.append("training_pairs", pair)  # another conversation's row: a delta part to compact
    ws.compact(min_parts=1)
    assert records_match(ws, tf.get_version(ws, "f"))
    tf.build_version(ws, "f")


@pytest.mark.parametrize("change", ["same text rewritten", "new text", "pair added", "arc renamed"])
def test_the_hash_changes_when_what_a_build_reads_changes(demo_copy, change):
    ws = demo_copy
    v = _made(ws)
    cid = v.member_ids[0]
    pairs = ws.sql("SELECT * FROM training_pairs WHERE conversation_id = ? ORDER BY turn_number", [cid])
    if change == "same text rewritten":  # a re-enrichment with the same result is still a new record
        ws.append("training_pairs", pairs.head(1))
    elif change == "new text":
        ws.append("training_pairs", pairs.head(1).with_columns(pl.lit("another answer").alias("target_response")))
    elif change == "pair added":
        last = pairs.tail(1)
        ws.append("training_pairs", last.with_columns(pl.lit(last["pair_id"][0] + "-more").alias("pair_id"),
                                                      (pl.col("turn_number") + 1).alias("turn_number")))
    else:
        arc = pairs["arc_key"][0]
        path = ws.scaffolding_dir / "emotional_arcs.yaml"
        text = path.read_text()
        assert f"key: {arc}\n" in text
        path.write_text(text.replace(f"key: {arc}\n    name: ", f"key: {arc}\n    name: Renamed ", 1))
        ws.reload_scaffolding()
    assert not records_match(ws, tf.get_version(ws, "f"))
    with pytest.raises(tf.TrainingFileError, match="cannot be rebuilt byte for byte"):
        tf.build_version(ws, "f")


def test_the_hash_covers_each_member_split(demo_copy):
    ws = demo_copy
    v = _made(ws, n=12)
    moved = [("train" if s != "train" else "test") for s in v.splits]
    assert records_hash_of(ws, v.member_ids, moved) != v.records_hash
    assert records_hash_of(ws, v.member_ids, list(v.splits)) == v.records_hash


def test_a_version_made_before_the_hash_still_builds_exports_and_refuses(demo_copy, tmp_path):
    ws = demo_copy
    v = _made(ws)
    legacy = jsonl_sha256(ws, v.member_ids, v.splits, "f")  # what older versions recorded
    row = ws.sql("SELECT * FROM training_file_versions WHERE name = 'f' AND version = ?", [v.version])
    ws.append("training_file_versions", row.with_columns(pl.lit(legacy).alias("records_hash")))
    old = tf.get_version(ws, "f")
    assert old.records_hash == legacy and records_match(ws, old)
    built = tf.build_version(ws, "f")
    assert hashlib.sha256(built.jsonl_path.read_bytes()).hexdigest() == legacy
    done = export_version(ws, "f", "openai_sft", tmp_path / "out", force_reason="test")
    assert {e.rule for e in done.validation.errors} <= {"min_examples"}  # (5 members: under OpenAI's 10)
    assert sum(f.read_bytes().count(b"\n") for f in done.files if f.suffix == ".jsonl") == len(old.member_ids)
    pair = ws.sql("SELECT * FROM training_pairs WHERE conversation_id = ? ORDER BY turn_number LIMIT 1",
                  [old.member_ids[0]])
    ws.append("training_pairs", pair.with_columns(pl.lit("changed").alias("target_response")))
    assert not records_match(ws, tf.get_version(ws, "f"))
    for path in built.jsonl_path.parent.iterdir():
        path.unlink()
    with pytest.raises(tf.TrainingFileError, match="cannot be rebuilt byte for byte"):
        tf.build_version(ws, "f")
