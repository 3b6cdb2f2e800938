"""Every request BrightRun sends is one the real APIs accept: Claude's structured-output schema subset, and
OpenAI-compatible servers as users run them (llama.cpp-like servers that refuse json_schema, chat templates
without a system role). The local server enforces the APIs' documented rules; these tests prove we keep them."""

from __future__ import annotations

import pytest
from llm_server import claude_schema_problem

from brightrun.doctor.schemas import outgoing_schemas
from brightrun.generation.requests import OUTPUT_SCHEMA
from brightrun.providers.schema import claude_schema, conversation_schema, inline_refs


def test_every_schema_the_package_sends_is_inside_claudes_subset() -> None:
    schemas = outgoing_schemas()
    assert {"conversation", "quality_judge"} <= set(schemas)
    for name, schema in schemas.items():
        assert claude_schema_problem(claude_schema(schema)) is None, name


def test_the_rules_bite_on_the_untransformed_conversation_schema() -> None:
    # The schema as pydantic writes it is what the API refused: title bounds and minItems 2.
    assert claude_schema_problem(inline_refs(OUTPUT_SCHEMA)) == (
        "output_config.format.schema.title: For 'string' type, property 'maxLength' is not supported")


def test_dropped_bounds_move_into_descriptions() -> None:
    sent = claude_schema(conversation_schema(8))
    assert "maxLength: 200" in sent["properties"]["title"]["description"]
    assert "minItems: 8" in sent["properties"]["turns"]["description"]
    assert "maxItems: 8" in sent["properties"]["turns"]["description"]
    assert sent["additionalProperties"] is False and sent["properties"]["turns"]["items"]["additionalProperties"] is False


@pytest.mark.parametrize("turns", [2, 6, 12])
def test_the_conversation_schema_fixes_the_turn_count(turns: int) -> None:
    schema = conversation_schema(turns)
    assert schema["properties"]["turns"]["minItems"] == schema["properties"]["turns"]["maxItems"] == turns
    assert conversation_schema()["properties"]["turns"]["minItems"] == 2


# -- end to end, through the real SDKs and a server that refuses what the real one refuses --------------

import orjson  # noqa: E402
from llm_server import FakeLLMServer, FaultPlan  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from brightrun.cli.main import app  # noqa: E402
from brightrun.errors import ProviderError  # noqa: E402
from brightrun.generation import RunSettings, create_job, load_job, make_plan, run_job  # noqa: E402
from brightrun.generation.requests import correction  # noqa: E402
from brightrun.providers.base import ProviderRequest, ProviderResponse  # noqa: E402
from brightrun.providers.claude import ClaudeProvider  # noqa: E402
from brightrun.providers.openai_compat import OpenAICompatibleProvider  # noqa: E402
from brightrun.quality.judge import JUDGE_SCHEMA, judge_pairs  # noqa: E402
from brightrun.workspace import Workspace  # noqa: E402

KEY = "sk-ant-contract-test-5e4d3c2b1a"
FAST = RunSettings(concurrency=8, max_attempts=3, flush_items=50, flush_seconds=0.3, backoff_base=0.01)
runner = CliRunner()


def _job(ws: Workspace, provider: str, job_id: str, count: int = 1, model: str = "", **options):
    plan = make_plan(ws, ["david_chen"], ["confusion_to_clarity"], None, count=count)
    return create_job(ws, plan, provider=provider, model=model, seed=3, job_id=job_id, provider_options=options)


def test_a_claude_job_and_the_judge_pass_the_strict_server(ws: Workspace) -> None:
    with FakeLLMServer(seed=2) as server:
        server.keep_message_bodies = True
        job = _job(ws, "anthropic", "strict", count=2)
        done = run_job(ws, job.job_id, ClaudeProvider(api_key=KEY, base_url=server.base_url), settings=FAST)
        assert (done.done, done.failed) == (done.total, 0)
        from brightrun.enrichment.pipeline import enrich

        enrich(ws)
        result = judge_pairs(ws, ClaudeProvider(api_key=KEY, base_url=server.base_url), limit=4)
        assert (result.judged, result.failed) == (4, 0)
        assert server.counts()["invalid"] == 0  # no request was refused
        # The schema travels as output_config in the body (through extra_body, which the SDK merges in).
        bodies = server.message_bodies
        assert len(bodies) == job.total + 4 and all("extra_body" not in b for b in bodies)
        schemas = [b["output_config"]["format"]["schema"] for b in bodies]
        assert {tuple(s["properties"]) for s in schemas} == {("title", "turns"), tuple(JUDGE_SCHEMA["properties"])}

        sendable = [claude_schema(conversation_schema(n)) for n in range(2, 41, 2)] + [claude_schema(JUDGE_SCHEMA)]
        assert all(s in sendable for s in schemas)
        assert list(claude_schema(JUDGE_SCHEMA)["properties"]) == list(JUDGE_SCHEMA["properties"])  # order kept
        sent = [orjson.loads(c) for c in ws.sql("SELECT request FROM llm_calls")["request"].to_list()]
        assert sent and all("output_schema" not in r for r in sent)  # the log keeps no schema copies


def test_llama_cpp_server_with_auto_json_mode_falls_back_and_completes(ws: Workspace) -> None:
    with FakeLLMServer(seed=2, openai_mode="llama.cpp") as server:
        job = _job(ws, "openai-compatible", "llama", count=3, model="gemma-3-1b", base_url=server.base_url + "/v1")
        provider = OpenAICompatibleProvider(base_url=server.base_url + "/v1", model="gemma-3-1b")
        done = run_job(ws, job.job_id, provider, settings=FAST)
        assert (done.done, done.failed) == (done.total, 0)
        assert "fell back to json_object with the schema" in done.note
        assert "Input should be 'text' or 'json_object'" in done.note
        # Every later request went out as json_object with the schema; answers were fenced with raw newlines.
        formats = [b.get("response_format") for b in server.chat_bodies]
        assert formats and all(f["type"] == "json_object" and f["schema"]["properties"]["turns"] for f in formats)
        assert all(t.startswith("```json") for t in ws.sql("SELECT response FROM llm_calls")["response"].to_list())
        assert ws.sql("SELECT count(*) FROM conversations").item() == done.total


def test_a_refused_json_mode_stops_early_with_the_servers_words(ws: Workspace, tmp_path) -> None:
    with FakeLLMServer(seed=2, openai_mode="llama.cpp") as server:
        path = str(tmp_path / "cli-ws")
        result = runner.invoke(app, [
            "generate", "-w", path, "--provider", "openai-compatible", "--base-url", server.base_url + "/v1",
            "--model", "gemma-3-1b", "--json-mode", "json_schema", "--persona", "david_chen", "--count", "3",
            "--concurrency", "1", "--job-id", "refused"])
        assert result.exit_code == 1, result.output
        assert "stopped early" in " ".join(result.output.split())
        ws2 = Workspace.open(path)
        job = load_job(ws2, "refused")
        assert job.status == "failed" and "the first 5 calls all failed" in job.note
        assert ws2.sql("SELECT count(*) FROM llm_calls").item() == 5  # not the whole grid
        assert server.counts()["chat"] == 5
        messages = ws2.sql("SELECT message FROM failed_generations")["message"].to_list()
        assert len(messages) == 5 and all("Input should be 'text' or 'json_object'" in m for m in messages)
        assert all("--json-mode auto" in m for m in messages)  # the fix


def test_fold_system_reaches_a_model_without_a_system_role(ws: Workspace) -> None:
    with FakeLLMServer(seed=2, openai_mode="no_system") as server:
        base = server.base_url + "/v1"
        plain = _job(ws, "openai-compatible", "plain", model="m", base_url=base)
        run_job(ws, plain.job_id, OpenAICompatibleProvider(base_url=base, model="m"), settings=FAST)
        assert server.system_dropped == plain.total  # the system prompt never reached the model
        server.reset_counts()
        folded = _job(ws, "openai-compatible", "folded", model="m", base_url=base, fold_system=True)
        done = run_job(ws, folded.job_id, OpenAICompatibleProvider(base_url=base, model="m", fold_system=True),
                       settings=FAST)
        assert done.done == done.total and server.system_dropped == 0
        first = server.chat_bodies[0]["messages"][0]
        assert first["role"] == "user" and "financial" in first["content"].split("\n\n")[0].lower()


def test_exit_codes_tell_the_truth(tmp_path) -> None:
    path = str(tmp_path / "ws")
    ok = runner.invoke(app, ["generate", "-w", path, "--persona", "david_chen", "--arc", "confusion_to_clarity",
                             "--count", "2", "--seed", "1"])
    assert ok.exit_code == 0, ok.output
    no_model = runner.invoke(app, ["generate", "-w", path, "--provider", "openai-compatible", "--base-url",
                                   "http://127.0.0.1:9/v1", "--persona", "david_chen"])
    assert no_model.exit_code != 0 and "needs its model id" in str(no_model.exception)
    with FakeLLMServer(seed=2) as server:
        # Some items fail on every attempt: exit 1, with how many and the commonest reason.
        server.faults = FaultPlan(permanent={f"job-part-{i:06d}": "schema_invalid" for i in (0, 2)})
        part = runner.invoke(app, ["generate", "-w", path, "--provider", "anthropic", "--base-url", server.base_url,
                                   "--persona", "david_chen", "--arc", "confusion_to_clarity", "--count", "1",
                                   "--job-id", "job-part", "--max-attempts", "2"], env={"ANTHROPIC_API_KEY": KEY})
        assert part.exit_code == 1, part.output
        said = " ".join(part.output.split())
        assert "commonest reason: malformed_output" in said
        total = load_job(Workspace.open(path), "job-part").total
        assert f"2 of {total} conversation(s) not made" in said


def test_the_first_calls_failing_alike_stop_a_claude_job(ws: Workspace) -> None:
    with FakeLLMServer(seed=2) as server:
        job = _job(ws, "anthropic", "doomed", count=4)
        server.faults = FaultPlan(permanent={f"doomed-{i:06d}": "bad_request" for i in range(job.total)})
        from brightrun.errors import JobStopped

        with pytest.raises(JobStopped, match="the first 5 calls all failed with the same error"):
            run_job(ws, job.job_id, ClaudeProvider(api_key=KEY, base_url=server.base_url),
                    settings=RunSettings(concurrency=2, max_attempts=3, backoff_base=0.01))
        assert server.counts()["messages"] <= 6  # 5, and one already in flight at most
        assert load_job(ws, "doomed").status == "failed"


def test_settings_change_on_resume_and_are_noted(ws: Workspace, tmp_path) -> None:
    with FakeLLMServer(seed=2, openai_mode="llama.cpp") as server:
        base = server.base_url + "/v1"
        job = _job(ws, "openai-compatible", "later", model="wrong-model", base_url="http://127.0.0.1:9/v1",
                   json_mode="json_schema", timeout=5)
        result = runner.invoke(app, ["jobs", "resume", "later", "-w", str(ws.root), "--base-url", base,
                                     "--model", "gemma-3-1b", "--json-mode", "json_object", "--timeout", "30"])
        assert result.exit_code == 0, result.output
        done = load_job(ws, "later")
        assert done.model == "gemma-3-1b" and done.done == job.total
        assert f"base_url={base}" in done.note and "json_mode=json_object" in done.note and "model=gemma-3-1b" in done.note
        assert orjson.loads(done.provider_options) == {"base_url": base, "json_mode": "json_object", "timeout": 30.0,
                                                       "trusted_base_url": True}  # typed at the shell
        assert {r for r in ws.sql("SELECT DISTINCT model FROM llm_calls")["model"].to_list()} == {"gemma-3-1b"}


def test_corrections_quote_only_the_beginning_of_a_long_answer() -> None:
    long = ProviderResponse(text="{" + "x" * 50_000, model="m", stop_reason="max_tokens")
    quoted = correction(long, "the answer was cut off at max_tokens")[0]["content"]
    assert len(quoted) < 2_100 and quoted.startswith("{xxx") and "48,001 more characters not repeated" in quoted
    assert correction(ProviderResponse(text="short", model="m"), "p")[0]["content"] == "short"


async def _ask(provider, **kw):
    request = ProviderRequest(system="s", prompt="p", model="m", tag="t", output_schema=conversation_schema(2), **kw)
    try:
        return await provider.complete(request)
    finally:
        await provider.aclose()


def test_the_servers_own_error_text_is_kept_and_timeouts_name_their_flag() -> None:
    import asyncio

    with FakeLLMServer(seed=2, openai_mode="llama.cpp") as server:
        provider = OpenAICompatibleProvider(base_url=server.base_url + "/v1", json_mode="json_schema")
        with pytest.raises(ProviderError) as info:
            asyncio.run(_ask(provider))
        assert "Input should be 'text' or 'json_object'" in str(info.value) and not info.value.transient
        server.faults = FaultPlan(permanent={"t": "hang"}, hang_seconds=5)
        slow = ClaudeProvider(api_key=KEY, base_url=server.base_url, timeout=1)
        with pytest.raises(ProviderError) as info:
            asyncio.run(_ask(slow))
        assert "within the 1 s timeout" in str(info.value) and "--timeout" in str(info.value)


def _reference_key(request: ProviderRequest, provider: str) -> str:
    """The cache key as first defined: pydantic's JSON dump of the request, sorted, hashed. Keys in existing
    workspaces were made this way, so the fast path must give the same."""
    import hashlib

    shaped = request.model_dump(mode="json", exclude={"tag", "scaffold", "attempt", "action_type"})
    shaped["provider"] = provider
    return hashlib.sha256(orjson.dumps(shaped, option=orjson.OPT_SORT_KEYS)).hexdigest()


def test_the_cache_key_and_the_logged_request_are_what_they_were(ws: Workspace) -> None:
    from brightrun.generation.requests import build_request
    from brightrun.quality.judge import JUDGE_SCHEMA

    job = _job(ws, "anthropic", "keys", count=3)
    items = ws.sql("SELECT * FROM batch_items WHERE job_id = 'keys'").to_dicts()
    from brightrun.models import BatchItem

    requests = [build_request(ws, BatchItem.model_validate(i), seed, 1, None) for seed, i in enumerate(items)]
    requests.append(requests[0].model_copy(update={"feedback": [{"role": "assistant", "content": "{\"x\": 1.5}"},
                                                                {"role": "user", "content": "again \u00e9"}]}))
    requests.append(ProviderRequest(system="s", prompt="p", model="m", output_schema=JUDGE_SCHEMA, temperature=0))
    requests.append(ProviderRequest(system="s", prompt="p", model="m", tag="t", attempt=3))
    assert len({r.cache_key("anthropic") for r in requests}) == len(requests) and job.total == 24
    for request in requests:
        for provider in ("anthropic", "openai-compatible@http://x/v1+fold_system"):
            assert request.cache_key(provider) == _reference_key(request, provider)
        assert request.for_log() == request.model_dump(mode="json", exclude={"output_schema"})
