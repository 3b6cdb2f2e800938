"""The optional LLM judge: a model scores training pairs with a versioned rubric.

Rubric `judge-v1` scores a pair's `target_response`, read with the persona, arc, topic, history and the
client's current input, on the six heuristic dimensions, each an integer 1 (poor) to 5 (excellent) stored
as (score - 1) / 4 on the heuristics' 0-1 scale, plus `overall` (0 to 10) and a one-sentence `rationale`.
Every call, answered or not, is an `llm_calls` row with action type `quality_judge`. Scores go to
`judge_scores`, keyed by (pair_id, rubric_version, model): a pair judged `ok` is skipped unless `force`; a
failed one gets a `failed` row with the reason and is tried again next run (a failed re-judgement never
replaces an `ok` score). Rate limits and transient errors are retried with backoff; a malformed answer is
retried once with a correction, then recorded as failed.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

import orjson
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from brightrun import aio
from brightrun.errors import BrightRunError, ProviderError, WorkspaceError
from brightrun.generation.limiter import AdaptiveLimiter, EarlyStop, backoff
from brightrun.models import LLMCall
from brightrun.providers.answers import echo, problem_of, validate_answer
from brightrun.providers.base import Provider, ProviderRequest, ProviderResponse
from brightrun.providers.errors import RateLimited
from brightrun.providers.scripted import Script, register_script
from brightrun.quality.scoring import DIMENSIONS, score_response
from brightrun.workspace import Workspace, utcnow

RUBRIC_VERSION, ACTION_TYPE, TEMPERATURE, MAX_TOKENS = "judge-v1", "quality_judge", 0.0, 600
TABLE = "judge_scores"
RUBRIC = {
    "empathy": "acknowledges the client's feelings, naming them, before advising",
    "clarity": "plain, well-structured sentences of moderate length; any jargon explained",
    "actionable": "gives concrete next steps the client can take",
    "asks_first": "asks a relevant question to understand the client before prescribing (score 5 on the "
                  "advisor's final turn, where no question is needed)",
    "length_balance": "long enough to help, short enough to read (roughly 40 to 180 words)",
    "repetition": "free of repeated sentences and stock filler (5 = no repetition at all)"}
# Anthropic's structured output refuses numeric bounds: the 1-5 scale is an enum, and JudgeAnswer checks overall.
JUDGE_SCHEMA: dict = {"type": "object", "additionalProperties": False, "required": [*DIMENSIONS, "overall", "rationale"],
                      "properties": {
    **{d: {"type": "integer", "enum": [1, 2, 3, 4, 5], "description": RUBRIC[d]} for d in DIMENSIONS},
    "overall": {"type": "number", "description": "0 to 10: the response as a training example"},
    "rationale": {"type": "string", "description": "one sentence: the main strength or weakness"}}}
SYSTEM = (f"You are a strict, consistent quality judge of training data for a financial-planning advisor model. "
          f"You score one advisor response with rubric {RUBRIC_VERSION} and answer only with the JSON object asked for.")
Score = Annotated[int, Field(ge=1, le=5)]


class JudgeAnswer(BaseModel):
    """A judge's answer, validated (extra keys are ignored)."""
    model_config = ConfigDict(extra="ignore")
    empathy: Score
    clarity: Score
    actionable: Score
    asks_first: Score
    length_balance: Score
    repetition: Score
    overall: float = Field(ge=0, le=10)
    rationale: str = Field(min_length=1, max_length=1000)


@dataclass
class JudgeResult:
    judged: int = 0
    skipped: int = 0
    failed: int = 0
    cost_usd: float = 0.0
    seconds: float = 0.0
    calls: int = 0
    errors: list[dict] = field(default_factory=list)  # {"pair_id", "reason"} of each failed pair
    stopped: str | None = None  # why the run stopped early (a refused key, the same error on every first call)


def build_prompt(pair: dict, ws: Workspace) -> str:
    """The judge prompt for one training_pairs row (plus `is_last`)."""
    sc, rubric = ws.scaffolding, "\n".join(f"- {d}: {RUBRIC[d]}" for d in DIMENSIONS)
    persona, arc, topic = sc.personas.get(pair["persona_key"]), sc.arcs.get(pair["arc_key"]), sc.topics.get(pair["topic_key"])
    history = "\n".join(f"{'Client' if t['role'] == 'user' else 'Advisor'}: {t['content']}"
                        for t in pair["conversation_history"] or []) or "(this is the first exchange)"
    return (f"Rubric {RUBRIC_VERSION}. Score the advisor response at the end on six dimensions, each an integer "
        f"from 1 (poor) to 5 (excellent):\n{rubric}\nThen give `overall`, a number from 0 to 10 for how good "
        f"this response is as a training example for the advisor, and `rationale`, one sentence naming its "
        f"main strength or weakness.\n\n"
        f"Client: {persona.name + ' (' + persona.archetype + '); ' + persona.background if persona else pair['persona_key']}\n"
        f"Emotional arc: {arc.name + ' (' + arc.start_emotion + ' to ' + arc.end_emotion + ')' if arc else pair['arc_key']}\n"
        f"Topic: {topic.name if topic else pair['topic_key']}\n"
        f"Advisor turn: {pair['turn_number'] // 2}. Final advisor turn: {'yes' if pair.get('is_last') else 'no'}\n\n"
        f"<conversation_history>\n{history}\n</conversation_history>\n\n"
        f"<client_input>\n{pair['current_user_input']}\n</client_input>\n\n"
        f"<advisor_response>\n{pair['target_response']}\n</advisor_response>")


def parse_prompt(prompt: str) -> tuple[str, bool]:
    """(the advisor response, whether it is the final turn) out of a judge prompt."""
    start, end = prompt.find("<advisor_response>\n"), prompt.rfind("\n</advisor_response>")
    if start < 0 or end < start:
        raise ValueError("not a judge prompt: no <advisor_response> block")
    return prompt[start + len("<advisor_response>\n"):end], "Final advisor turn: yes" in prompt[:start]


def parse_answer(response: ProviderResponse) -> JudgeAnswer:
    """The validated answer, or ValueError saying what is wrong with it."""
    if response.stop_reason == "max_tokens":
        raise ValueError("the answer was cut off at max_tokens")
    try:
        return validate_answer(JudgeAnswer, response.text)
    except ValidationError as exc:
        raise ValueError(problem_of(exc, "judge")) from None


def correction(response: ProviderResponse, problem: str) -> list[dict]:
    return [{"role": "assistant", "content": echo(response.text)}, {"role": "user", "content": (
        f"That answer could not be used: {problem}. Reply again with only the JSON object: {', '.join(DIMENSIONS)} "
        f"(integers 1 to 5), overall (0 to 10) and rationale (one sentence).")}]


def _plan(ws: Workspace, pair_ids: list[str] | None, limit: int | None, sample_seed: int, model: str,
          force: bool) -> tuple[list[dict], set[str], int]:
    """(the rows to judge, the pairs already judged ok, how many were skipped). With `limit`, a stable
    sample ordered by a hash of seed and id, so raising the limit keeps the pairs judged before."""
    where, params = ("WHERE pair_id IN (SELECT unnest(?::VARCHAR[]))", [pair_ids]) if pair_ids is not None else ("", [])
    order = "pair_id" if limit is None else "md5(?::VARCHAR || ':' || pair_id) LIMIT ?"
    params += [] if limit is None else [str(sample_seed), max(0, int(limit))]
    chosen = ws.sql(f"SELECT pair_id FROM training_pairs {where} ORDER BY {order}", params)["pair_id"].to_list()
    if pair_ids is not None and limit is None and len(chosen) < len(set(pair_ids)):
        unknown = sorted(set(pair_ids) - set(chosen))
        raise WorkspaceError(f"{len(unknown)} pair id(s) are not in training_pairs, e.g. {unknown[:3]}. "
                             f"Fix: pick ids from the training_pairs view (run `brightrun enrich` first).")
    done = set(ws.sql(f"SELECT pair_id FROM {TABLE} WHERE rubric_version = ? AND model = ? AND status = 'ok' "
                      "AND pair_id IN (SELECT unnest(?::VARCHAR[]))", [RUBRIC_VERSION, model, chosen])["pair_id"])
    todo = chosen if force else [p for p in chosen if p not in done]
    rows = ws.sql(
        "SELECT p.pair_id, p.conversation_id, p.turn_number, p.persona_key, p.arc_key, p.topic_key, "
        "p.conversation_history, p.current_user_input, p.target_response, "
        "coalesce(p.turn_number = c.turn_count, false) AS is_last FROM training_pairs p "
        "LEFT JOIN conversations c USING (conversation_id) WHERE p.pair_id IN (SELECT unnest(?::VARCHAR[]))",
        [todo]).rows(named=True)
    order = {p: i for i, p in enumerate(todo)}
    return sorted(rows, key=lambda r: order[r["pair_id"]]), done, len(chosen) - len(todo)


class _Run:
    def __init__(self, ws: Workspace, provider: Provider, model: str, judged_before: set[str], result: JudgeResult,
                 settings: tuple[int, int, float], progress: Callable[[int, int], None] | None) -> None:
        self.ws, self.provider, self.model, self.result = ws, provider, model, result
        self.judged_before, self.progress = judged_before, progress
        self.concurrency, self.max_attempts, self.backoff_base = settings
        self.limiter = AdaptiveLimiter(self.concurrency, base_backoff=self.backoff_base)
        self.early_stop = EarlyStop()
        self.run_id = f"{utcnow():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
        self.calls, self.scores, self.finished, self.last_flush = [], [], 0, time.monotonic()

    def record_call(self, call_id: str, request: ProviderRequest, r: ProviderResponse | None, error: str | None,
                    started: float) -> None:
        cost = 0.0 if r is None or r.cache_hit else self.provider.cost_usd(r.model, r.input_tokens, r.output_tokens,
                                                                           r.batch)
        self.calls.append(LLMCall(
            call_id=call_id, action_type=ACTION_TYPE, provider=self.provider.name,
            model=r.model if r else request.model, request=orjson.dumps(request.for_log()).decode(),
            response=r.text if r else "", input_tokens=r.input_tokens if r else 0,
            output_tokens=r.output_tokens if r else 0, cost_usd=cost,
            latency_ms=r.latency_ms if r else (time.perf_counter() - started) * 1000,
            cache_hit=r.cache_hit if r else False, template_version=RUBRIC_VERSION, item_id=request.tag,
            attempt=request.attempt, status="error" if error else "ok", error=error, created_at=utcnow()))
        self.result.calls += 1
        self.result.cost_usd += cost

    def record_score(self, pair: dict, answer: JudgeAnswer | None, call_id: str | None, attempts: int,
                     error: str | None = None) -> None:
        ok = answer is not None
        self.result.judged, self.result.failed = self.result.judged + ok, self.result.failed + (not ok)
        if not ok:
            self.result.errors.append({"pair_id": pair["pair_id"], "reason": error})
            if pair["pair_id"] in self.judged_before:
                return  # keep the earlier good score; the failed calls are on record
        self.scores.append({
            "pair_id": pair["pair_id"], "rubric_version": RUBRIC_VERSION, "model": self.model,
            "provider": self.provider.name, "conversation_id": pair["conversation_id"],
            "status": "ok" if ok else "failed", **{d: (getattr(answer, d) - 1) / 4 if ok else None for d in DIMENSIONS},
            "overall": round(answer.overall, 2) if ok else None, "rationale": answer.rationale.strip() if ok else None,
            "error": error, "call_id": call_id, "attempts": attempts, "created_at": utcnow()})

    async def judge(self, pair: dict) -> None:
        """Judge one pair to a score or a recorded failure; a provider's fault never raises."""
        pid, prompt = pair["pair_id"], build_prompt(pair, self.ws)
        seed, feedback = int(hashlib.sha256(pid.encode()).hexdigest()[:8], 16), []
        attempt = errors = bad = waits = 0
        while self.result.stopped is None:
            attempt += 1
            request = ProviderRequest(action_type=ACTION_TYPE, system=SYSTEM, prompt=prompt, model=self.model,
                                      temperature=TEMPERATURE, max_tokens=MAX_TOKENS, output_schema=JUDGE_SCHEMA,
                                      seed=seed, attempt=attempt, tag=pid, feedback=feedback)
            call_id = f"judge-{self.run_id}-{pid}-a{attempt}"
            started, delay, failure, response = time.perf_counter(), 0.0, None, None
            epoch = await self.limiter.acquire()
            try:
                response = await self.provider.complete(request)
            except RateLimited as exc:  # 429 / 529: everyone pauses for retry-after; not an attempt used up
                waits += 1
                self.record_call(call_id, request, None, str(exc), started)
                await self.limiter.rate_limited(exc.retry_after, epoch)
                failure = str(exc) if waits > 10 * self.max_attempts else None
            except ProviderError as exc:
                errors += 1
                self.record_call(call_id, request, None, str(exc), started)
                if exc.error_type == "authentication":
                    self.result.stopped = str(exc)
                stop = self.early_stop.note(None if exc.transient else exc)
                if stop and self.result.stopped is None:
                    self.result.stopped = stop
                if not exc.transient or errors >= self.max_attempts or self.result.stopped:
                    failure = str(exc)
                delay = backoff(errors, self.backoff_base)
            finally:
                await self.limiter.release()
            if failure:
                return self.record_score(pair, None, call_id, attempt, failure)
            if response is None:
                await asyncio.sleep(delay)  # outside the limiter: a backoff holds no slot
                continue
            await self.limiter.succeeded()
            self.early_stop.note(None)
            try:
                answer = parse_answer(response)
            except ValueError as exc:
                self.record_call(call_id, request, response, str(exc), started)
                bad += 1
                if bad > 1:  # one correction, then give up on this pair
                    return self.record_score(pair, None, call_id, attempt, f"invalid answer after a correction: {exc}")
                feedback = correction(response, str(exc))
                continue
            self.record_call(call_id, request, response, None, started)
            return self.record_score(pair, answer, call_id, attempt)

    def flush(self, force: bool = False) -> None:
        if force or len(self.scores) >= 50 or time.monotonic() - self.last_flush >= 2.0:
            calls, scores, self.calls, self.scores = self.calls, self.scores, [], []
            self.ws.append_models("llm_calls", calls)  # the calls first: a score names its call
            if scores:
                self.ws.append(TABLE, scores)
            self.last_flush = time.monotonic()

    async def run(self, pairs: list[dict]) -> None:
        queue = list(reversed(pairs))

        async def worker() -> None:
            while queue and self.result.stopped is None:
                pair = queue.pop()
                try:
                    await self.judge(pair)
                except Exception as exc:  # noqa: BLE001 - one pair's surprise must not lose the run
                    self.record_score(pair, None, None, 0, f"{type(exc).__name__}: {exc}")
                self.finished += 1
                self.flush()
                if self.progress:
                    self.progress(self.finished, len(pairs))

        try:
            await asyncio.gather(*(worker() for _ in range(max(1, min(self.concurrency, len(pairs))))))
        finally:
            self.flush(force=True)
            await self.provider.aclose()


def judge_pairs(ws: Workspace, provider: Provider, *, model: str | None = None, pair_ids: list[str] | None = None,
                limit: int | None = None, sample_seed: int = 0, concurrency: int = 4, force: bool = False,
                progress: Callable[[int, int], None] | None = None, max_attempts: int = 4,
                backoff_base: float = 0.5) -> JudgeResult:
    """Judge training pairs (all, `pair_ids`, and/or a stable sample of `limit` drawn with `sample_seed`).
    `model` defaults to the provider's (a scripted provider always uses its own). Pairs judged `ok` with this
    rubric and model are skipped unless `force`. At most `concurrency` calls are in flight (halved on rate
    limits); a transient error is tried up to `max_attempts` times. `progress(done, total)` is called after each
    pair. The provider is closed at the end, as run_job closes it. Blocking; fine from a worker thread."""
    if concurrency < 1 or max_attempts < 1:
        raise BrightRunError("concurrency and max_attempts must be at least 1. Fix: pass e.g. concurrency=4.")
    started = time.monotonic()
    model = provider.default_model if provider.is_scripted else (model or provider.default_model)
    lock = ws.lock("quality-judge", timeout=0.5)
    try:
        lock.acquire()
    except TimeoutError as exc:
        who = getattr(exc, "who", "another process")
        raise BrightRunError(f"another judge run is using this workspace: {who}. Fix: wait for it to finish.") from None
    try:
        rows, judged_before, skipped = _plan(ws, pair_ids, limit, sample_seed, model, force)
        result = JudgeResult(skipped=skipped)
        if progress:
            progress(0, len(rows))
        coro = _Run(ws, provider, model, judged_before, result, (concurrency, max_attempts, backoff_base),
                    progress).run(rows)
        aio.run(coro)  # in a notebook cell's loop too
    finally:
        lock.release()
    if result.calls:
        ws.compact(tables=["llm_calls", TABLE], min_parts=8)
    result.cost_usd = round(result.cost_usd, 6)
    result.seconds = round(time.monotonic() - started, 3)
    return result


def judge_table(ws: Workspace, *, model: str | None = None, rubric_version: str | None = None,
                include_failed: bool = False) -> pl.DataFrame:
    """One row per judged pair and `judge_model`: `judge_overall` (0-10) beside `heuristic_overall` (the pair's
    quality_score), `difference`, `judge_<dim>` beside `heuristic_<dim>` (0-1), rationale, scaffold keys."""
    dims = ", ".join(f"j.{d} AS judge_{d}, p.{d} AS heuristic_{d}" for d in DIMENSIONS)
    return ws.sql(
        f"SELECT j.pair_id, j.conversation_id, p.turn_number, j.model AS judge_model, j.rubric_version, j.provider "
        f"AS judge_provider, j.status, p.persona_key, p.arc_key, p.topic_key, p.template_key, p.template_version, p.tier, "
        f"j.overall AS judge_overall, p.quality_score AS heuristic_overall, "
        f"round(j.overall - p.quality_score, 3) AS difference, {dims}, j.rationale, j.error, j.call_id, "
        f"j.attempts, j.created_at FROM {TABLE} j LEFT JOIN training_pairs p USING (pair_id) "
        f"WHERE (? OR j.status = 'ok') AND (?::VARCHAR IS NULL OR j.model = ?) "
        f"AND (?::VARCHAR IS NULL OR j.rubric_version = ?) ORDER BY j.pair_id, j.model",
        [include_failed, model, model, rubric_version, rubric_version])


def agreement_of(judge: list[float | None], heuristic: list[float | None]) -> dict:
    """Spearman rank correlation, its p-value, n and mean |judge - heuristic| over pairs with both."""
    from scipy.stats import spearmanr  # here: scipy takes a while to import
    both = [(j, h) for j, h in zip(judge, heuristic, strict=True) if j is not None and h is not None]
    n = len(both)
    out: dict = {"n": n, "spearman": None, "p_value": None,
                 "mean_abs_diff": round(sum(abs(j - h) for j, h in both) / n, 4) if n else None}
    if n >= 2 and len({j for j, _ in both}) > 1 and len({h for _, h in both}) > 1:  # else rho is undefined
        rho, p = spearmanr([j for j, _ in both], [h for _, h in both])
        out["spearman"], out["p_value"] = round(float(rho), 4), (None if p != p else float(p))
    return out


def agreement(ws: Workspace, *, model: str | None = None, rubric_version: str | None = None) -> dict:
    """How well the judge agrees with the heuristics: overall (`spearman`, `p_value`, `n`,
    `mean_abs_diff` on the 0-10 scale) and `by_dimension` (spearman and mean |difference| on 0-1)."""
    table = judge_table(ws, model=model, rubric_version=rubric_version)
    out = agreement_of(table["judge_overall"].to_list(), table["heuristic_overall"].to_list())
    out["by_dimension"] = {d: {k: v for k, v in agreement_of(table[f"judge_{d}"].to_list(), table[f"heuristic_{d}"]
                               .to_list()).items() if k in ("spearman", "mean_abs_diff")} for d in DIMENSIONS}
    return out


def _scripted_answer(parsed: tuple[str, bool], rng: random.Random) -> dict:
    """The scripted provider's judge answer: the heuristic scores of the response, with seeded noise, on the
    rubric's 1-5 scale."""
    response, is_last = parsed
    heuristic = score_response(response, is_last=is_last)
    answer: dict = {d: 1 + round(4 * min(1.0, max(0.0, heuristic[d] + rng.gauss(0, 0.1)))) for d in DIMENSIONS}
    answer["overall"] = round(min(10.0, max(0.0, heuristic["quality_score"] + rng.gauss(0, 0.6))), 1)
    best, worst = max(DIMENSIONS, key=answer.get), min(DIMENSIONS, key=answer.get)
    answer["rationale"] = (f"Scripted judge: strongest on {best.replace('_', ' ')}, weakest on "
                           f"{worst.replace('_', ' ')}.")
    return answer


register_script(ACTION_TYPE, Script(parse=parse_prompt, answer=_scripted_answer, cut_off='{"empathy": 4, "clarity": ',
                                    tag="judge", fix="build the request with brightrun.quality.judge"))
