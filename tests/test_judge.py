"""The optional LLM judge: the scripted provider offline, and the real anthropic SDK against the fake
server (success, transient faults, permanent faults, schema-invalid answers), incrementality, agreement."""

from __future__ import annotations

import asyncio
import json

import anthropic
import openai
import pytest
from llm_server import FakeLLMServer, FaultPlan, is_judge_request, make_conversation, make_judgement

from brightrun.errors import WorkspaceError
from brightrun.providers import ProviderRequest, ProviderResponse, ScriptedProvider
from brightrun.providers.claude import ClaudeProvider
from brightrun.quality.judge import (
    ACTION_TYPE,
    JUDGE_SCHEMA,
    RUBRIC_VERSION,
    SYSTEM,
    JudgeAnswer,
    agreement,
    agreement_of,
    judge_pairs,
    judge_table,
    parse_answer,
)
from brightrun.quality.scoring import DIMENSIONS
from brightrun.workspace import Workspace, utcnow

KEY = "sk-ant-test-4b2e9c1d7a3f-never-log-me"
FAST = {"max_attempts": 8, "backoff_base": 0.01}


@pytest.fixture
def server():
    with FakeLLMServer(seed=11) as srv:
        yield srv


def claude(server: FakeLLMServer) -> ClaudeProvider:
    return ClaudeProvider(api_key=KEY, base_url=server.base_url, timeout=10.0)


def calls(ws: Workspace):
    return ws.sql("SELECT * FROM llm_calls WHERE action_type = 'quality_judge' ORDER BY call_id")


def pair_ids(ws: Workspace, n: int) -> list[str]:
    return ws.sql("SELECT pair_id FROM training_pairs ORDER BY pair_id LIMIT ?", [n])["pair_id"].to_list()


# -- scripted, offline --------------------------------------------------------------------------------


def test_scripted_judge_scores_pairs_and_logs_every_call(demo_copy: Workspace) -> None:
    ws, seen = demo_copy, []
    result = judge_pairs(ws, ScriptedProvider(), limit=20, sample_seed=1, progress=lambda d, t: seen.append((d, t)))
    assert (result.judged, result.skipped, result.failed, result.calls) == (20, 0, 0, 20)
    assert result.cost_usd == 0 and result.seconds > 0 and seen[0] == (0, 20) and seen[-1] == (20, 20)
    table = judge_table(ws)
    assert table.height == 20 and set(table["status"]) == {"ok"} and set(table["judge_model"]) == {"scripted-1"}
    assert set(table["rubric_version"]) == {RUBRIC_VERSION} and table["heuristic_overall"].null_count() == 0
    assert table["rationale"].str.len_chars().min() > 10
    for d in DIMENSIONS:  # 1-5 mapped to 0-1
        assert set(table[f"judge_{d}"].to_list()) <= {0.0, 0.25, 0.5, 0.75, 1.0}
    assert table["judge_overall"].is_between(0, 10).all()
    log = calls(ws)
    assert log.height == 20 and set(log["provider"]) == {"scripted"} and set(log["status"]) == {"ok"}
    assert log["cost_usd"].null_count() == 0 and (log["input_tokens"] > 0).all() and (log["output_tokens"] > 0).all()
    assert set(log["template_version"]) == {RUBRIC_VERSION} and set(log["item_id"]) == set(table["pair_id"])
    request = json.loads(log["request"][0])
    assert request["action_type"] == ACTION_TYPE and request["temperature"] == 0.0 and "<advisor_response>" in request["prompt"]
    # every score names the call that produced it
    assert set(table["call_id"]) <= set(log["call_id"])
    # the judge agrees with the heuristics it is built from, up to its noise
    stats = agreement(ws)
    assert stats["n"] == 20 and stats["spearman"] > 0.7 and stats["mean_abs_diff"] < 1.5


def test_reruns_skip_what_is_judged_and_force_judges_again(demo_copy: Workspace) -> None:
    ws = demo_copy
    first = judge_pairs(ws, ScriptedProvider(), limit=20, sample_seed=1)
    before = set(judge_table(ws)["pair_id"])
    again = judge_pairs(ws, ScriptedProvider(), limit=20, sample_seed=1)
    assert (again.judged, again.skipped, again.calls) == (0, 20, 0) and calls(ws).height == 20
    wider = judge_pairs(ws, ScriptedProvider(), limit=30, sample_seed=1)  # a stable sample: the 20 are inside
    assert (wider.judged, wider.skipped) == (10, 20) and before < set(judge_table(ws)["pair_id"])
    forced = judge_pairs(ws, ScriptedProvider(), limit=20, sample_seed=1, force=True)
    assert (forced.judged, forced.skipped) == (20, 0) and first.judged == 20
    assert judge_table(ws).height == 30 and calls(ws).height == 50  # scores replaced, calls all kept
    chosen = pair_ids(ws, 3)
    picked = judge_pairs(ws, ScriptedProvider(), pair_ids=chosen)
    assert picked.judged + picked.skipped == 3
    with pytest.raises(WorkspaceError, match="not in training_pairs"):
        judge_pairs(ws, ScriptedProvider(), pair_ids=["no-such-pair"])


def test_scripted_judge_is_deterministic_and_needs_no_scaffold(demo_copy: Workspace) -> None:
    judge_pairs(demo_copy, ScriptedProvider(), limit=5)
    request = ProviderRequest(**{k: v for k, v in json.loads(calls(demo_copy)["request"][0]).items()},
                              output_schema=JUDGE_SCHEMA)
    assert request.scaffold is None
    a, b = (asyncio.run(ScriptedProvider().complete(request)) for _ in range(2))
    assert a.text == b.text and JudgeAnswer.model_validate_json(a.text)
    assert calls(demo_copy)["response"][0] == a.text


def test_cut_off_answers_are_corrected_and_permanent_ones_fail(demo_copy: Workspace) -> None:
    ws = demo_copy
    flaky = judge_pairs(ws, ScriptedProvider(failure_rate=1.0), limit=6)  # every first answer cut off
    assert (flaky.judged, flaky.failed, flaky.calls) == (6, 0, 12)
    retried = ws.sql("SELECT request, error FROM llm_calls WHERE action_type = 'quality_judge' ORDER BY attempt")
    assert "cut off" in retried["error"][0] and "could not be used" in retried["request"][-1]
    broken = judge_pairs(ws, ScriptedProvider(permanent_failure_rate=1.0), limit=10)
    assert (broken.judged, broken.failed, broken.skipped, broken.calls) == (0, 4, 6, 8)
    assert all("invalid answer after a correction" in e["reason"] for e in broken.errors)
    failed = judge_table(ws, include_failed=True).filter(status="failed")
    assert failed.height == 4 and failed["judge_overall"].null_count() == 4 and failed["error"].null_count() == 0
    assert judge_table(ws).height == 6  # failures are not scores
    # a forced re-judge that fails keeps the earlier good scores
    judge_pairs(ws, ScriptedProvider(permanent_failure_rate=1.0), limit=6, force=True)
    assert judge_table(ws).height == 6
    # the next ordinary run tries the failed pairs again
    healed = judge_pairs(ws, ScriptedProvider(), limit=10)
    assert (healed.judged, healed.skipped) == (4, 6) and judge_table(ws, include_failed=True).height == 10


# -- the real anthropic SDK against the fake server -------------------------------------------------


def test_claude_judge_round_trip(demo_copy: Workspace, server: FakeLLMServer) -> None:
    ws = demo_copy
    result = judge_pairs(ws, claude(server), limit=8, concurrency=4, **FAST)
    assert (result.judged, result.failed, result.calls) == (8, 0, 8)
    assert server.counts()["messages"] == 8
    table = judge_table(ws)
    assert set(table["judge_model"]) == {"claude-sonnet-5-5"} and set(table["judge_provider"]) == {"anthropic"}
    for row in table.iter_rows(named=True):  # the server's answer, mapped 1-5 -> 0-1
        expected = make_judgement(row["pair_id"])
        assert row["judge_overall"] == expected["overall"] and row["rationale"] == expected["rationale"]
        assert all(row[f"judge_{d}"] == (expected[d] - 1) / 4 for d in DIMENSIONS)
    log = calls(ws)
    assert set(log["provider"]) == {"anthropic"} and (log["cost_usd"] > 0).all()
    expected_cost = (log["input_tokens"].sum() * 2 + log["output_tokens"].sum() * 10) / 1e6  # claude-sonnet-5-5
    assert result.cost_usd == pytest.approx(expected_cost, rel=1e-3)
    judge_cost = "SELECT sum(cost_usd) FROM llm_calls WHERE action_type = 'quality_judge'"
    assert ws.sql(judge_cost).item() == pytest.approx(expected_cost, rel=1e-3)  # the demo's app log has its own
    assert not any(KEY in text for text in log["request"].to_list() + log["response"].to_list())
    # the same pairs with the same model are not paid for twice
    again = judge_pairs(ws, claude(server), limit=8, **FAST)
    assert (again.judged, again.skipped) == (0, 8) and server.counts()["messages"] == 8


def test_claude_transient_faults_are_retried(demo_copy: Workspace, server: FakeLLMServer) -> None:
    server.faults = FaultPlan(rate=0.5, kinds=["rate_limit", "server_error", "overloaded"], retry_after=0.01)
    result = judge_pairs(demo_copy, claude(server), limit=10, concurrency=4, **FAST)
    assert (result.judged, result.failed) == (10, 0)
    errors = calls(demo_copy).filter(status="error")["error"].to_list()
    assert errors and result.calls == 10 + len(errors) and all("HTTP" in e for e in errors)
    assert sum(server.item_counts().values()) == result.calls


def test_claude_permanent_and_schema_invalid_faults_fail_only_their_pairs(demo_copy: Workspace,
                                                                          server: FakeLLMServer) -> None:
    ws = demo_copy
    ids = pair_ids(ws, 6)
    server.faults = FaultPlan(permanent={ids[0]: "bad_request", ids[1]: "schema_invalid"})
    result = judge_pairs(ws, claude(server), pair_ids=ids, **FAST)
    assert (result.judged, result.failed) == (4, 2)
    reasons = {e["pair_id"]: e["reason"] for e in result.errors}
    assert "HTTP 400" in reasons[ids[0]] and "invalid answer after a correction" in reasons[ids[1]]
    assert "judge schema" in reasons[ids[1]]
    assert server.item_counts()[ids[0]] == 1 and server.item_counts()[ids[1]] == 2  # one correction only
    corrected = ws.sql("SELECT request FROM llm_calls WHERE item_id = ? AND attempt = 2", [ids[1]]).item()
    assert "could not be used" in corrected
    failed = judge_table(ws, include_failed=True).filter(status="failed")
    assert sorted(failed["pair_id"]) == sorted(ids[:2]) and failed["error"].null_count() == 0
    assert set(judge_table(ws)["pair_id"]) == set(ids[2:])


def test_claude_authentication_error_stops_the_run(demo_copy: Workspace, server: FakeLLMServer) -> None:
    ids = pair_ids(demo_copy, 12)
    server.faults = FaultPlan(permanent=dict.fromkeys(ids, "authentication"))
    result = judge_pairs(demo_copy, claude(server), pair_ids=ids, concurrency=2, **FAST)
    assert result.stopped and "ANTHROPIC_API_KEY" in result.stopped and KEY not in result.stopped
    assert result.judged == 0 and 1 <= result.failed <= 2 and server.counts()["messages"] <= 2


# -- the fake server speaks the judge schema -----------------------------------------------------------


def test_fake_server_answers_judge_requests_in_the_judge_schema(server: FakeLLMServer) -> None:
    client = anthropic.Anthropic(base_url=server.base_url, api_key="test-key", max_retries=0, timeout=5)
    judged = client.messages.create(model="claude-test", max_tokens=600, system="Score this.",
                                    messages=[{"role": "user", "content": "Judge it."}], metadata={"user_id": "p1"},
                                    output_config={"format": {"type": "json_schema", "schema": JUDGE_SCHEMA}})
    answer = JudgeAnswer.model_validate_json(judged.content[0].text)
    assert answer.model_dump() == make_judgement("p1")
    plain = client.messages.create(model="claude-test", max_tokens=600, system="Write a conversation.",
                                   messages=[{"role": "user", "content": "Go."}], metadata={"user_id": "p1"})
    assert json.loads(plain.content[0].text) == make_conversation("p1")  # unchanged for everything else
    by_system = client.messages.create(model="claude-test", max_tokens=600, system=SYSTEM,
                                       messages=[{"role": "user", "content": "Judge it."}], metadata={"user_id": "p2"})
    assert json.loads(by_system.content[0].text) == make_judgement("p2")
    client.close()
    oai = openai.OpenAI(base_url=server.base_url + "/v1", api_key="test-key", max_retries=0, timeout=5)
    chat = oai.chat.completions.create(model="gpt-test", user="p3", messages=[{"role": "user", "content": "x"}],
                                       response_format={"type": "json_schema", "json_schema": {
                                           "name": "judge", "schema": JUDGE_SCHEMA}})
    assert json.loads(chat.choices[0].message.content) == make_judgement("p3")
    oai.close()
    assert not is_judge_request({"system": "Write conversations", "messages": []})


def test_schema_and_answer_parsing() -> None:
    text = json.dumps(JUDGE_SCHEMA)
    assert "minimum" not in text and "maximum" not in text  # Anthropic's structured output refuses bounds
    assert JUDGE_SCHEMA["additionalProperties"] is False and set(JUDGE_SCHEMA["required"]) == {
        *DIMENSIONS, "overall", "rationale"}
    good = {**dict.fromkeys(DIMENSIONS, 3), "overall": 6.5, "rationale": "Fine."}
    fenced = ProviderResponse(text="```json\n" + json.dumps(good) + "\n```", model="m")
    assert parse_answer(fenced).overall == 6.5
    for bad, why in (({**good, "empathy": 6}, "empathy"), ({**good, "overall": 11}, "overall"),
                     ({k: v for k, v in good.items() if k != "rationale"}, "rationale")):
        with pytest.raises(ValueError, match=why):
            parse_answer(ProviderResponse(text=json.dumps(bad), model="m"))
    with pytest.raises(ValueError, match="cut off"):
        parse_answer(ProviderResponse(text="{", model="m", stop_reason="max_tokens"))


# -- agreement -----------------------------------------------------------------------------------------


def crafted(ws: Workspace, model: str, overall) -> None:
    pairs = ws.sql("SELECT pair_id, conversation_id, quality_score FROM training_pairs ORDER BY pair_id LIMIT 40")
    ws.append("judge_scores", [{
        "pair_id": r["pair_id"], "rubric_version": RUBRIC_VERSION, "model": model, "provider": "crafted",
        "conversation_id": r["conversation_id"], "status": "ok", **dict.fromkeys(DIMENSIONS, 0.5),
        "overall": overall(r["quality_score"]), "rationale": "crafted", "error": None, "call_id": None,
        "attempts": 1, "created_at": utcnow()} for r in pairs.iter_rows(named=True)])


def test_agreement_on_crafted_scores(demo_copy: Workspace) -> None:
    ws = demo_copy
    crafted(ws, "same", lambda q: q)
    crafted(ws, "monotone", lambda q: q / 2 + 1)
    crafted(ws, "reversed", lambda q: 10 - q)
    same, monotone, reverse = (agreement(ws, model=m) for m in ("same", "monotone", "reversed"))
    assert same["n"] == 40 and same["spearman"] == 1.0 and same["mean_abs_diff"] == 0.0
    assert monotone["spearman"] == 1.0 and monotone["mean_abs_diff"] > 0
    assert reverse["spearman"] == -1.0
    q = ws.sql("SELECT quality_score FROM training_pairs ORDER BY pair_id LIMIT 40")["quality_score"]
    assert monotone["mean_abs_diff"] == pytest.approx(float((q - (q / 2 + 1)).abs().mean()), abs=1e-4)
    assert same["by_dimension"]["empathy"]["mean_abs_diff"] is not None
    assert agreement(ws, model="nobody") == {"n": 0, "spearman": None, "p_value": None, "mean_abs_diff": None,
                                              "by_dimension": {d: {"spearman": None, "mean_abs_diff": None}
                                                               for d in DIMENSIONS}}


def test_agreement_of_plain_lists() -> None:
    assert agreement_of([1, 2, 3, None], [10, 20, 30, 40])["spearman"] == 1.0
    assert agreement_of([1, 2, 3], [3, 2, 1])["spearman"] == -1.0
    out = agreement_of([5, 5, 5], [1, 2, 3])
    assert out["n"] == 3 and out["spearman"] is None and out["mean_abs_diff"] == pytest.approx(3.0)
    assert agreement_of([], [])["n"] == 0
