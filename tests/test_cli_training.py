"""`brightrun training-file ...`: create, add (all or nothing), split, show, build, export gated by the
data contracts, validate."""

from __future__ import annotations

from pathlib import Path

import orjson
from typer.testing import CliRunner

from brightrun.cli.main import app
from brightrun.workspace import Workspace

runner = CliRunner()


def test_training_file_from_filter_to_validated_openai_export(demo_copy: Workspace, tmp_path: Path) -> None:
    path = str(demo_copy.root)
    assert runner.invoke(app, ["training-file", "create", "advisor v1", "-w", path]).exit_code == 0
    bad = runner.invoke(app, ["training-file", "create", "../escape", "-w", path])
    assert bad.exit_code != 0

    # An ineligible conversation blocks the whole addition and is named with its reason.
    demo_copy.append("conversation_status", [{"conversation_id": "conv-demo-template-000001", "status": "failed",
                                              "enrichment_version": "2", "updated_at": demo_copy.scalar(
                                                  "SELECT max(updated_at) FROM _t_conversation_status")}])
    blocked = runner.invoke(app, ["training-file", "add", "advisor v1", "-w", path, "--id", "conv-demo-template-000001"])
    assert blocked.exit_code != 0 and "conv-demo-template-000001" in str(blocked.exception)
    assert "no conversations" in str(runner.invoke(app, ["training-file", "export", "advisor v1", "openai_sft",
                                                         str(tmp_path / "x"), "-w", path, "--force", "test"]).exception)
    ok = runner.invoke(app, ["training-file", "add", "advisor v1", "-w", path, "--persona", "marcus_chen"])
    assert ok.exit_code == 0, ok.output
    members = demo_copy.scalar("SELECT count(*) FROM conversations WHERE persona_key = 'marcus_chen'")
    assert f"{members:,} conversation(s)" in ok.output

    split = runner.invoke(app, ["training-file", "split", "advisor v1", "-w", path, "--ratios", "70", "15", "15"])
    assert split.exit_code == 0 and "version 3" in split.output
    shown = runner.invoke(app, ["training-file", "show", "advisor v1", "-w", path, "--json"])
    data = orjson.loads(shown.stdout)
    assert [v["version"] for v in data["versions"]] == [1, 2, 3] and data["leaks"] == []

    built = runner.invoke(app, ["training-file", "build", "advisor v1", "-w", path])
    assert built.exit_code == 0 and "training.jsonl" in built.output

    # No contract run yet: the export is blocked unless forced, and a forced export records why.
    target = tmp_path / "openai"
    blocked = runner.invoke(app, ["training-file", "export", "advisor v1", "openai_sft", str(target), "-w", path])
    assert blocked.exit_code != 0 and "brightrun validate" in str(blocked.exception)
    forced = runner.invoke(app, ["training-file", "export", "advisor v1", "openai_sft", str(target), "-w", path,
                                 "--force", "contracts run in CI", "--json"])
    assert forced.exit_code == 0, forced.output
    result = orjson.loads(forced.stdout)
    assert result["valid"] and result["errors"] == []
    assert orjson.loads((target / "brightrun_export.json").read_bytes())["forced"] == "contracts run in CI"
    lines = [orjson.loads(line) for p in sorted((target / "data").glob("*.jsonl")) for line in p.read_bytes().splitlines()]
    assert len(lines) == members and all(m["role"] in {"system", "user", "assistant"} for m in lines[0]["messages"])
    # After a contract run on the workspace the export needs no force; the record says the contracts passed.
    demo_copy.append("conversation_status", [{"conversation_id": "conv-demo-template-000001", "status": "completed",
                                              "enrichment_version": "2", "updated_at": demo_copy.scalar(
                                                  "SELECT max(updated_at) FROM _t_conversation_status")}])
    assert runner.invoke(app, ["validate", "-w", path]).exit_code == 0
    again = runner.invoke(app, ["training-file", "export", "advisor v1", "trl_sft", str(tmp_path / "trl"), "-w", path])
    assert again.exit_code == 0, again.output
    assert orjson.loads((tmp_path / "trl" / "brightrun_export.json").read_bytes())["contracts_passed"] is True
    checked = runner.invoke(app, ["training-file", "validate", "openai_sft", str(target)])
    assert checked.exit_code == 0 and "valid" in checked.stdout
    (target / "data" / "train.jsonl").write_text('{"messages": []}\n')
    broken = runner.invoke(app, ["training-file", "validate", "openai_sft", str(target)])
    assert broken.exit_code == 1 and "problem" in broken.stdout


def test_export_and_validate_exit_1_when_a_consumer_rule_fails(demo_copy: Workspace, tmp_path: Path) -> None:
    path = str(demo_copy.root)
    ids = demo_copy.sql("SELECT conversation_id FROM conversations WHERE enrichment_status = 'completed' "
                        "ORDER BY 1 LIMIT 3")["conversation_id"].to_list()
    assert runner.invoke(app, ["training-file", "create", "tiny", "-w", path]).exit_code == 0
    added = runner.invoke(app, ["training-file", "add", "tiny", "-w", path, *[a for i in ids for a in ("--id", i)]])
    assert added.exit_code == 0, added.output
    # 3 conversations: OpenAI needs at least 10 training examples. The files are written, the command failed.
    for extra in ([], ["--json"]):
        target = tmp_path / f"openai{len(extra)}"
        done = runner.invoke(app, ["training-file", "export", "tiny", "openai_sft", str(target), "-w", path,
                                   "--force", "test", *extra])
        assert done.exit_code == 1, done.output
        assert (target / "data").exists() and "min_examples" in done.stdout
        assert ("error: the export breaks 1 rule(s) of its consumer" in done.stdout) == (not extra)
    checked = runner.invoke(app, ["training-file", "validate", "openai_sft", str(tmp_path / "openai0")])
    assert checked.exit_code == 1 and "min_examples" in checked.stdout
    # a format whose consumer accepts 3 examples exits 0
    fine = runner.invoke(app, ["training-file", "export", "tiny", "trl_sft", str(tmp_path / "trl"), "-w", path,
                               "--force", "test"])
    assert fine.exit_code == 0, fine.output
    assert "No priced target model trains from trl_sft" in fine.stdout and "gpt-4o" not in fine.stdout


def test_add_by_filter_tops_up_with_an_enrichment_status_filter(demo_copy: Workspace) -> None:
    path = str(demo_copy.root)
    matched = demo_copy.sql("SELECT conversation_id FROM conversations WHERE persona_key = 'david_chen' "
                            "ORDER BY 1")["conversation_id"].to_list()
    demo_copy.append("conversation_status", [{"conversation_id": matched[0], "status": "not_started",
                                              "enrichment_version": "2", "updated_at": demo_copy.scalar(
                                                  "SELECT max(updated_at) FROM _t_conversation_status")}])
    assert runner.invoke(app, ["training-file", "create", "top", "-w", path]).exit_code == 0
    first = runner.invoke(app, ["training-file", "add", "top", "-w", path, "--persona", "david_chen"])
    assert first.exit_code == 0, first.output
    assert f"added {len(matched) - 1} new (1 not enriched)" in first.output
    assert f"left out {matched[0]}: enrichment_status is 'not_started'" in first.stdout
    done = runner.invoke(app, ["training-file", "add", "top", "-w", path, "--persona", "david_chen",
                               "--enrichment-status", "completed"])
    assert done.exit_code != 0 and f"{len(matched) - 1:,} already members" in str(done.exception)


def test_add_takes_workers_and_refuses_a_count_under_one(demo_copy: Workspace) -> None:
    path = str(demo_copy.root)
    assert runner.invoke(app, ["training-file", "create", "w", "-w", path]).exit_code == 0
    refused = runner.invoke(app, ["training-file", "add", "w", "-w", path, "--persona", "marcus_chen", "--workers", "0"])
    assert refused.exit_code != 0 and "--workers 0" in str(refused.exception)
    assert demo_copy.scalar("SELECT count(*) FROM training_file_versions WHERE name = 'w'") == 1  # nothing added
    ok = runner.invoke(app, ["training-file", "add", "w", "-w", path, "--persona", "marcus_chen", "--workers", "2"])
    assert ok.exit_code == 0, ok.output
    assert demo_copy.scalar("SELECT count(*) FROM training_file_versions WHERE name = 'w'") == 2
