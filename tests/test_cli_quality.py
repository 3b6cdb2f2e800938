"""`brightrun quality report`, `brightrun quality judge` and `brightrun validate`."""

from __future__ import annotations

import orjson
from typer.testing import CliRunner

from brightrun.cli.main import app
from brightrun.quality.report import latest_quality_report
from brightrun.workspace import Workspace

runner = CliRunner()


def test_quality_report_saves_and_prints(demo_copy: Workspace) -> None:
    path = str(demo_copy.root)
    result = runner.invoke(app, ["quality", "report", "-w", path])
    assert result.exit_code == 0, result.output
    saved = latest_quality_report(demo_copy)
    assert saved is not None and saved.conversations == 160
    assert "160 conversations (160 enriched)" in result.stdout
    assert f"{len(saved.pair_duplicates.near)} near-duplicate cluster(s)" in result.stdout
    cells, draws = len(saved.diversity), sum(c.variation_draws for c in saved.diversity)
    assert draws >= cells and f"variation: {cells} of {cells} scaffold cell(s) drew declared variation, {draws:,} " \
        "distinct draw(s)" in result.stdout

    cached = runner.invoke(app, ["quality", "report", "-w", path, "--cached", "--json"])
    assert cached.exit_code == 0, cached.output
    data = orjson.loads(cached.stdout)
    assert data["training_pairs"] == saved.training_pairs and data["scores"]["enriched"] == 160
    assert "Out of date" not in cached.output

    demo_copy.append("conversation_status", [{"conversation_id": "conv-new", "status": "not_started",
                                              "enrichment_version": None, "updated_at": saved.computed_at}])
    demo_copy.append("conversations", demo_copy.sql("SELECT * FROM _t_conversations LIMIT 1")
                     .with_columns(conversation_id=__import__("polars").lit("conv-new")))
    stale = runner.invoke(app, ["quality", "report", "-w", path, "--cached"])
    assert "Out of date" in stale.output and "161" in stale.output


def test_cached_report_without_one_says_how_to_make_it(ws: Workspace) -> None:
    result = runner.invoke(app, ["quality", "report", "-w", str(ws.root), "--cached"])
    assert result.exit_code != 0 and "run `brightrun quality report`" in str(result.exception)


def test_quality_judge_scripted_is_incremental(demo_copy: Workspace) -> None:
    path = str(demo_copy.root)
    first = runner.invoke(app, ["quality", "judge", "-w", path, "--limit", "12", "--json"])
    assert first.exit_code == 0, first.output
    data = orjson.loads(first.stdout)
    assert (data["judged"], data["skipped"], data["failed"]) == (12, 0, 0)
    assert data["agreement"]["n"] == 12
    second = runner.invoke(app, ["quality", "judge", "-w", path, "--limit", "15"])
    assert second.exit_code == 0, second.output
    assert "Judged 3 pair(s), skipped 12 already judged, 0 failed" in second.output
    assert demo_copy.scalar("SELECT count(*) FROM llm_calls WHERE action_type = 'quality_judge'") == 15


def test_quality_judge_exits_1_unless_every_pair_was_judged(demo_copy: Workspace, monkeypatch) -> None:
    from llm_server import FakeLLMServer, FaultPlan

    path = str(demo_copy.root)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-judge-exit-test")
    with FakeLLMServer(seed=3) as server:
        # Every request refused alike: the first 5 stop the run, the rest are never sent.
        server.faults = FaultPlan(rate=1.0, kinds=["bad_request"])
        stopped = runner.invoke(app, ["quality", "judge", "-w", path, "--provider", "anthropic", "--base-url",
                                      server.base_url, "--limit", "30", "--concurrency", "1"])
        assert stopped.exit_code == 1, stopped.output
        said = " ".join(stopped.output.split())
        assert "the first 5 calls all failed with the same error" in said
        assert server.counts()["messages"] == 5
        # One pair's answers always miss the schema: the others are judged, and the exit code says not all.
        server.faults = FaultPlan(rate=0.0)
        server.reset_counts()
        ok = runner.invoke(app, ["quality", "judge", "-w", path, "--provider", "anthropic", "--base-url",
                                 server.base_url, "--limit", "6", "--json"])
        assert ok.exit_code == 0, ok.output
        judged = demo_copy.sql("SELECT pair_id FROM judge_scores WHERE status = 'ok'")["pair_id"].to_list()
        server.faults = FaultPlan(rate=1.0, kinds=["schema_invalid"])
        bad = runner.invoke(app, ["quality", "judge", "-w", path, "--provider", "anthropic", "--base-url",
                                  server.base_url, "--limit", "8", "--json"])
        assert bad.exit_code == 1, bad.output
        assert orjson.loads(bad.stdout.splitlines()[0])["failed"] == 8 - len(set(judged))
