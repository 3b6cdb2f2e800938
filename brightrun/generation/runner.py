"""The job runner: bounded concurrency, retries, batched crash-safe writes, resume.

Ids are derived from the item (conversation `conv-<item>`, call `call-<item>-a<attempt>`), and a
conversation row is written after its turns and its call: the conversation row is the commit point
of an item. On resume, an item whose conversation exists is done, whatever its item row says, so a
crash at any moment neither loses an acknowledged conversation nor makes one twice.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
from pydantic import ValidationError

from brightrun.errors import JobError, ProviderError
from brightrun.generation.jobs import item_seed, load_job, template_at_version
from brightrun.models import (
    BatchItem,
    BatchJob,
    Conversation,
    FailedGeneration,
    GeneratedConversation,
    LLMCall,
)
from brightrun.providers.base import Provider, ProviderRequest, ScaffoldSpec
from brightrun.templates import render_template, scaffold_context
from brightrun.workspace import Workspace, utcnow

ProgressFn = Callable[["JobProgress"], None]
OUTPUT_SCHEMA = GeneratedConversation.model_json_schema()


@dataclass
class JobProgress:
    job_id: str
    total: int
    done: int
    failed: int
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    started: float = field(default_factory=time.monotonic)

    @property
    def finished(self) -> int:
        return self.done + self.failed


@dataclass
class _Buffer:
    calls: list[LLMCall] = field(default_factory=list)
    failures: list[FailedGeneration] = field(default_factory=list)
    turns: list[dict] = field(default_factory=list)
    conversations: list[Conversation] = field(default_factory=list)
    items: list[BatchItem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)


def build_request(ws: Workspace, item: BatchItem, seed: int, attempt: int, model: str | None) -> ProviderRequest:
    """The provider request for one item: the template version rendered for its scaffold cell."""
    scaffolding = ws.scaffolding
    template = template_at_version(ws, item.template_key, item.template_version)
    persona = scaffolding.personas[item.persona_key]
    arc = scaffolding.arcs[item.arc_key]
    topic = scaffolding.topics[item.topic_key]
    low, high = template.turns.min // 2, template.turns.max // 2
    turn_count = 2 * random.Random(seed).randint(low, high)
    context = scaffold_context(scaffolding.consultant, persona, arc, topic, turn_count)
    system, prompt = render_template(template, context)
    return ProviderRequest(
        system=system, prompt=prompt, model=model or template.model_settings.model,
        temperature=template.model_settings.temperature, max_tokens=template.model_settings.max_tokens,
        output_schema=OUTPUT_SCHEMA, seed=seed, attempt=attempt,
        scaffold=ScaffoldSpec(consultant=scaffolding.consultant, persona=persona, arc=arc, topic=topic,
                              template=template, template_version=item.template_version,
                              turn_count=turn_count),
    )


class JobRunner:
    def __init__(self, ws: Workspace, job: BatchJob, provider: Provider, *, concurrency: int,
                 max_attempts: int, flush_items: int, flush_seconds: float,
                 progress: ProgressFn | None) -> None:
        self.ws, self.job, self.provider = ws, job, provider
        self.concurrency, self.max_attempts = concurrency, max_attempts
        self.flush_items, self.flush_seconds = flush_items, flush_seconds
        self.progress_fn = progress
        self.buffer = _Buffer()
        self.last_flush = time.monotonic()
        self.model = job.model if job.model != provider.default_model else None

    # -- state ------------------------------------------------------------------------------

    def pending_items(self) -> list[BatchItem]:
        ws, job_id = self.ws, self.job.job_id
        items = ws.sql("SELECT * FROM batch_items WHERE job_id = ? ORDER BY item_index", [job_id])
        made = ws.sql("SELECT item_id, conversation_id FROM conversations WHERE job_id = ?", [job_id])
        made_by_item = dict(zip(made["item_id"].to_list(), made["conversation_id"].to_list(), strict=True))
        now, repaired, pending = utcnow(), [], []
        for row in items.iter_rows(named=True):
            item = BatchItem.model_validate(row)
            if item.item_id in made_by_item:
                if item.status != "completed":
                    repaired.append(item.model_copy(update={
                        "status": "completed", "conversation_id": made_by_item[item.item_id], "updated_at": now}))
            elif item.status == "pending":
                pending.append(item)
        self.ws.append_models("batch_items", repaired)
        totals = ws.sql(
            "SELECT coalesce(sum(input_tokens), 0)::BIGINT AS i, coalesce(sum(output_tokens), 0)::BIGINT AS o, "
            "coalesce(sum(cost_usd), 0) AS c FROM llm_calls WHERE job_id = ?", [job_id]).row(0)
        failed = int(items.filter(items["status"] == "failed").height)
        self.progress = JobProgress(job_id, self.job.total, len(made_by_item), failed, int(totals[0]),
                                    int(totals[1]), float(totals[2]))
        return pending

    # -- work -------------------------------------------------------------------------------

    async def _generate(self, item: BatchItem) -> None:
        seed = item_seed(self.job.seed, item.item_index)
        last_error, last_type, last_raw = "", "unknown", None
        first = item.attempts + 1
        for attempt in range(first, first + self.max_attempts):
            request = build_request(self.ws, item, seed, attempt, self.model)
            started = time.perf_counter()
            call_id = f"call-{item.item_id}-a{attempt}"
            try:
                response = await self.provider.complete(request)
            except ProviderError as exc:
                last_error, last_type, last_raw = str(exc), exc.error_type, exc.raw
                self._record_call(call_id, request, None, item, attempt, started, error=last_error)
                if exc.transient:
                    continue
                break
            try:
                if response.stop_reason == "max_tokens":
                    raise ValueError("the response was cut off at max_tokens")
                generated = GeneratedConversation.model_validate_json(response.text)
            except (ValidationError, ValueError) as exc:
                last_error = _short(exc)
                last_type, last_raw = "malformed_output", response.text
                self._record_call(call_id, request, response, item, attempt, started, error=last_error)
                continue
            self._record_call(call_id, request, response, item, attempt, started)
            self._record_conversation(item, generated, call_id, response.model, attempt)
            return
        now = utcnow()
        self.buffer.failures.append(FailedGeneration(
            failure_id=f"fail-{item.item_id}-a{attempt}", job_id=item.job_id, item_id=item.item_id,
            error_type=last_type, message=last_error, raw_response=last_raw, attempt=attempt, created_at=now))
        self.buffer.items.append(item.model_copy(update={"status": "failed", "attempts": attempt, "updated_at": now}))
        self.progress.failed += 1

    def _record_call(self, call_id, request, response, item, attempt, started, error=None) -> None:
        tokens_in = response.input_tokens if response else 0
        tokens_out = response.output_tokens if response else 0
        cost = self.provider.cost_usd(request.model, tokens_in, tokens_out)
        self.buffer.calls.append(LLMCall(
            call_id=call_id, action_type=request.action_type, provider=self.provider.name,
            model=response.model if response else request.model,
            request=orjson.dumps(request.for_log()).decode(), response=response.text if response else "",
            input_tokens=tokens_in, output_tokens=tokens_out, cost_usd=cost,
            latency_ms=response.latency_ms if response else (time.perf_counter() - started) * 1000,
            cache_hit=response.cache_hit if response else False, template_key=item.template_key,
            template_version=item.template_version, job_id=item.job_id, item_id=item.item_id, attempt=attempt,
            status="error" if error else "ok", error=error, created_at=utcnow(),
        ))
        self.progress.input_tokens += tokens_in
        self.progress.output_tokens += tokens_out
        self.progress.cost_usd += cost

    def _record_conversation(self, item, generated: GeneratedConversation, call_id, model, attempt) -> None:
        conversation_id = f"conv-{item.item_id}"
        now = utcnow()
        self.buffer.turns += [
            {"conversation_id": conversation_id, "turn_number": n, "role": t.role, "content": t.content}
            for n, t in enumerate(generated.turns, start=1)
        ]
        self.buffer.conversations.append(Conversation(
            conversation_id=conversation_id, job_id=item.job_id, item_id=item.item_id,
            persona_key=item.persona_key, arc_key=item.arc_key, topic_key=item.topic_key,
            template_key=item.template_key, template_version=item.template_version,
            tier=self.ws.scaffolding.templates[item.template_key].tier
            if item.template_key in self.ws.scaffolding.templates else "unknown",
            provider=self.provider.name, model=model, is_scripted=self.provider.is_scripted,
            title=generated.title, turn_count=len(generated.turns), call_id=call_id, created_at=now,
        ))
        self.buffer.items.append(item.model_copy(update={
            "status": "completed", "attempts": attempt, "conversation_id": conversation_id, "updated_at": now}))
        self.progress.done += 1

    # -- writing ----------------------------------------------------------------------------

    def flush(self, status: str = "processing", force: bool = False) -> None:
        due = len(self.buffer) >= self.flush_items or time.monotonic() - self.last_flush >= self.flush_seconds
        if not (force or (due and len(self.buffer))):
            return
        buf, self.buffer = self.buffer, _Buffer()
        ws = self.ws
        ws.append_models("llm_calls", buf.calls)
        ws.append_models("failed_generations", buf.failures)
        if buf.turns:
            ws.append("turns", buf.turns)
        ws.append_models("conversations", buf.conversations)  # the commit point of each item
        ws.append_models("batch_items", buf.items)
        self._write_job(status)
        self.last_flush = time.monotonic()
        if self.progress_fn:
            self.progress_fn(self.progress)

    def _write_job(self, status: str) -> None:
        p, now = self.progress, utcnow()
        finished = status in ("completed", "failed", "cancelled")
        self.job = self.job.model_copy(update={
            "status": status, "done": p.done, "failed": p.failed, "input_tokens": p.input_tokens,
            "output_tokens": p.output_tokens, "cost_usd": round(p.cost_usd, 6), "updated_at": now,
            "started_at": self.job.started_at or now, "finished_at": now if finished else None,
        })
        self.ws.append_models("batch_jobs", [self.job])

    async def run(self) -> BatchJob:
        pending = self.pending_items()
        self._write_job("processing")
        queue: asyncio.Queue[BatchItem] = asyncio.Queue()
        for item in pending:
            queue.put_nowait(item)

        async def worker() -> None:
            while True:
                try:
                    item = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await self._generate(item)
                self.flush()

        await asyncio.gather(*(worker() for _ in range(max(1, min(self.concurrency, len(pending) or 1)))))
        final = "completed" if self.progress.done > 0 or self.job.total == 0 else "failed"
        self.flush(final, force=True)
        await self.provider.aclose()
        return self.job


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "(response)"
        return f"output does not match the conversation schema at {where}: {first['msg']}"
    return str(exc)


def run_job(
    ws: Workspace,
    job_id: str,
    provider: Provider,
    *,
    concurrency: int = 8,
    max_attempts: int = 3,
    flush_items: int = 200,
    flush_seconds: float = 1.0,
    progress: ProgressFn | None = None,
) -> BatchJob:
    """Run (or resume) a job to the end. Only one process runs a given job at a time."""
    job = load_job(ws, job_id)
    if job is None:
        raise JobError(f"no job {job_id!r} in {ws.root}. Fix: list jobs with `brightrun status`.")
    if job.status in ("completed", "cancelled") and job.done + job.failed >= job.total:
        return job
    lock = ws.lock(f"job-{job_id}", timeout=0.5)
    try:
        lock.acquire()
    except TimeoutError:
        raise JobError(f"job {job_id!r} is being run by another process. Fix: wait for it to finish, "
                       f"or stop that process and resume.") from None
    try:
        runner = JobRunner(ws, job, provider, concurrency=concurrency, max_attempts=max_attempts,
                           flush_items=flush_items, flush_seconds=flush_seconds, progress=progress)
        return asyncio.run(runner.run())
    finally:
        lock.release()


def job_is_running(ws: Workspace, job_id: str) -> bool:
    """True when a live process holds the job's lock."""
    lock = ws.lock(f"job-{job_id}", timeout=0)
    try:
        lock.acquire()
    except TimeoutError:
        return True
    lock.release()
    return False
