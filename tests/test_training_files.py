"""Training files: names, eligibility, duplicates, all-or-nothing changes, versions rebuilt byte for byte,
JSON/JSONL agreement, leak-free stratified splits."""

from __future__ import annotations

import dataclasses
import hashlib
import random
import shutil
import threading
from collections import Counter

import orjson
import polars as pl
import pytest

import brightrun.training_files as tf
from brightrun.errors import BrightRunError
from brightrun.training_files import splits as splits_module
from brightrun.workspace import utcnow
from brightrun.workspace.tables import TABLES


def _ids(ws, n: int | None = None) -> list[str]:
    ids = ws.sql("SELECT conversation_id FROM conversations WHERE enrichment_status = 'completed' "
                 "ORDER BY conversation_id")["conversation_id"].to_list()
    return ids if n is None else ids[:n]


def _state(ws, name: str) -> tuple:
    """Everything a failed operation must leave unchanged."""
    return (
        ws.scalar("SELECT count(*) FROM training_file_versions WHERE name = ?", [name]),
        ws.scalar("SELECT count(*) FROM training_file_conversations WHERE name = ?", [name]),
        tuple(tf.members(ws, name)),
        sorted(p.name for p in (ws.root / "training_files").rglob("*")) if (ws.root / "training_files").exists()
        else [],
    )


def _set_status(ws, cid: str, status: str) -> None:
    ws.append("conversation_status", [{"conversation_id": cid, "status": status, "enrichment_version": "2",
                                       "updated_at": utcnow()}])


def _clone_conversation(ws, source: str, new_id: str) -> None:
    """A copy of a conversation (row and turns) under a new id, with no training pairs."""
    columns = list(TABLES["conversations"].schema)
    row = ws.sql(f"SELECT {', '.join(columns)} FROM conversations WHERE conversation_id = ?", [source]).to_dicts()[0]
    ws.append("conversations", [{**row, "conversation_id": new_id}])
    turns = ws.sql("SELECT * FROM turns WHERE conversation_id = ?", [source])
    ws.append("turns", turns.with_columns(pl.lit(new_id).alias("conversation_id")))


# -- names -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["../escape", "a/b", "..", ".", "", " lead", "trail ", "a\\b", "x\x00y",
                                 "/abs", "name.json", "~home", "a" * 121, "tab\tname", "new\nline"])
def test_unsafe_names_are_refused_and_nothing_is_written(demo_copy, bad):
    with pytest.raises(tf.TrainingFileError) as err:
        tf.create_training_file(demo_copy, bad)
    assert "not allowed" in str(err.value)
    assert isinstance(err.value, BrightRunError)
    assert demo_copy.scalar("SELECT count(*) FROM training_files") == 0
    assert not (demo_copy.root / "training_files").exists()
    assert not (demo_copy.root / "escape").exists()


def test_create_allows_letters_digits_dash_underscore_space_and_names_are_unique(demo_copy):
    v = tf.create_training_file(demo_copy, "Core set_v2 - 2026", "first")
    assert (v.version, v.change, v.member_ids) == (1, "create", [])
    for clash in ("Core set_v2 - 2026", "core SET_v2 - 2026"):
        with pytest.raises(tf.TrainingFileError, match="already exists"):
            tf.create_training_file(demo_copy, clash)
    assert demo_copy.scalar("SELECT count(*) FROM training_files") == 1
    assert tf.list_training_files(demo_copy)["name"].to_list() == ["Core set_v2 - 2026"]


def test_unknown_training_file_is_a_clear_error(demo_copy):
    with pytest.raises(tf.TrainingFileError, match="no training file named 'nope'"):
        tf.add_conversations(demo_copy, "nope", _ids(demo_copy, 1))


# -- eligibility, duplicates, all or nothing --------------------------------------------------------------


def test_not_enriched_conversations_block_the_whole_add(demo_copy):
    ws = demo_copy
    tf.create_training_file(ws, "f")
    good = _ids(ws, 6)
    _set_status(ws, good[1], "failed")
    _set_status(ws, good[2], "not_started")
    before = _state(ws, "f")
    with pytest.raises(tf.TrainingFileError) as err:
        tf.add_conversations(ws, "f", good)
    message = str(err.value)
    assert "nothing was added" in message
    assert good[1] in message and "'failed'" in message
    assert good[2] in message and "'not_started'" in message
    assert set(err.value.problems) == {good[1], good[2]}
    assert _state(ws, "f") == before


def test_enriched_record_missing_blocks(demo_copy):
    ws = demo_copy
    tf.create_training_file(ws, "f")
    source = _ids(ws, 1)[0]
    _clone_conversation(ws, source, "conv-no-pairs")
    _set_status(ws, "conv-no-pairs", "completed")
    assert ws.scalar("SELECT enrichment_status FROM conversations WHERE conversation_id = 'conv-no-pairs'") == \
        "completed"
    before = _state(ws, "f")
    with pytest.raises(tf.TrainingFileError) as err:
        tf.add_conversations(ws, "f", [*_ids(ws, 3), "conv-no-pairs", "conv-unknown"])
    assert "no enriched record" in err.value.problems["conv-no-pairs"]
    assert err.value.problems["conv-unknown"] == "no such conversation"
    assert len(err.value.problems) == 2
    assert _state(ws, "f") == before


def test_duplicates_block_with_an_error_naming_them(demo_copy):
    ws = demo_copy
    tf.create_training_file(ws, "f")
    ids = _ids(ws, 10)
    tf.add_conversations(ws, "f", ids[:5])
    before = _state(ws, "f")
    with pytest.raises(tf.TrainingFileError) as err:
        tf.add_conversations(ws, "f", ids[3:8])
    assert set(err.value.problems) == {ids[3], ids[4]}
    assert all("already in training file 'f'" in why for why in err.value.problems.values())
    assert ids[3] in str(err.value) and ids[4] in str(err.value) and ids[5] not in str(err.value)
    with pytest.raises(tf.TrainingFileError) as err:
        tf.add_conversations(ws, "f", [ids[6], ids[7], ids[6]])
    assert err.value.problems == {ids[6]: "listed more than once"}
    assert _state(ws, "f") == before


def test_partial_add_is_impossible_ineligible_and_duplicate_together(demo_copy):
    ws = demo_copy
    tf.create_training_file(ws, "f")
    ids = _ids(ws, 30)
    tf.add_conversations(ws, "f", ids[:2])
    _set_status(ws, ids[20], "failed")
    before = _state(ws, "f")
    with pytest.raises(tf.TrainingFileError) as err:
        tf.add_conversations(ws, "f", ids[1:])  # 27 good, one duplicate, one ineligible
    assert set(err.value.problems) == {ids[1], ids[20]}
    assert "1 ineligible and 1 duplicate" in str(err.value)
    assert _state(ws, "f") == before
    assert tf.get_version(ws, "f").version == 2


def test_add_any_number_at_once_and_by_saved_filter(demo_copy):
    ws = demo_copy
    tf.create_training_file(ws, "all")
    everything = _ids(ws)
    v = tf.add_conversations(ws, "all", everything)
    assert v.member_ids == sorted(everything) and len(everything) == 160
    assert ws.scalar("SELECT count(*) FROM training_file_conversations WHERE name = 'all' AND version = ?",
                     [v.version]) == 160
    tf.create_training_file(ws, "edge")
    v = tf.add_conversations(ws, "edge", saved_filter={"tier": "edge_case"})
    expected = ws.sql("SELECT conversation_id FROM conversations WHERE tier = 'edge_case' ORDER BY 1")
    assert v.member_ids == expected["conversation_id"].to_list()
    with pytest.raises(tf.TrainingFileError, match="not allowed"):
        tf.ids_from_filter(ws, {"content; DROP": "x"})
    with pytest.raises(tf.TrainingFileError, match="no conversations to add"):
        tf.add_conversations(ws, "edge", saved_filter={"tier": "no-such-tier"})


def test_adding_by_filter_tops_up_and_reports_what_it_left_out(demo_copy):
    ws = demo_copy
    persona = ws.scalar("SELECT persona_key FROM conversations ORDER BY conversation_id LIMIT 1")
    matched = tf.ids_from_filter(ws, {"persona_key": [persona]})
    first, later = matched[:len(matched) // 2], matched[len(matched) // 2:]
    tf.create_training_file(ws, "top")
    tf.add_conversations(ws, "top", first)
    _set_status(ws, later[0], "not_started")
    _set_status(ws, later[1], "failed")
    preview = tf.match_filter(ws, "top", {"persona_key": [persona]})
    new = len(later) - 2
    assert preview.label() == f"{new} new ({len(first)} already members, 1 not enriched, 1 failed)"
    v, match = tf.add_matching(ws, "top", saved_filter={"persona_key": [persona]})
    assert match == preview and sorted(v.member_ids) == sorted(first + later[2:])
    assert match.left_out[later[1]][0] == "failed" and "'failed'" in match.left_out[later[1]][1]
    # the same filter again adds nothing: refused, and every match is listed with its reason
    with pytest.raises(tf.TrainingFileError, match=rf"matches {len(matched)} conversation\(s\): "
                       rf"{len(matched) - 2} already members, 1 not enriched, 1 failed") as err:
        tf.add_conversations(ws, "top", saved_filter={"persona_key": [persona]})
    assert set(err.value.problems) == set(matched)
    # the enrichment status is a filter too; explicit ids stay all or nothing
    _set_status(ws, later[0], "completed")
    v, match = tf.add_matching(ws, "top", saved_filter={"enrichment_status": ["completed"],
                                                         "persona_key": [persona]})
    assert match.new == [later[0]] and later[0] in v.member_ids
    with pytest.raises(tf.TrainingFileError, match="nothing was added"):
        tf.add_conversations(ws, "top", [later[1]], saved_filter={"persona_key": [persona]})


def test_an_id_both_ineligible_and_repeated_keeps_both_reasons_and_long_names_are_cut(demo_copy):
    ws = demo_copy
    tf.create_training_file(ws, "f")
    ids = _ids(ws, 2)
    _set_status(ws, ids[0], "not_started")
    with pytest.raises(tf.TrainingFileError) as err:
        tf.add_conversations(ws, "f", [ids[0], ids[1], ids[0]])
    assert "'not_started'" in err.value.problems[ids[0]] and "listed more than once" in err.value.problems[ids[0]]
    assert set(err.value.problems) == {ids[0]}
    with pytest.raises(tf.TrainingFileError) as err:
        tf.create_training_file(ws, "x" * 10_000)
    assert len(str(err.value)) < 400 and "10,000 characters" in str(err.value) and "Fix:" in str(err.value)


def test_remove_members_all_or_nothing(demo_copy):
    ws = demo_copy
    tf.create_training_file(ws, "f")
    ids = _ids(ws, 6)
    tf.add_conversations(ws, "f", ids)
    before = _state(ws, "f")
    with pytest.raises(tf.TrainingFileError) as err:
        tf.remove_conversations(ws, "f", [ids[0], "conv-not-a-member"])
    assert set(err.value.problems) == {"conv-not-a-member"}
    assert _state(ws, "f") == before
    v = tf.remove_conversations(ws, "f", ids[:2])
    assert (v.version, v.change, v.member_ids) == (3, "remove", ids[2:])
    tf.add_conversations(ws, "f", ids[:1])  # a removed conversation may come back
    assert tf.members(ws, "f") == sorted([ids[0], *ids[2:]])


# -- versions and builds -----------------------------------------------------------------------------


def test_every_change_makes_a_version_with_a_manifest(demo_copy):
    ws = demo_copy
    tf.create_training_file(ws, "f")
    ids = _ids(ws, 8)
    tf.add_conversations(ws, "f", ids[:5])
    tf.add_conversations(ws, "f", ids[5:])
    tf.remove_conversations(ws, "f", ids[:1])
    tf.assign_splits(ws, "f", (60, 20, 20), salt="s1")
    history = tf.versions(ws, "f")
    assert [v.change for v in history] == ["create", "add", "add", "remove", "split"]
    assert [v.version for v in history] == [1, 2, 3, 4, 5]
    assert [len(v.member_ids) for v in history] == [0, 5, 8, 7, 7]
    last = history[-1]
    assert last.split_ratios == (60, 20, 20) and last.split_salt == "s1"
    assert last.enrichment_version == "2" and last.scaffolding_fingerprint == ws.scaffolding.fingerprint
    assert last.template_versions and all("@" in t for t in last.template_versions)
    assert last.records_hash.startswith("records-2:") and len(last.records_hash) == len("records-2:") + 64
    built = tf.build_version(ws, "f")
    manifest = orjson.loads(built.manifest_path.read_bytes())
    assert [m["conversation_id"] for m in manifest["members"]] == last.member_ids
    assert [m["split"] for m in manifest["members"]] == last.splits
    assert manifest["content_hash"] == built.content_hash == tf.get_version(ws, "f").content_hash
    for key in ("scaffolding_fingerprint", "template_versions", "enrichment_version", "records_hash"):
        assert manifest[key] == getattr(last, key)
    # the manifest's hashes are the files'
    assert manifest["training_jsonl_sha256"] == hashlib.sha256(built.jsonl_path.read_bytes()).hexdigest()
    # the JSON's own bytes (outside its training pairs) are hashed apart: changing one changes the content hash
    assert "training_json_frame_sha256" in manifest and "training_json_sha256" not in manifest


def test_past_versions_rebuild_byte_for_byte(demo_copy):
    ws = demo_copy
    tf.create_training_file(ws, "f", "rebuild me")
    ids = _ids(ws, 12)
    tf.add_conversations(ws, "f", ids[:6])
    first = tf.build_version(ws, "f")
    json_v2, jsonl_v2, manifest_v2 = (first.json_path.read_bytes(), first.jsonl_path.read_bytes(),
                                      first.manifest_path.read_bytes())
    tf.add_conversations(ws, "f", ids[6:])
    tf.remove_conversations(ws, "f", ids[:3])
    latest = tf.build_version(ws, "f")
    assert latest.version == 4 and latest.content_hash != first.content_hash
    # delete the built files of version 2 and rebuild them from the workspace
    for path in first.json_path.parent.iterdir():
        path.unlink()
    first.json_path.parent.rmdir()
    again = tf.build_version(ws, "f", 2)
    assert again.content_hash == first.content_hash
    assert again.json_path.read_bytes() == json_v2
    assert again.jsonl_path.read_bytes() == jsonl_v2
    assert again.manifest_path.read_bytes() == manifest_v2
    # a version never built before is rebuilt the same way twice, and no temporary folder is left
    v3 = tf.build_version(ws, "f", 3)
    assert tf.build_version(ws, "f", 3).json_path.read_bytes() == v3.json_path.read_bytes()
    assert not [p for p in (ws.root / "training_files" / "f").iterdir() if p.name.startswith(".")]


def test_rebuild_refuses_when_the_workspace_changed(demo_copy):
    ws = demo_copy
    tf.create_training_file(ws, "f")
    ids = _ids(ws, 4)
    tf.add_conversations(ws, "f", ids)
    tf.build_version(ws, "f")
    pair = ws.sql("SELECT * FROM training_pairs WHERE conversation_id = ? ORDER BY turn_number LIMIT 1", [ids[0]])
    ws.append("training_pairs", pair.with_columns(pl.lit("a different answer").alias("target_response")))
    with pytest.raises(tf.TrainingFileError, match="cannot be rebuilt byte for byte"):
        tf.build_version(ws, "f", 2)


def test_json_and_jsonl_agree(demo_copy):
    ws = demo_copy
    tf.create_training_file(ws, "f")
    ids = _ids(ws, 10)
    tf.add_conversations(ws, "f", ids)
    built = tf.build_version(ws, "f")
    assert tf.check_agreement(built.json_path, built.jsonl_path) == []
    doc = orjson.loads(built.json_path.read_bytes())
    assert set(doc) == {"training_file", "consultant_profile", "conversations"}
    assert doc["consultant_profile"]["name"] == ws.scaffolding.consultant.name
    assert [c["conversation_id"] for c in doc["conversations"]] == sorted(ids)
    lines = [orjson.loads(line) for line in built.jsonl_path.read_bytes().splitlines()]
    pairs = [p for c in doc["conversations"] for p in c["training_pairs"]]
    assert lines == pairs
    expected = ws.scalar("SELECT count(*) FROM training_pairs WHERE conversation_id IN (SELECT unnest(?))", [ids])
    assert len(lines) == built.training_pairs == doc["training_file"]["total_training_pairs"] == expected
    split_of = {c["conversation_id"]: c["split"] for c in doc["conversations"]}
    assert all(p["split"] == split_of[p["conversation_id"]] for p in lines)
    assert {"system_prompt", "conversation_history", "current_user_input", "target_response"} <= set(lines[0])
    # a tampered JSONL is caught
    built.jsonl_path.write_bytes(built.jsonl_path.read_bytes().splitlines(keepends=True)[0])
    assert tf.check_agreement(built.json_path, built.jsonl_path)


def test_chunk_edges_change_no_byte_of_either_file(demo_copy, monkeypatch):
    """The JSON is assembled from the JSONL's lines chunk by chunk; a build in chunks of 3 conversations
    (edges inside the member list) writes the same bytes as one in a single chunk."""
    from brightrun.training_files import build as build_module

    ws = demo_copy
    tf.create_training_file(ws, "f")
    tf.add_conversations(ws, "f", _ids(ws, 10))
    whole = tf.build_version(ws, "f")
    json_bytes, jsonl_bytes = whole.json_path.read_bytes(), whole.jsonl_path.read_bytes()
    monkeypatch.setattr(build_module, "CHUNK", 3)
    chunked = tf.build_version(ws, "f")
    assert chunked.json_path.read_bytes() == json_bytes and chunked.jsonl_path.read_bytes() == jsonl_bytes
    assert tf.check_agreement(chunked.json_path, chunked.jsonl_path) == []
    assert len(orjson.loads(json_bytes)["conversations"]) == 10


def test_a_change_to_the_jsons_own_bytes_is_caught_on_rebuild(demo_copy, monkeypatch):
    """The content hash covers the JSON's bytes outside its training pairs (hashed apart from the JSONL):
    a build that would write a different header is refused, naming the content hash."""
    from brightrun.training_files import build as build_module

    ws = demo_copy
    tf.create_training_file(ws, "f")
    tf.add_conversations(ws, "f", _ids(ws, 3))
    tf.build_version(ws, "f")
    header = build_module.header
    monkeypatch.setattr(build_module, "header", lambda *a: {**header(*a), "vertical": "changed"})
    with pytest.raises(tf.TrainingFileError, match="content hash"):
        tf.build_version(ws, "f")


def test_stream_file_writes_every_byte_with_or_without_the_page_cache(tmp_path):
    from brightrun.workspace.files import StreamFile

    block = StreamFile.BLOCK
    pieces = [b"a" * 10, memoryview(b"b" * (block - 3)), b"", b"c" * (2 * block + 7), memoryview(b"xyz")[1:]]
    expected = b"".join(bytes(p) for p in pieces)
    for direct in (True, False):
        out = StreamFile(tmp_path / f"f-{direct}", direct=direct)
        out.write(pieces[:2])
        out.write(pieces[2:])
        digest = out.finish()
        assert (tmp_path / f"f-{direct}").read_bytes() == expected
        assert digest == hashlib.sha256(expected).hexdigest()
    unhashed = StreamFile(tmp_path / "g", hashed=False)
    unhashed.write([b"tail only"])
    assert unhashed.finish() is None and (tmp_path / "g").read_bytes() == b"tail only"


def test_a_failed_write_leaves_no_files_and_no_writer_thread(demo_copy, monkeypatch):
    from brightrun.training_files import build as build_module

    ws = demo_copy
    tf.create_training_file(ws, "f")
    tf.add_conversations(ws, "f", _ids(ws, 6))
    writes = []

    def failing(self, pieces):
        writes.append(len(pieces))
        if len(writes) == 3:
            raise OSError(28, "No space left on device")
        return real(self, pieces)

    real = build_module.StreamFile.write
    monkeypatch.setattr(build_module.StreamFile, "write", failing)
    monkeypatch.setattr(build_module, "CHUNK", 2)
    with pytest.raises(OSError, match="No space left"):
        tf.build_version(ws, "f")
    folder = ws.root / "training_files" / "f"
    assert not folder.exists() or list(folder.iterdir()) == []
    assert not [t for t in threading.enumerate() if t.name == "training-file-writer"]
    monkeypatch.setattr(build_module.StreamFile, "write", real)
    built = tf.build_version(ws, "f")  # nothing was recorded by the failed build
    assert tf.check_agreement(built.json_path, built.jsonl_path) == []


def test_streamed_records_equal_the_enriched_records(demo_copy):
    """The bulk, chunked builder gives each member exactly enrichment's per-conversation record (plus
    its split), and each JSONL line is that record serialized with sorted keys."""
    from brightrun.enrichment.pipeline import enriched_conversation
    from brightrun.training_files import build as build_module

    ws = demo_copy
    tf.create_training_file(ws, "f")
    ids = _ids(ws, 12)
    version = tf.add_conversations(ws, "f", ids)
    streamed = list(build_module.iter_conversations(ws, version, chunk=5))  # chunk edges at 5 and 10
    assert [c["conversation_id"] for c in streamed] == sorted(ids)
    for conversation in streamed:
        pairs = enriched_conversation(ws, conversation["conversation_id"])["training_pairs"]
        assert conversation["training_pairs"] == [{**p, "split": conversation["split"]} for p in pairs]
        assert conversation["conversation_metadata"] == pairs[0]["conversation_metadata"]
    built = tf.build_version(ws, "f")
    lines = built.jsonl_path.read_bytes().splitlines()
    records = [p for c in streamed for p in c["training_pairs"]]
    assert lines == [orjson.dumps(p, option=orjson.OPT_SORT_KEYS) for p in records]
    # a member whose training pairs are gone blocks the build, naming it
    ghost = dataclasses.replace(version, member_ids=[ids[0], "conv-gone"], splits=["train", "test"])
    with pytest.raises(tf.TrainingFileError, match="'conv-gone'.*no training pairs"):
        list(build_module.iter_conversations(ws, ghost))


# -- splits --------------------------------------------------------------------------------------------


def test_splits_by_ratio_stratified_and_reproducible(demo_copy):
    ws = demo_copy
    tf.create_training_file(ws, "f")
    v = tf.add_conversations(ws, "f", _ids(ws))
    counts = Counter(v.splits)
    assert abs(counts["train"] - 128) <= 3 and abs(counts["validation"] - 16) <= 3 and abs(counts["test"] - 16) <= 3
    rows = ws.sql("SELECT tier, arc_key, split, count(*) n FROM training_file_conversations "
                  "WHERE name = 'f' AND version = 2 GROUP BY ALL")
    by_tier = rows.group_by("tier", "split").agg(pl.col("n").sum())
    for tier in ("template", "edge_case"):
        shares = {r["split"]: r["n"] for r in by_tier.filter(pl.col("tier") == tier).iter_rows(named=True)}
        assert shares.get("train", 0) / sum(shares.values()) == pytest.approx(0.8, abs=0.12)
    again = tf.assign_splits(ws, "f")
    assert again.splits == v.splits  # same members, ratios and salt: same splits
    other = tf.assign_splits(ws, "f", (50, 25, 25), salt="x")
    assert Counter(other.splits)["test"] == pytest.approx(40, abs=3)
    assert tf.assign_splits(ws, "f", (100, 0, 0)).splits == ["train"] * 160
    for bad in ((80, 20), (-1, 50, 51), (0, 0, 0)):
        with pytest.raises(tf.TrainingFileError, match="split ratios"):
            tf.assign_splits(ws, "f", bad)
    assert tf.leakage_report(ws, "f").height == 0


def _forget_signatures(ws) -> None:
    """Drop the near-duplicate features enrichment kept of the real texts, so a test's planted texts (through
    member_texts) are signed instead."""
    from brightrun.quality import signature_store

    assert signature_store.load(ws, _ids(ws), signature_store.fingerprints(ws)).ids == _ids(ws)  # enrichment's
    shutil.rmtree(signature_store.folder(ws))


def test_near_duplicates_share_a_split_and_the_leakage_report_finds_leaks(demo_copy, monkeypatch):
    ws = demo_copy
    ids = _ids(ws, 40)
    real = splits_module.member_texts
    texts = real(ws, ids)
    base = texts[ids[0]]
    planted = {cid: base + f" extra words {n}" for n, cid in enumerate(ids[:12])}  # one near-duplicate cluster
    monkeypatch.setattr(splits_module, "member_texts", lambda w, wanted: {c: planted.get(c, texts[c]) for c in wanted})
    _forget_signatures(ws)
    tf.create_training_file(ws, "f")
    v = tf.add_conversations(ws, "f", ids)
    split = v.split_of
    assert len({split[c] for c in planted}) == 1
    clusters = ws.sql("SELECT DISTINCT cluster FROM training_file_conversations WHERE name = 'f' AND version = 2 "
                      "AND conversation_id IN (SELECT unnest(?))", [list(planted)])
    assert clusters.height == 1
    assert tf.leakage_report(ws, "f").height == 0
    # splits made without the duplicates in view leak; the report names every pair across splits
    monkeypatch.setattr(splits_module, "member_texts", lambda w, wanted: {c: texts[c] for c in wanted})
    leaky = tf.assign_splits(ws, "f", (34, 33, 33), salt="leak")
    monkeypatch.setattr(splits_module, "member_texts", lambda w, wanted: {c: planted.get(c, texts[c]) for c in wanted})
    report = tf.leakage_report(ws, "f", leaky.version)
    assert report.height > 0
    assert set(report["id_a"]) | set(report["id_b"]) <= set(planted)
    assert (report["split_a"] != report["split_b"]).all()


def test_adding_members_twice_never_moves_an_earlier_member_and_keeps_the_ratios(demo_copy, monkeypatch):
    ws = demo_copy
    ids = _ids(ws)
    random.Random(5).shuffle(ids)
    first, second, third = ids[:60], ids[60:110], ids[110:]
    # a new member that near-duplicates an earlier one joins its split
    texts = splits_module.member_texts(ws, ids)
    twin_of = {third[0]: first[0]}
    monkeypatch.setattr(splits_module, "member_texts",
                        lambda w, wanted: {c: texts[twin_of.get(c, c)] + " more" * (c in twin_of) for c in wanted})
    _forget_signatures(ws)
    tf.create_training_file(ws, "grow")
    history = [tf.add_conversations(ws, "grow", first), tf.add_conversations(ws, "grow", second),
               tf.add_conversations(ws, "grow", third)]
    for earlier, later in zip(history, history[1:], strict=False):
        moved = {c: (s, later.split_of[c]) for c, s in earlier.split_of.items() if later.split_of[c] != s}
        assert moved == {}
    assert history[-1].split_of[third[0]] == history[0].split_of[first[0]]
    final = Counter(history[-1].splits)
    assert abs(final["train"] - 128) <= 4 and abs(final["validation"] - 16) <= 3 and abs(final["test"] - 16) <= 3
    rows = ws.sql("SELECT tier, split, count(*) n FROM training_file_conversations WHERE name = 'grow' "
                  "AND version = ? GROUP BY ALL", [history[-1].version])
    for tier in ("template", "edge_case"):
        shares = {r["split"]: r["n"] for r in rows.filter(pl.col("tier") == tier).iter_rows(named=True)}
        assert shares.get("train", 0) / sum(shares.values()) == pytest.approx(0.8, abs=0.1)
    # removing members moves nobody either; only an explicit re-split places everyone afresh
    after = tf.remove_conversations(ws, "grow", second[:10])
    assert all(after.split_of[c] == history[-1].split_of[c] for c in after.member_ids)
    assert tf.assign_splits(ws, "grow", (50, 25, 25), salt="new").split_of != after.split_of


def test_membership_rows_without_a_version_row_do_not_count(demo_copy):
    """The version row is the commit point: rows of a version that was never committed are ignored."""
    ws = demo_copy
    tf.create_training_file(ws, "f")
    ids = _ids(ws, 3)
    tf.add_conversations(ws, "f", ids[:1])
    ws.append("training_file_conversations", [  # as if a crash happened before the version row
        {"name": "f", "version": 3, "conversation_id": c, "split": "train", "tier": "template", "arc_key": "x",
         "cluster": c, "created_at": utcnow()} for c in ids])
    assert tf.members(ws, "f") == ids[:1] and tf.get_version(ws, "f").version == 2
    v = tf.add_conversations(ws, "f", ids[1:])
    assert v.version == 3 and v.member_ids == ids


def test_json_pairs_are_the_enriched_records(demo_copy):
    from brightrun.enrichment.pipeline import enriched_conversation

    ws = demo_copy
    tf.create_training_file(ws, "f")
    ids = _ids(ws, 2)
    tf.add_conversations(ws, "f", ids)
    doc = orjson.loads(tf.build_version(ws, "f").json_path.read_bytes())
    for conversation in doc["conversations"]:
        expected = enriched_conversation(ws, conversation["conversation_id"])["training_pairs"]
        got = [{k: v for k, v in p.items() if k != "split"} for p in conversation["training_pairs"]]
        assert got == orjson.loads(orjson.dumps(expected))


# -- preference exports --------------------------------------------------------------------------------


def test_preference_formats_export_the_reviews_pairs_of_member_conversations(demo_copy, tmp_path):
    from brightrun.exports import FORMATS
    from brightrun.feedback import record_feedback
    from brightrun.training_files.export import export_version

    ws = demo_copy
    ids = _ids(ws, 6)
    tf.create_training_file(ws, "prefs")
    version = tf.add_conversations(ws, "prefs", ids[:4])
    with pytest.raises(tf.TrainingFileError, match="no preference pairs"):
        export_version(ws, "prefs", "openai_dpo", tmp_path / "none", force_reason="test")
    member_pair = ws.scalar("SELECT pair_id FROM training_pairs WHERE conversation_id = ? ORDER BY turn_number "
                            "LIMIT 1", [ids[1]])
    outsider_pair = ws.scalar("SELECT pair_id FROM training_pairs WHERE conversation_id = ? LIMIT 1", [ids[5]])
    original = ws.scalar("SELECT target_response FROM training_pairs WHERE pair_id = ?", [member_pair])
    record_feedback(ws, "training_pair", member_pair, "ana", rating=2, edited_response="A kinder, clearer answer.")
    record_feedback(ws, "training_pair", outsider_pair, "ana", rating=2, edited_response="Not a member's edit.")

    done = export_version(ws, "prefs", "openai_dpo", tmp_path / "dpo", force_reason="test")
    # one pair is too few for OpenAI (at least 10 examples): the consumer's rule is the only problem
    assert [e.message for e in done.validation.errors] == [
        "the training split has 1 valid examples; the consumer needs at least 10"]
    rows = [orjson.loads(line) for f in done.files if f.suffix == ".jsonl" for line in f.read_bytes().splitlines()]
    assert len(rows) == 1
    assert rows[0]["preferred_output"] == [{"role": "assistant", "content": "A kinder, clearer answer."}]
    assert rows[0]["non_preferred_output"] == [{"role": "assistant", "content": original}]
    split = version.split_of[ids[1]]
    assert any(f.name == f"{split}.jsonl" for f in done.files)

    kto = export_version(ws, "prefs", "trl_kto", tmp_path / "kto", force_reason="test")
    assert kto.validation.ok
    labels = sorted(orjson.loads(line)["label"] for f in kto.files if f.suffix == ".jsonl"
                    for line in f.read_bytes().splitlines())
    assert labels == [False, True]
    assert FORMATS["trl_kto"].kind == "kto"


# -- derived exports take both sides from members of one split (issue 15) ----------------------------


def _twin(ws, source: str, new_id: str) -> None:
    """A conversation `new_id` whose training pairs have the contexts of `source`'s (same system prompt,
    history and user input) and answers of its own, and whose turns share no text with it (so it is no
    near duplicate and may fall in any split)."""
    _clone_conversation(ws, source, new_id)
    ws.append("conversation_status", [{"conversation_id": new_id, "status": "completed", "enrichment_version": "2",
                                       "updated_at": utcnow()}])
    turns = ws.sql("SELECT * FROM turns WHERE conversation_id = ?", [new_id])
    ws.append("turns", turns.with_columns(
        pl.format("twin {} turn {} of another talk about {}", pl.lit(new_id), pl.col("turn_number"),
                  pl.col("turn_number") * 7).alias("content")))
    pairs = ws.sql("SELECT * FROM training_pairs WHERE conversation_id = ?", [source])
    ws.append("training_pairs", pairs.with_columns(
        pl.lit(new_id).alias("conversation_id"),
        pl.col("pair_id").str.replace(source, new_id, literal=True).alias("pair_id"),
        pl.format("The twin's own answer {}: {}", pl.col("turn_number"), pl.col("target_response"))
        .alias("target_response")))


def _rate_twins(ws, a: str, b: str) -> tuple[str, str]:
    """Rate a's first pair 5 and b's first pair (same context) 1; returns both answers."""
    from brightrun.feedback import record_feedback

    answers = []
    for cid, rating in ((a, 5), (b, 1)):
        pair, answer = ws.sql("SELECT pair_id, target_response FROM training_pairs WHERE conversation_id = ? "
                              "ORDER BY turn_number LIMIT 1", [cid]).row(0)
        record_feedback(ws, "training_pair", pair, "ana", rating=rating)
        answers.append(answer)
    return answers[0], answers[1]


def _rows(done) -> list[dict]:
    return [orjson.loads(line) | {"_split": f.stem} for f in done.files if f.suffix == ".jsonl"
            for line in f.read_bytes().splitlines()]


def test_preference_and_kto_exports_take_no_text_from_non_members(demo_copy, tmp_path):
    from brightrun.feedback import record_feedback
    from brightrun.training_files.export import export_version

    ws = demo_copy
    ids = _ids(ws, 4)
    _twin(ws, ids[0], "conv-twin-outsider")
    member_answer, outsider_answer = _rate_twins(ws, ids[0], "conv-twin-outsider")
    edited = ws.scalar("SELECT pair_id FROM training_pairs WHERE conversation_id = ? ORDER BY turn_number "
                       "LIMIT 1", [ids[1]])
    record_feedback(ws, "training_pair", edited, "ana", rating=2, edited_response="A kinder, clearer answer.")
    tf.create_training_file(ws, "small")
    tf.add_conversations(ws, "small", ids)  # the twin is not a member
    for fmt in ("trl_dpo", "openai_dpo", "llama_factory_preference", "trl_kto", "llama_factory_kto"):
        done = export_version(ws, "small", fmt, tmp_path / fmt, force_reason="test")
        text = b"".join(f.read_bytes() for f in done.files if f.suffix == ".jsonl").decode()
        assert "The twin's own answer" not in text, fmt
        assert "A kinder, clearer answer." in text, fmt
    # with the twin a member in the same split, the rated pair is exported (both sides are members)
    tf.add_conversations(ws, "small", ["conv-twin-outsider"])
    v = tf.get_version(ws, "small")
    if v.split_of["conv-twin-outsider"] == v.split_of[ids[0]]:
        rows = _rows(export_version(ws, "small", "trl_dpo", tmp_path / "both", force_reason="test"))
        assert [r["rejected"][0]["content"] for r in rows if r["chosen"][0]["content"] == member_answer] == [
            outsider_answer]


def test_rated_pairs_never_cross_splits(demo_copy, tmp_path):
    from brightrun.feedback import record_feedback
    from brightrun.training_files.export import export_version

    ws = demo_copy
    ids = _ids(ws, 30)
    _twin(ws, ids[0], "conv-twin-held-out")
    member_answer, twin_answer = _rate_twins(ws, ids[0], "conv-twin-held-out")
    edited = ws.scalar("SELECT pair_id FROM training_pairs WHERE conversation_id = ? LIMIT 1", [ids[1]])
    record_feedback(ws, "training_pair", edited, "ana", rating=2, edited_response="A kinder, clearer answer.")
    tf.create_training_file(ws, "f")
    tf.add_conversations(ws, "f", [*ids, "conv-twin-held-out"])
    seen = set()
    for salt in map(str, range(40)):
        v = tf.assign_splits(ws, "f", (50, 25, 25), salt=salt)
        same = v.split_of[ids[0]] == v.split_of["conv-twin-held-out"]
        if same in seen:
            continue
        seen.add(same)
        for fmt in ("trl_dpo", "trl_kto"):
            rows = _rows(export_version(ws, "f", fmt, tmp_path / f"{fmt}-{salt}", force_reason="test"))
            texts = {(r["_split"], m["content"]) for r in rows
                     for side in ("chosen", "rejected", "completion") for m in r.get(side, [])}
            if same:  # the rated pair is there, in its conversations' split
                assert {(v.split_of[ids[0]], member_answer), (v.split_of[ids[0]], twin_answer)} <= texts
            else:  # no row holds an answer of a conversation of another split
                assert twin_answer not in {t for _, t in texts}
                assert (v.split_of["conv-twin-held-out"], member_answer) not in texts
        if seen == {True, False}:
            break
    assert seen == {True, False}


def test_export_of_a_past_version_holds_exactly_its_records(demo_copy, tmp_path):
    from brightrun.training_files.export import export_version

    ws = demo_copy
    ids = _ids(ws, 6)
    tf.create_training_file(ws, "f")
    tf.add_conversations(ws, "f", ids[:3])
    # never built: the export builds it first and records its content hash (not null)
    first = export_version(ws, "f", "openai_sft", tmp_path / "v2", force_reason="test")
    meta = orjson.loads((tmp_path / "v2" / "brightrun_export.json").read_bytes())
    assert meta["content_hash"] == tf.get_version(ws, "f", 2).content_hash is not None
    before = {f.name: f.read_bytes() for f in first.files if f.suffix == ".jsonl"}
    tf.add_conversations(ws, "f", ids[3:])  # version 3, never built
    pair = ws.sql("SELECT * FROM training_pairs WHERE conversation_id = ? ORDER BY turn_number LIMIT 1", [ids[0]])
    ws.append("training_pairs", pair.with_columns(pl.lit("a re-enriched answer").alias("target_response")))
    # version 2 was built: its export is its own records, not today's, under its own hash
    again = export_version(ws, "f", "openai_sft", tmp_path / "v2again", version=2, force_reason="test")
    text = b"".join(f.read_bytes() for f in again.files if f.suffix == ".jsonl")
    assert b"a re-enriched answer" not in text
    assert {f.name: f.read_bytes() for f in again.files if f.suffix == ".jsonl"} == before
    assert orjson.loads((tmp_path / "v2again" / "brightrun_export.json").read_bytes())["content_hash"] == \
        meta["content_hash"]
    # version 3 cannot be made any more: refused with the build's message, for every kind of format
    for fmt in ("openai_sft", "trl_dpo"):
        with pytest.raises(tf.TrainingFileError, match="cannot be rebuilt byte for byte") as err:
            export_version(ws, "f", fmt, tmp_path / f"v3-{fmt}", version=3, force_reason="test")
        assert "Fix:" in str(err.value)
    with pytest.raises(tf.TrainingFileError, match="cannot be rebuilt byte for byte"):
        tf.build_version(ws, "f", 3)
    # the built file changed on disk: not silently exported under the version's hash
    built = ws.root / "training_files" / "f" / "v2" / "training.jsonl"
    built.write_bytes(built.read_bytes().replace(b"}\n", b" }\n", 1))
    with pytest.raises(tf.TrainingFileError, match="changed on disk"):
        export_version(ws, "f", "openai_sft", tmp_path / "tampered", version=2, force_reason="test")


def test_a_killed_build_leaves_nothing_behind_after_the_next_build(demo_copy):
    # what a SIGKILL can leave: an unfinished temporary folder, and a built version moved aside between the two
    # renames that replace it (no vN at all). The next build of any version of the file cleans both.
    from brightrun.training_files.build import recover_leftovers

    ws = demo_copy
    tf.create_training_file(ws, "f", "killed builds")
    tf.add_conversations(ws, "f", _ids(ws, 4))
    built = tf.build_version(ws, "f")
    folder = built.json_path.parent.parent
    version_bytes = built.json_path.read_bytes()
    unfinished = folder / ".tmp-0123abcd-v2"
    unfinished.mkdir()
    (unfinished / "training.jsonl").write_bytes(b"x" * 1000)
    moved = folder / f".old-4567cdef-{built.json_path.parent.name}"
    built.json_path.parent.rename(moved)
    assert recover_leftovers(folder) == ["removed .tmp-0123abcd-v2", f"restored {built.json_path.parent.name}"]
    assert built.json_path.read_bytes() == version_bytes  # the earlier complete build is back where readers look
    (folder / ".tmp-89abcdef-v2").mkdir()
    tf.add_conversations(ws, "f", _ids(ws)[4:6])
    tf.build_version(ws, "f")
    assert sorted(p.name for p in folder.iterdir()) == ["v2", "v3"]


def test_adds_sign_only_new_members_and_group_as_a_full_recomputation(demo_copy, monkeypatch):
    """Each member's MinHash signature is computed once (issue 15 item 8): a second add signs only the new
    members, and the groups grown from them equal duplicate_groups over all members."""
    from brightrun.quality import signature_store

    ws = demo_copy
    ids = _ids(ws, 40)
    texts = splits_module.member_texts(ws, ids)
    planted = {c: texts[ids[0]] + f" extra words {n}" for n, c in enumerate(ids[:5])}  # old and new near twins
    planted[ids[25]] = texts[ids[12]]  # a new exact duplicate of an old member
    planted.update({c: texts[ids[28]] + f" more {n}" for n, c in enumerate(ids[26:28])})  # new near twins
    every = {c: planted.get(c, texts[c]) for c in ids}
    monkeypatch.setattr(splits_module, "member_texts", lambda w, wanted: {c: every[c] for c in wanted})
    _forget_signatures(ws)
    signed: list[list[str]] = []
    real = signature_store.compute
    monkeypatch.setattr(signature_store, "compute", lambda ids, batch: signed.append(list(batch)) or real(ids, batch))
    tf.create_training_file(ws, "grow")
    first = ids[:2] + ids[10:20]
    tf.add_conversations(ws, "grow", first)
    second = ids[2:5] + ids[20:30]
    v = tf.add_conversations(ws, "grow", second)
    assert [len(batch) for batch in signed] == [len(first), len(second)]
    assert sorted(signed[1]) == sorted(every[c] for c in second)
    groups = splits_module.groups_of(ws, "grow", v.version)
    assert groups == splits_module.duplicate_groups({c: every[c] for c in v.member_ids})
    assert {groups[c] for c in ids[:5]} == {ids[0]} and groups[ids[25]] == groups[ids[12]]
    assert groups[ids[26]] == groups[ids[27]] == groups[ids[28]]
    assert len({v.split_of[c] for c in ids[:5]}) == 1


@pytest.mark.parametrize("scan", [False, True])
def test_enrichment_keeps_each_conversation_s_features_and_an_add_signs_only_changed_turns(demo_copy, monkeypatch,
                                                                                           scan):
    """Enrichment signs every conversation it completes (issue 15 item 8): the kept exact key, signature and
    shingle set equal a fresh computation; an add of signed members signs nothing; a conversation whose turns
    changed is signed again, and its new text decides its group. The turns' fingerprints read by id or by a
    scan of every conversation's (`scan`)."""
    if scan:
        monkeypatch.setattr(splits_module, "FILTER_FINGERPRINTS", 0)
    import numpy as np

    from brightrun.quality import duplicates, signature_store
    from brightrun.training_files import signatures

    ws = demo_copy
    ids = _ids(ws, 60)
    texts = splits_module.member_texts(ws, ids)
    kept = signature_store.load(ws, ids, signature_store.fingerprints(ws))
    keys, sig = signatures.compute([texts[i] for i in ids])
    assert kept.ids == ids and kept.keys == keys and kept.signatures.tobytes() == sig.tobytes()
    sets = signature_store.load_sets(ws, ids)
    assert all(np.array_equal(sets[i], s) for i, s in zip(ids, duplicates.shingle_sets([texts[i] for i in ids]),
                                                             strict=True))
    signed: list[list[str]] = []
    real = signature_store.compute
    monkeypatch.setattr(signature_store, "compute", lambda batch_ids, batch: signed.append(list(batch_ids)) or
                        real(batch_ids, batch))
    tf.create_training_file(ws, "kept")
    tf.add_conversations(ws, "kept", ids[:40])
    assert signed == []
    turns = ws.sql("SELECT conversation_id, count(*) AS n FROM turns WHERE conversation_id IN (SELECT unnest(?)) "
                   "GROUP BY 1", [ids])
    count = dict(zip(turns["conversation_id"].to_list(), turns["n"].to_list(), strict=True))
    source = ids[3]
    edited = next(c for c in ids[40:] if count[c] == count[source] and texts[c] != texts[source])
    copied = ws.sql("SELECT * FROM turns WHERE conversation_id = ?", [source]).with_columns(
        pl.lit(edited).alias("conversation_id"))
    ws.append("turns", copied)  # the edited conversation now says exactly what `source` says
    v = tf.add_conversations(ws, "kept", ids[40:])
    assert signed == [[edited]]
    groups = splits_module.groups_of(ws, "kept", v.version)
    assert groups[edited] == groups[source]
    assert groups == splits_module.duplicate_groups(splits_module.member_texts(ws, ids))


def test_adds_of_templated_texts_group_as_a_full_recomputation(monkeypatch):
    """Texts built from a small pool of sentences, as templated conversations are (large LSH buckets, many
    candidates that fail the exact check, a vocabulary small enough for bitmaps), added in three steps: after
    each, the grown groups equal duplicate_groups over all the members, by either exact-check path, in one
    process or with the candidate search in two."""
    import numpy as np

    from brightrun.quality.duplicates import shingle_sets
    from brightrun.training_files import signatures

    rng = random.Random(15)
    pool = [" ".join(rng.choice("abcdefghijklmnop") + rng.choice("aeiou") + rng.choice("rstlnm")
                     for _ in range(9)) for _ in range(70)]
    templates = [rng.sample(range(70), 12) for _ in range(3)]
    texts = {}
    for k in range(900):
        template = templates[k % 3]
        sentences = [pool[s] for s in template] + [rng.choice(pool) for _ in range(rng.choice([1, 2, 3, 5, 8]))]
        rng.shuffle(sentences)
        texts[f"t{rng.randrange(10 ** 6):06d}-{k}"] = ".\n".join(sentences)
    names = list(texts)
    for k in range(40):  # planted twins across the steps
        texts[names[k * 20 + 7]] = texts[names[k * 20]] + " and one more word"
    keys, sig = signatures.compute([texts[i] for i in names])
    signed = {c: (keys[k], sig[k]) for k, c in enumerate(names)}
    sets = dict(zip(names, shingle_sets([texts[i] for i in names]), strict=True))
    full = [splits_module.duplicate_groups({c: texts[c] for c in names[:end]}) for end in (300, 650, 900)]
    # candidates by a join or in blocks; bitmaps or lookups; in this process or two worker processes
    for small, bitmaps, workers in ((64, 1 << 30, 1), (8, 0, 1), (64, 1 << 30, 2), (8, 0, 2)):
        monkeypatch.setattr(signatures, "SMALL_BUCKET", small)
        monkeypatch.setattr(signatures, "_BITMAP_BYTES", bitmaps)
        known: dict[str, str] = {}
        for step, expected in zip((names[:300], names[300:650], names[650:]), full, strict=True):
            members = sorted(known) + step
            known = signatures.grow_groups(known, {c: signed[c] for c in members}, step,
                                           lambda wanted: {i: sets[i] for i in wanted}, workers=workers)
            assert known == expected
    sizes = sorted(Counter(known.values()).values())
    assert len(sizes) > 300 and sizes[-1] > 10, sizes[-5:]
    one, two = (signatures._candidates(sig, 450, 0.6, workers) for workers in (1, 2))
    assert one.size > 1000 and np.array_equal(one, two)
    n = len(sig)  # the highest estimates first (likeliest links joined first), ties ascending, each pair once
    equal = (sig[one // n] == sig[one % n]).sum(axis=1)
    assert np.all(np.diff(equal) <= 0) and len(np.unique(equal)) > 5 and len(np.unique(one)) == one.size
    ties = np.diff(one)[np.diff(equal) == 0]
    assert np.all(ties > 0)


def test_the_fast_jaccard_gives_the_figure_of_duplicates_jaccard():
    import numpy as np

    from brightrun.quality.duplicates import jaccard as reference
    from brightrun.training_files.signatures import jaccard

    rng = np.random.default_rng(7)
    for _ in range(2000):
        a, b = (np.unique(rng.integers(0, 200, rng.integers(1, 50))).astype(np.uint32) for _ in range(2))
        assert jaccard(a, b) == reference(a, b) == jaccard(b, a)
    assert jaccard(np.array([1, 2], np.uint32), np.array([], np.uint32)) == 0.0


def test_an_add_checks_each_candidate_pair_once_and_groups_as_a_full_recomputation(monkeypatch):
    """Near twins share many LSH bands: each pair is checked exactly (Jaccard) at most once, however many bands
    propose it, including pairs that fail; big and small buckets alike; the groups are duplicate_groups'."""
    import numpy as np

    from brightrun.quality.duplicates import shingle_sets
    from brightrun.training_files import signatures

    rng = random.Random(11)
    words = [f"w{k}" for k in range(400)]
    base = [rng.choice(words) for _ in range(120)]
    texts = {}
    for k in range(160):  # variants of one text, each with a share of its words replaced: Jaccard 0.3 to 1
        text = list(base)
        for _ in range(int(len(text) * rng.choice([0.0, 0.05, 0.1, 0.15, 0.2, 0.3]))):
            text[rng.randrange(len(text))] = rng.choice(words)
        texts[f"c{k:03d}"] = " ".join(text)
    texts |= {f"d{k:03d}": " ".join(rng.choice(words) for _ in range(60)) for k in range(40)}  # unrelated
    ids = sorted(texts)
    old, new = ids[::2], ids[1::2]
    known = splits_module.duplicate_groups({i: texts[i] for i in old})
    keys, sig = signatures.compute([texts[i] for i in old])
    new_keys, new_sig = signatures.compute([texts[i] for i in new])
    signed = {c: (keys[k], sig[k]) for k, c in enumerate(old)} | {c: (new_keys[k], new_sig[k]) for k, c in enumerate(new)}
    checked: list[tuple[int, int]] = []
    real = signatures._link_exact

    def spy(left, right, sets, threshold, comps, involved=None):
        checked.extend(zip(left.tolist(), right.tolist(), strict=True))
        return real(left, right, sets, threshold, comps, involved)
    monkeypatch.setattr(signatures, "_link_exact", spy)
    for small, bitmaps in ((64, 1 << 30), (0, 1 << 30), (64, 0), (0, 0)):  # pairs by a join or in blocks; exact
        monkeypatch.setattr(signatures, "SMALL_BUCKET", small)               # counts on bitmaps or looked up
        monkeypatch.setattr(signatures, "_BITMAP_BYTES", bitmaps)
        checked.clear()
        grown = signatures.grow_groups(known, signed, new, lambda wanted: dict(zip(wanted, shingle_sets(
            [texts[i] for i in wanted]), strict=True)))
        assert grown == splits_module.duplicate_groups(texts)
        assert len(set(grown.values())) < len(texts) - 40 and len(checked) > 10
        unordered = Counter(tuple(sorted(pair)) for pair in checked)
        assert len(checked) == len(unordered) and all(i != j for i, j in checked), unordered.most_common(3)
    assert np.array_equal(sig, signatures.compute([texts[i] for i in old])[1])


def test_signing_normalizes_once_and_matches_datasketch_and_exact_key_byte_for_byte(demo_ws):
    """The signer hands back each text's exact key from the words it shingled, and the shingle sets alone
    (for the exact checks) without the permutations: the same values as datasketch's MinHash, exact_key and
    the sets `signatures(sets=...)` gives."""
    import numpy as np
    from datasketch import MinHash

    from brightrun.quality import duplicates
    from brightrun.training_files import signatures

    texts = list(splits_module.member_texts(demo_ws, _ids(demo_ws, 30)).values())
    texts += ["", "   ", "Hi!", "one two", "One, two; THREE", "é à ü — ça va? Ça va.", "a b c d e f g h"]
    keys, sig = signatures.compute(texts)
    assert keys == [signatures.exact_key(t) for t in texts] == [duplicates.exact_key(t) for t in texts]
    expected = [MinHash(num_perm=duplicates.NUM_PERM, seed=1) for _ in texts]
    for mh, text in zip(expected, texts, strict=True):
        mh.update_batch(sorted(duplicates.shingles(text)) or [b""])
    assert sig.tobytes() == np.stack([mh.hashvalues.astype(np.uint32) for mh in expected]).tobytes()
    sets: list = []
    duplicates.signatures(texts, sets=sets)
    alone = duplicates.shingle_sets(texts)
    assert len(alone) == len(texts)
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(alone, sets, strict=True))
    features = duplicates.text_features(texts)
    assert features.keys == keys and np.array_equal(features.signatures, sig)


def test_export_names_each_step_with_its_counts(demo_copy, tmp_path):
    from brightrun.training_files.export import export_version

    ws = demo_copy
    tf.create_training_file(ws, "f")
    tf.add_conversations(ws, "f", _ids(ws, 30))
    steps: list[str] = []
    done = export_version(ws, "f", "openai_sft", tmp_path / "out", force_reason="test", progress=steps.append)
    records = sum(1 for f in done.files if f.suffix == ".jsonl" for line in f.read_bytes().splitlines() if line)
    assert len([f for f in done.files if f.suffix == ".jsonl"]) > 1  # a split besides train: counted too
    assert [s.split(" ")[0] for s in steps] == ["reading", "writing", "validating", "estimating", "checking"]
    assert steps[0] == "reading the records of f v2 (30 conversation(s))"
    assert steps[1].startswith(f"writing {records:,} openai_sft record(s) to ")
    assert steps[2].startswith(f"validating {records:,} record(s)")
