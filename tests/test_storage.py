"""The storage layer: atomic parts, latest row per key, crash-safe compaction, corrupt files."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from brightrun.errors import WorkspaceError
from brightrun.workspace import Workspace
from brightrun.workspace.files import safe_name, write_json
from brightrun.workspace.store import MANIFEST

NOW = datetime(2026, 11, 21, tzinfo=UTC)


def status_rows(ids, status):
    return [{"conversation_id": c, "status": status, "enrichment_version": "1", "updated_at": NOW} for c in ids]


def test_latest_row_per_key_wins_and_empty_tables_have_typed_views(ws: Workspace) -> None:
    assert ws.sql("SELECT * FROM training_pairs").height == 0
    assert "conversation_history" in ws.sql("SELECT * FROM training_pairs").columns
    ws.append("conversation_status", status_rows(["a", "b"], "enrichment_in_progress"))
    ws.append("conversation_status", status_rows(["a"], "completed"))
    rows = dict(ws.sql("SELECT conversation_id, status FROM _t_conversation_status").iter_rows())
    assert rows == {"a": "completed", "b": "enrichment_in_progress"}


def test_rows_must_match_the_table_columns(ws: Workspace) -> None:
    with pytest.raises(WorkspaceError, match="missing.*updated_at"):
        ws.append("conversation_status", [{"conversation_id": "a", "status": "x", "enrichment_version": "1"}])
    with pytest.raises(WorkspaceError, match="unknown table"):
        ws.append("nope", [{"a": 1}])


def test_writes_leave_no_temporary_files(ws: Workspace) -> None:
    for i in range(3):
        ws.append("conversation_status", status_rows([f"c{i}"], "completed"))
    names = [p.name for p in (ws.root / "tables" / "conversation_status").iterdir()]
    assert len(names) == 3 and all(n.startswith("part-") for n in names)


def test_compaction_keeps_every_key_once_with_its_latest_row(ws: Workspace) -> None:
    for i in range(10):
        ws.append("conversation_status", status_rows([f"c{j}" for j in range(i, i + 5)], f"s{i}"))
    before = ws.sql("SELECT * FROM _t_conversation_status ORDER BY conversation_id")
    absorbed = ws.store.compact("conversation_status")
    assert absorbed == 10
    files = ws.table_files("conversation_status")
    assert len(files.base) == 1 and files.deltas == ()
    after = ws.sql("SELECT * FROM _t_conversation_status ORDER BY conversation_id")
    assert after.equals(before) and after.height == 14
    # Later appends still win over the compacted base.
    ws.append("conversation_status", status_rows(["c0", "new"], "later"))
    rows = dict(ws.sql("SELECT conversation_id, status FROM _t_conversation_status").iter_rows())
    assert rows["c0"] == "later" and rows["new"] == "later" and len(rows) == 15
    ws.store.compact("conversation_status")
    assert dict(ws.sql("SELECT conversation_id, status FROM _t_conversation_status").iter_rows()) == rows


def test_crash_after_the_manifest_commit_doubles_nothing(ws: Workspace) -> None:
    ws.append("conversation_status", status_rows(["a", "b"], "one"))
    ws.append("conversation_status", status_rows(["b", "c"], "two"))
    folder = ws.root / "tables" / "conversation_status"
    parts = sorted(p.name for p in folder.glob("part-*"))
    saved = {name: (folder / name).read_bytes() for name in parts}
    ws.store.compact("conversation_status")
    base = ws.table_files("conversation_status").base[0].name
    # Simulate a crash between the manifest rename and the deletes: the absorbed parts are back.
    for name, data in saved.items():
        (folder / name).write_bytes(data)
    write_json(folder / MANIFEST, {"generation": 1, "base": [base], "absorbed": parts})
    assert ws.sql("SELECT count(*) FROM _t_conversation_status").item() == 3
    ws.store.compact("conversation_status", min_parts=1)
    assert sorted(p.name for p in folder.glob("part-*")) == []
    assert ws.sql("SELECT count(*) FROM _t_conversation_status").item() == 3


def test_a_crash_before_the_manifest_commit_leaves_the_old_state(ws: Workspace) -> None:
    ws.append("conversation_status", status_rows(["a"], "one"))
    folder = ws.root / "tables" / "conversation_status"
    (folder / "base-000009-deadbeef.parquet").write_bytes(b"half written")  # orphan of a crashed compaction
    (folder / ".tmp-part-123.parquet").write_bytes(b"PAR1")  # a writer that crashed mid-write
    assert ws.sql("SELECT status FROM _t_conversation_status").item() == "one"
    assert ws.problems == []


def test_corrupt_part_is_reported_left_out_and_quarantined(ws: Workspace) -> None:
    ws.append("conversation_status", status_rows(["good"], "completed"))
    folder = ws.root / "tables" / "conversation_status"
    (folder / "part-1-1-bad.parquet").write_bytes(b"this is not parquet")
    assert ws.sql("SELECT conversation_id FROM _t_conversation_status")["conversation_id"].to_list() == ["good"]
    assert len(ws.problems) == 1 and "part-1-1-bad.parquet" in ws.problems[0] and "quarantine" in ws.problems[0]
    ws.compact()
    assert (ws.root / "quarantine" / "conversation_status" / "part-1-1-bad.parquet").exists()
    assert (ws.root / "quarantine" / "conversation_status" / "part-1-1-bad.reason.txt").exists()
    assert ws.sql("SELECT count(*) FROM _t_conversation_status").item() == 1
    assert ws.problems == []


def test_query_errors_are_translated_and_parameters_are_bound(ws: Workspace) -> None:
    with pytest.raises(WorkspaceError, match="query failed"):
        ws.sql("SELECT * FROM no_such_view")
    ws.append("conversation_status", status_rows(["x'; DROP VIEW turns; --"], "completed"))
    found = ws.sql("SELECT count(*) FROM _t_conversation_status WHERE conversation_id = ?", ["x'; DROP VIEW turns; --"])
    assert found.item() == 1
    assert ws.sql("SELECT count(*) FROM turns").item() == 0


def test_views_exist_with_documented_names(ws: Workspace) -> None:
    for view in ["conversations", "turns", "training_pairs", "batch_jobs", "batch_items", "failed_generations",
                 "llm_calls", "personas", "emotional_arcs", "training_topics", "prompt_templates"]:
        assert view in ws.views()
        ws.sql(f"SELECT * FROM {view} LIMIT 1")
    arcs = ws.sql("SELECT tier, count(*) AS n FROM emotional_arcs GROUP BY 1 ORDER BY 1").to_dicts()
    assert arcs == [{"tier": "edge_case", "n": 3}, {"tier": "template", "n": 7}]
    templates = ws.sql("SELECT tier, is_current FROM prompt_templates")
    assert templates.height == 10 and templates["is_current"].all()
    columns = ws.sql("SELECT * FROM conversations").columns
    for column in ["persona_key", "arc_key", "topic_key", "template_key", "template_version", "provider", "model",
                   "enrichment_status", "tier"]:
        assert column in columns


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", "", " lead", "x" * 121, "nul\x00", "dot.name", "/abs"])
def test_unsafe_names_are_refused(name: str) -> None:
    with pytest.raises(WorkspaceError, match="not allowed"):
        safe_name(name)


def test_safe_names_pass() -> None:
    assert safe_name("Q4 advisor set_v2-final") == "Q4 advisor set_v2-final"


def test_workspace_path_must_be_a_folder(tmp_path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(WorkspaceError, match="is a file"):
        Workspace.open(tmp_path / "file")
    with pytest.raises(WorkspaceError, match="no workspace"):
        Workspace.open(tmp_path / "missing", create=False)


def _old_batch_job_file(ws: Workspace) -> None:
    """A batch_jobs part written before provider_options, concurrency, batch_api and max_attempts existed."""
    import polars as pl

    from brightrun.workspace.store import _CLOCK

    folder = ws.root / "tables" / "batch_jobs"
    folder.mkdir(parents=True)
    old = {"job_id": "old", "status": "completed", "tier": "template", "provider": "scripted", "model": "m",
           "seed": 1, "total": 1, "done": 1, "failed": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0,
           "created_at": NOW, "started_at": None, "finished_at": None, "updated_at": NOW, "note": "",
           "_seq": _CLOCK.next()}
    pl.DataFrame([old]).write_parquet(folder / "part-1-1-old.parquet")


def test_files_written_before_a_column_existed_read_with_its_default(ws: Workspace) -> None:
    from brightrun.generation import load_job

    _old_batch_job_file(ws)
    row = ws.sql("SELECT provider_options, concurrency, batch_api, max_attempts FROM batch_jobs").row(0)
    assert row == ("{}", 8, False, 3)
    job = load_job(ws, "old")
    ws.append_models("batch_jobs", [job.model_copy(update={"job_id": "new", "concurrency": 32})])
    rows = dict(ws.sql("SELECT job_id, concurrency FROM batch_jobs").iter_rows())
    assert rows == {"old": 8, "new": 32}
    ws.compact()
    assert dict(ws.sql("SELECT job_id, concurrency FROM batch_jobs").iter_rows()) == rows


def test_list_and_struct_columns_read_back_in_another_process(ws: Workspace) -> None:
    """Column names come from the Arrow schema, not Parquet leaf names (list.element)."""
    ws.append("provider_batches", [{"batch_id": "b", "job_id": "j", "provider": "p", "custom_ids": ["c1", "c2"],
                                    "item_ids": ["i1", "i2"], "attempts": [1, 2], "status": "submitted",
                                    "submitted_at": NOW, "updated_at": NOW}])
    fresh = Workspace.open(ws.root)  # a new reader knows the files only from disk
    row = fresh.sql("SELECT custom_ids, item_ids, attempts FROM provider_batches").row(0)
    assert row == (["c1", "c2"], ["i1", "i2"], [1, 2])


def test_appends_of_new_keys_compact_into_an_extra_base_file(ws: Workspace) -> None:
    ws.append("conversation_status", status_rows(["a", "b"], "one"))
    ws.append("conversation_status", status_rows(["c"], "one"))
    ws.store.compact("conversation_status")
    first = ws.table_files("conversation_status").base
    assert len(first) == 1
    ws.append("conversation_status", status_rows(["d"], "one"))
    ws.append("conversation_status", status_rows(["e"], "one"))
    ws.store.compact("conversation_status")
    tiered = ws.table_files("conversation_status").base
    assert len(tiered) == 2 and tiered[0] == first[0]  # the old base was not rewritten
    assert ws.sql("SELECT count(*) FROM _t_conversation_status").item() == 5
    # An update of a key in the base forces a rewrite into one file, latest row winning.
    ws.append("conversation_status", status_rows(["a"], "two"))
    ws.store.compact("conversation_status", min_parts=1)
    rewritten = ws.table_files("conversation_status").base
    assert len(rewritten) == 1 and rewritten[0] not in tiered
    rows = dict(ws.sql("SELECT conversation_id, status FROM _t_conversation_status").iter_rows())
    assert rows == {"a": "two", "b": "one", "c": "one", "d": "one", "e": "one"}
    assert sorted(p.name for p in (ws.root / "tables" / "conversation_status").glob("*.parquet")) == \
        sorted(p.name for p in rewritten)


def test_compaction_keeps_memory_to_the_keys_on_wide_rows(ws: Workspace) -> None:
    """Rows far wider than the compaction memory limit still compact (rows stream through a join)."""
    ws.store.compaction_memory = "128MB"
    big = "x" * 10_000  # 20,000 rows of 10 kB: 200 MB of text, like the prompts and answers of llm_calls
    for i in range(4):
        ws.append("enrichment_errors", [{"conversation_id": f"c{i}-{j}", "reason": big + str(j), "fix": "f",
                                         "enrichment_version": "1", "created_at": NOW} for j in range(5000)])
    ws.compact(tables=["enrichment_errors"])
    assert ws.sql("SELECT count(*), min(length(reason)) FROM enrichment_errors").row(0) == (20_000, 10_001)


def test_a_reader_survives_another_process_compacting_under_it(ws: Workspace) -> None:
    for i in range(3):
        ws.append("conversation_status", status_rows([f"c{i}"], "one"))
    assert ws.sql("SELECT count(*) FROM _t_conversation_status").item() == 3  # views now name the parts
    other = Workspace.open(ws.root)  # stands for another process
    other.compact()
    assert not list((ws.root / "tables" / "conversation_status").glob("part-*"))
    assert ws.sql("SELECT count(*) FROM _t_conversation_status").item() == 3  # re-lists and retries


def _same_rows(ws: Workspace, table: str, key: str) -> None:
    """ws.read (polars over the Parquet parts) gives exactly the rows of the DuckDB view."""
    polars_rows = ws.read(table).sort(key)
    duck_rows = ws.sql(f"SELECT * FROM _t_{table} ORDER BY {key}")
    assert polars_rows.columns == duck_rows.columns
    assert polars_rows.to_dicts() == duck_rows.to_dicts()


def test_polars_read_gives_the_views_rows_in_every_state_of_a_table(ws: Workspace) -> None:
    import polars as pl

    assert ws.read("conversation_status").height == 0  # no file yet: typed and empty
    assert ws.read("conversation_status").schema == ws.store.scan("conversation_status").collect_schema()
    ws.append("conversation_status", status_rows(["a", "b", "c"], "one"))
    ws.append("conversation_status", status_rows(["b"], "two"))
    ws.append("conversation_status", status_rows(["b", "d"], "three"))
    _same_rows(ws, "conversation_status", "conversation_id")  # deltas only, a key updated twice
    assert dict(ws.read("conversation_status").select("conversation_id", "status").iter_rows())["b"] == "three"
    ws.store.compact("conversation_status")
    _same_rows(ws, "conversation_status", "conversation_id")  # base only
    ws.append("conversation_status", status_rows(["a", "e"], "four"))
    _same_rows(ws, "conversation_status", "conversation_id")  # base with keys updated by deltas
    got = ws.read("conversation_status", lambda rows: rows.filter(pl.col("status") == "four"))
    assert sorted(got["conversation_id"]) == ["a", "e"]


def test_polars_read_fills_columns_older_files_lack_as_the_view_does(ws: Workspace) -> None:

    from brightrun.generation import load_job

    _old_batch_job_file(ws)
    assert ws.read("batch_jobs").select("provider_options", "concurrency", "batch_api").row(0) == ("{}", 8, False)
    job = load_job(ws, "old")
    ws.append_models("batch_jobs", [job.model_copy(update={"job_id": "new", "concurrency": 32})])
    _same_rows(ws, "batch_jobs", "job_id")
    ws.compact()
    _same_rows(ws, "batch_jobs", "job_id")


def test_polars_read_survives_another_process_compacting_under_it(ws: Workspace, monkeypatch) -> None:
    for i in range(3):
        ws.append("conversation_status", status_rows([f"c{i}"], "one"))
    listed = ws.store.files("conversation_status")
    real_files = ws.store.files
    calls = []

    def stale_then_real(table: str):
        calls.append(table)
        return listed if len(calls) == 1 else real_files(table)  # the first listing predates the compaction

    Workspace.open(ws.root).compact()  # another process absorbs the parts the listing names
    monkeypatch.setattr(ws.store, "files", stale_then_real)
    assert sorted(ws.read("conversation_status")["conversation_id"]) == ["c0", "c1", "c2"]
    assert len(calls) >= 2


def test_memo_computes_once_per_data_version(demo_copy) -> None:
    """Pages read expensive results (effectiveness, prompt versions, totals) through Workspace.memo: computed once
    while the data stay the same, again after any append or scaffolding edit."""
    from brightrun.explore.overview import totals
    from brightrun.prompts import effectiveness as eff
    from brightrun.prompts import registry

    ws = demo_copy
    calls = []

    def compute():
        calls.append(1)
        return len(calls)

    assert ws.memo("k", compute, ["feedback"]) == 1 and ws.memo("k", compute, ["feedback"]) == 1
    assert ws.memo("k", compute, ["conversations"]) == 2  # other tables: another version
    first = eff.effectiveness(ws, "quality")
    assert eff.effectiveness(ws, "quality") is first and registry.versions(ws) is registry.versions(ws)
    before = totals(ws)
    assert totals(ws) is before
    status = ws.read("conversation_status", lambda r: r.head(1)).to_dicts()[0]
    ws.append("conversation_status", [{**status, "status": "failed"}])
    assert totals(ws) is not before and totals(ws).enrichment_failed == before.enrichment_failed + 1
    assert eff.effectiveness(ws, "quality") is not first
    template = ws.scaffolding_dir / "templates"
    again = eff.effectiveness(ws, "quality")
    path = sorted(template.glob("*.yaml"))[0]
    path.write_text(path.read_text() + "\n# edited\n")
    ws._scaffold_checked = 0.0  # the scaffolding is looked at again at most once a second
    assert eff.effectiveness(ws, "quality") is not again


def test_parts_are_written_as_snappy_and_compaction_rewrites_them_as_zstd(ws: Workspace) -> None:
    """An append's part is cheap to write (Snappy: a flush runs beside the job's calls); the compacted base is zstd.
    DuckDB's views and polars read both the same."""
    import polars as pl
    import pyarrow.parquet as pq

    def codecs(paths) -> set[str]:
        return {pq.ParquetFile(p).metadata.row_group(0).column(i).compression
                for p in paths for i in range(pq.ParquetFile(p).metadata.num_columns)}

    for i in range(3):
        ws.append("conversation_status", status_rows([f"c{j}" for j in range(i, i + 3)], f"s{i}"))
    parts = ws.table_files("conversation_status").deltas
    assert len(parts) == 3 and codecs(parts) == {"SNAPPY"}
    before = ws.sql("SELECT conversation_id, status FROM _t_conversation_status ORDER BY 1")
    assert before.equals(ws.read("conversation_status").select("conversation_id", "status").sort("conversation_id"))
    assert dict(before.iter_rows()) == {"c0": "s0", "c1": "s1", "c2": "s2", "c3": "s2", "c4": "s2"}
    ws.store.compact("conversation_status")
    files = ws.table_files("conversation_status")
    assert files.deltas == () and codecs(files.base) == {"ZSTD"}
    assert ws.sql("SELECT conversation_id, status FROM _t_conversation_status ORDER BY 1").equals(before)
    assert isinstance(before, pl.DataFrame)


def test_a_table_listing_is_reused_only_while_its_folder_is_unchanged_and_settled(ws: Workspace, tmp_path) -> None:
    """Every query asks for every table's files: a listing is reused while the table folder's mtime is unchanged
    and over a second old, and any change (here by another process's store) is seen at once."""
    import os
    import time

    ws.append("conversation_status", status_rows(["a"], "s"))
    folder = ws.root / "tables" / "conversation_status"
    old = time.time_ns() - 10_000_000_000
    os.utime(folder, ns=(old, old))
    first = ws.store.files("conversation_status")
    assert ws.store.files("conversation_status") is first  # settled and unchanged: reused
    other = Workspace.open(ws.root)  # another writer (as another process would be)
    other.append("conversation_status", status_rows(["b"], "t"))
    again = ws.store.files("conversation_status")
    assert again is not first and len(again.deltas) == 2
    assert dict(ws.sql("SELECT conversation_id, status FROM _t_conversation_status").iter_rows()) == {"a": "s", "b": "t"}
    recent = time.time_ns()
    os.utime(folder, ns=(recent, recent))  # changed within the last second: listed again on every ask
    made_while_recent = ws.store.files("conversation_status")
    last = ws.store.files("conversation_status")
    assert last is not made_while_recent
    time.sleep(1.1)  # the same mtime, settled now: a listing made while it was recent is never reused
    settled = ws.store.files("conversation_status")
    assert settled is not last and settled is not made_while_recent
    assert ws.store.files("conversation_status") is settled


def test_overview_and_the_list_read_the_tables_and_agree_with_the_conversations_view(demo_copy) -> None:
    """totals, coverage and by_dimension read the conversations and status tables without the view's joins; they
    give what the same aggregates over the `conversations` view give, with every enrichment state present and
    status rows still in uncompacted parts (the latest row per conversation counts, not each row)."""
    from dataclasses import asdict

    from brightrun.explore import overview

    ws = demo_copy
    status = ws.read("conversation_status", lambda r: r.sort("conversation_id").head(30)).to_dicts()
    ws.append("conversation_status", [{**row, "status": "failed"} for row in status[:10]])
    ws.append("conversation_status", [{**row, "status": "enrichment_in_progress"} for row in status[10:20]])
    ws.append("conversation_status", [{**row, "status": "failed"} for row in status[20:30]])
    ws.append("conversation_status", [{**row, "status": "completed"} for row in status[20:25]])  # failed, redone
    fresh = ws.read("conversations", lambda r: r.head(3)).to_dicts()  # generated, never taken up by enrichment
    ws.append("conversations", [{**row, "conversation_id": f"zz-new-{k}"} for k, row in enumerate(fresh)])
    view = tuple(int(n) for n in ws.sql("""
        SELECT count(*) AS conversations, count_if(enrichment_status = 'completed') AS enriched,
               count_if(enrichment_status = 'failed') AS enrichment_failed,
               count_if(enrichment_status = 'not_started') AS not_started FROM conversations""").row(0))
    got = asdict(overview.totals(ws))
    assert (got["conversations"], got["enriched"], got["enrichment_failed"]) == view[:3]
    assert view[3] == 3 and got["enrichment_failed"] >= 15
    for enriched_only in (False, True):
        where = "WHERE enrichment_status = 'completed'" if enriched_only else ""
        counts = ws.sql(f"SELECT persona_key, topic_key, count(*) AS n FROM conversations {where} GROUP BY 1, 2")
        matrix = overview.coverage(ws, "persona", "topic", enriched_only=enriched_only)
        assert int(matrix.drop(matrix.columns[0]).sum_horizontal().sum()) == counts["n"].sum() > 0
        labels = overview.dimension_labels(ws, "persona")
        for persona, topic, n in counts.filter(pl.col("n") > 0).head(20).iter_rows():
            column = overview.dimension_labels(ws, "topic")[topic]
            assert matrix.filter(pl.col(matrix.columns[0]) == labels[persona])[column].item() == n
    by_arc = overview.by_dimension(ws, "arc")
    expected = ws.sql("""SELECT c.arc_key AS key, count(*) AS conversations,
                                sum(l.input_tokens + l.output_tokens)::BIGINT AS tokens
                         FROM conversations c LEFT JOIN llm_calls l ON l.call_id = c.call_id GROUP BY 1""")
    assert by_arc.select("key", "conversations", "tokens").sort("key").equals(expected.sort("key"))
    # the Conversations list filters the table and joins the status to the rows it returns
    from brightrun.explore import ConversationFilter, count_conversations, list_conversations

    persona = fresh[0]["persona_key"]
    for kw in ({}, {"personas": [persona]}, {"statuses": ["not_started", "failed"]}, {"limit": 7}):
        f = ConversationFilter(**kw)
        shown = list_conversations(ws, f)
        where = " AND ".join(f"{c} IN (SELECT unnest(?))" for c in ("persona_key", "enrichment_status")
                             if kw.get({"persona_key": "personas", "enrichment_status": "statuses"}[c]))
        params = [v for k, v in kw.items() if k != "limit"]
        want = ws.sql(f"""SELECT conversation_id, enrichment_status FROM conversations {'WHERE ' + where if where else ''}
                          ORDER BY created_at DESC, conversation_id LIMIT ?""", [*params, f.limit])
        assert shown.select("conversation_id", "enrichment_status").equals(want)
        assert count_conversations(ws, f) == ws.scalar(
            f"SELECT count(*) FROM conversations {'WHERE ' + where if where else ''}", params)
    assert {"not_started", "failed", "enrichment_in_progress"} <= set(list_conversations(
        ws, ConversationFilter(limit=100_000))["enrichment_status"])
