"""Batch jobs with the scripted provider: exact counts, determinism, failures, resume."""

from __future__ import annotations

import os

import polars as pl
import pytest

from brightrun.errors import JobError, ProviderError
from brightrun.generation import create_job, job_is_running, load_job, plan_spread, plan_uniform, run_job
from brightrun.providers import ScriptedProvider, get_provider
from brightrun.workspace import Workspace


def small_plan(ws: Workspace, count: int = 2):
    return plan_uniform(ws.scaffolding.cells(["david_chen"], ["confusion_to_clarity", "grief_to_planning"],
                                             ["emergency_fund", "mortgage_payoff_strategy"]), count)


def test_job_makes_exactly_the_planned_conversations(ws: Workspace) -> None:
    job = create_job(ws, small_plan(ws, 3), provider="scripted", model="scripted-1", seed=1, job_id="j1")
    assert job.status == "queued" and job.total == 12
    done = run_job(ws, "j1", ScriptedProvider())
    assert (done.status, done.done, done.failed) == ("completed", 12, 0)
    conv = ws.sql("SELECT * FROM conversations")
    assert conv.height == 12 and conv["conversation_id"].n_unique() == 12
    assert set(conv["provider"]) == {"scripted"} and conv["is_scripted"].all() and set(conv["model"]) == {"scripted-1"}
    assert ws.sql("SELECT count(*) FROM llm_calls WHERE action_type = 'conversation_generation'").item() == 12
    cells = ws.sql("SELECT persona_key, arc_key, topic_key, count(*) AS n FROM conversations GROUP BY ALL")
    assert cells.height == 4 and set(cells["n"]) == {3}
    turns = ws.sql("SELECT conversation_id, count(*) AS n, min(turn_number) AS lo, max(turn_number) AS hi "
                   "FROM turns GROUP BY 1")
    assert (turns["lo"] == 1).all() and (turns["hi"] == turns["n"]).all()
    items = ws.sql("SELECT status, count(*) AS n FROM batch_items GROUP BY 1").to_dicts()
    assert items == [{"status": "completed", "n": 12}]


def test_scripted_output_is_deterministic_and_varied(tmp_path) -> None:
    texts = []
    for name in ("a", "b"):
        ws = Workspace.open(tmp_path / name)
        create_job(ws, small_plan(ws, 2), provider="scripted", model="scripted-1", seed=5, job_id="j")
        run_job(ws, "j", ScriptedProvider())
        texts.append(ws.sql("SELECT conversation_id, turn_number, content FROM turns ORDER BY 1, 2"))
    assert texts[0].equals(texts[1])
    contents = texts[0].group_by("conversation_id").agg(pl.col("content").str.join("\n").alias("t"))["t"]
    assert contents.n_unique() == contents.len()  # no two conversations are the same
    lengths = texts[0].group_by("conversation_id").len()["len"]
    assert lengths.n_unique() > 1  # lengths vary


def test_scripted_client_follows_the_arc(ws: Workspace) -> None:
    create_job(ws, small_plan(ws, 2), provider="scripted", model="scripted-1", seed=2, job_id="j")
    run_job(ws, "j", ScriptedProvider())
    arc = ws.scaffolding.arcs["confusion_to_clarity"]
    firsts = ws.sql("SELECT t.content FROM turns t JOIN conversations c USING (conversation_id) "
                    "WHERE c.arc_key = 'confusion_to_clarity' AND t.turn_number = 1")["content"]
    assert all(arc.stages[0].emotion in text for text in firsts)


def test_recoverable_faults_are_retried_and_logged(ws: Workspace) -> None:
    create_job(ws, small_plan(ws, 5), provider="scripted", model="scripted-1", seed=3, job_id="j")
    job = run_job(ws, "j", ScriptedProvider(failure_rate=0.5))
    assert (job.done, job.failed) == (20, 0)
    errors = ws.sql("SELECT * FROM llm_calls WHERE status = 'error'")
    assert errors.height > 0 and (errors["attempt"] == 1).all()
    assert errors["response"].str.starts_with('{"title"').all()  # the raw response is kept
    assert ws.sql("SELECT count(*) FROM llm_calls").item() == 20 + errors.height


def test_permanent_failures_land_in_failed_generations(ws: Workspace) -> None:
    create_job(ws, small_plan(ws, 5), provider="scripted", model="scripted-1", seed=4, job_id="j")
    job = run_job(ws, "j", ScriptedProvider(permanent_failure_rate=0.3), max_attempts=2)
    failed = ws.sql("SELECT * FROM failed_generations")
    assert job.failed == failed.height > 0 and job.done + job.failed == 20
    assert set(failed["error_type"]) == {"malformed_output"}
    assert failed["raw_response"].is_not_null().all() and (failed["attempt"] == 2).all()
    assert ws.sql("SELECT count(*) FROM batch_items WHERE status = 'failed'").item() == job.failed
    assert ws.sql("SELECT count(*) FROM conversations").item() == job.done


def test_resume_after_a_crash_between_conversation_and_item_writes(ws: Workspace) -> None:
    create_job(ws, small_plan(ws, 3), provider="scripted", model="scripted-1", seed=6, job_id="j")
    run_job(ws, "j", ScriptedProvider())
    before = ws.sql("SELECT conversation_id, title FROM conversations ORDER BY 1")
    # Rewind: items say pending and the job says processing, but the conversations exist (a crash
    # right after the conversation rows were written).
    items = ws.sql("SELECT * FROM batch_items").to_dicts()
    ws.append("batch_items", [{**i, "status": "pending", "conversation_id": None} for i in items[:7]])
    ws.append("batch_jobs", [{**ws.sql("SELECT * FROM batch_jobs").row(0, named=True), "status": "processing"}])
    calls_before = ws.sql("SELECT count(*) FROM llm_calls").item()
    job = run_job(ws, "j", ScriptedProvider())
    assert (job.status, job.done) == ("completed", 12)
    assert ws.sql("SELECT count(*) FROM llm_calls").item() == calls_before  # nothing regenerated
    assert ws.sql("SELECT conversation_id, title FROM conversations ORDER BY 1").equals(before)
    assert ws.sql("SELECT count(*) FROM batch_items WHERE status = 'completed'").item() == 12


def test_a_second_runner_of_the_same_job_is_refused(ws: Workspace) -> None:
    create_job(ws, small_plan(ws, 1), provider="scripted", model="scripted-1", job_id="j")
    with ws.lock("job-j", timeout=1):
        assert job_is_running(ws, "j")
        with pytest.raises(JobError, match=rf"being run by `.+` \(process {os.getpid()} on .+\) since 20"):
            run_job(ws, "j", ScriptedProvider())
    assert not job_is_running(ws, "j")


def test_job_errors_say_what_to_do(ws: Workspace) -> None:
    create_job(ws, small_plan(ws, 1), provider="scripted", model="scripted-1", job_id="j")
    with pytest.raises(JobError, match="already exists.*--resume j"):
        create_job(ws, small_plan(ws, 1), provider="scripted", model="scripted-1", job_id="j")
    with pytest.raises(JobError, match="not allowed"):
        create_job(ws, small_plan(ws, 1), provider="scripted", model="scripted-1", job_id="../x")
    with pytest.raises(JobError, match="no job 'nope'"):
        run_job(ws, "nope", ScriptedProvider())
    with pytest.raises(JobError, match="at least 1"):
        plan_uniform(ws.scaffolding.cells(), 0)


def test_spread_plan_is_exact_and_uneven(ws: Workspace) -> None:
    s = ws.scaffolding
    plan = plan_spread(s.cells(), 600, 42, s)
    counts = [p.count for p in plan]
    assert sum(counts) == 600 and max(counts) >= 4 * max(1, min(counts))
    assert len(plan) < len(s.cells())  # some cells are empty
    assert plan == plan_spread(s.cells(), 600, 42, s)


def test_template_versions_are_recorded_and_survive_yaml_edits(ws: Workspace) -> None:
    create_job(ws, small_plan(ws, 1), provider="scripted", model="scripted-1", job_id="j")
    version = ws.scaffolding.versions["tpl_confusion_to_clarity"]
    path = ws.scaffolding_dir / "templates" / "tpl_confusion_to_clarity.yaml"
    path.write_text(path.read_text().replace("description:", "description: Edited.", 1))
    assert ws.reload_scaffolding().versions["tpl_confusion_to_clarity"] != version
    job = run_job(ws, "j", ScriptedProvider())  # runs with the recorded version, not the edited one
    assert job.done == 4
    used = ws.sql("SELECT DISTINCT template_version FROM conversations WHERE template_key = 'tpl_confusion_to_clarity'")
    assert used["template_version"].to_list() == [version]
    versions = ws.sql("SELECT version, is_current FROM prompt_templates WHERE template_key = 'tpl_confusion_to_clarity'")
    assert versions.height == 2 and sorted(versions["is_current"].to_list()) == [False, True]


def test_unknown_provider_and_bad_rates() -> None:
    with pytest.raises(Exception, match="unknown provider 'nope'"):
        get_provider("nope")
    with pytest.raises(ProviderError, match="between 0 and 1"):
        ScriptedProvider(failure_rate=2)
    assert load_job  # imported for the public API


def test_a_job_returns_with_its_rows_committed_and_tidies_its_tables_in_the_background(ws: Workspace,
                                                                                         monkeypatch) -> None:
    """The job's result does not wait for the compaction and Delta publication of its tables: run_job returns
    while they are held up, every conversation already readable; then the parts are merged and published."""
    import threading

    from deltalake import DeltaTable

    from brightrun.workspace.publish import delta_path

    release, started = threading.Event(), threading.Event()
    compact = Workspace.compact

    def held_compact(self, *args, **kwargs):
        started.set()
        assert release.wait(30), "the test never released the compaction"
        return compact(self, *args, **kwargs)

    monkeypatch.setattr(Workspace, "compact", held_compact)
    create_job(ws, small_plan(ws, 3), provider="scripted", model="scripted-1", seed=1, job_id="bg")
    done = run_job(ws, "bg", ScriptedProvider(), flush_items=1)  # one part per conversation
    assert started.wait(10) and (done.status, done.done) == ("completed", 12)
    assert ws.wait_for_background(timeout=0.05) is False  # still held: the result came first
    assert ws.sql("SELECT count(*) FROM conversations").item() == 12
    assert len(ws.store.files("conversations").deltas) >= 8
    release.set()
    assert ws.wait_for_background(timeout=30) is True
    assert ws.store.files("conversations").deltas == ()
    published = DeltaTable(delta_path(ws.store, "conversations")).to_pyarrow_table()
    assert published.num_rows == 12


def test_a_failed_background_compaction_is_reported_once_and_loses_no_row(ws: Workspace, monkeypatch) -> None:
    from brightrun.errors import WorkspaceError

    def broken(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Workspace, "compact", broken)
    create_job(ws, small_plan(ws, 1), provider="scripted", model="scripted-1", seed=1, job_id="bg2")
    assert run_job(ws, "bg2", ScriptedProvider()).done == 4
    with pytest.raises(WorkspaceError, match=r"disk full.*Fix: run `brightrun compact`"):
        ws.wait_for_background(timeout=30)
    assert ws.wait_for_background() is True  # reported once
    assert ws.sql("SELECT count(*) FROM conversations").item() == 4


def test_the_calls_run_with_the_old_heap_frozen_and_young_collections_rarer(ws: Workspace) -> None:
    """While a job's calls run, what was alive before is frozen out of the collector and the young generation is
    collected every 20,000 allocations (a call makes a few hundred); both are undone when the job ends."""
    import gc

    from brightrun.generation.control import YOUNG_GC_THRESHOLD

    seen: list[tuple[int, int]] = []

    class Watching(ScriptedProvider):
        async def complete(self, request):
            seen.append((gc.get_threshold()[0], gc.get_freeze_count()))
            return await super().complete(request)

    before = gc.get_threshold()
    create_job(ws, small_plan(ws, 1), provider="scripted", model="scripted-1", seed=1, job_id="gc")
    assert run_job(ws, "gc", Watching()).status == "completed"
    assert seen and all(threshold == max(before[0], YOUNG_GC_THRESHOLD) and frozen > 0 for threshold, frozen in seen)
    assert YOUNG_GC_THRESHOLD >= 20_000 and gc.get_threshold() == before and gc.get_freeze_count() == 0
