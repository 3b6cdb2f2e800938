"""The job runner: bounded adaptive concurrency, retries, the response cache, batched crash-safe
writes, cancellation and resume.

Ids are derived from the item (conversation `conv-<item>`, call `call-<item>-a<attempt>`), and a
conversation row is written after its turns and its call: the conversation row is the commit point
of an item. On resume, an item whose conversation exists is done, whatever its item row says, and an
answer that was received but not yet written is taken from the journal (see cache.py), so a crash at
any moment neither loses an acknowledged conversation, nor makes one twice, nor pays twice.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import polars as pl

from brightrun.errors import JobStopped, ProviderError
from brightrun.generation.cache import Journal, ResponseCache, cache_row, fold_journals
from brightrun.generation.jobs import cancel_requested, item_seed
from brightrun.generation.limiter import AdaptiveLimiter, EarlyStop, backoff
from brightrun.generation.progress import JobProgress, ProgressFn, RunSettings
from brightrun.generation.records import RunBuffer, RunRecords
from brightrun.generation.requests import (
    CellCache,
    build_request,
    check_answer,
    correction,
    sample_of,
    variation_of,
)
from brightrun.models import (
    BatchItem,
    BatchJob,
    GeneratedConversation,
)
from brightrun.providers.base import Provider, ProviderRequest, ProviderResponse
from brightrun.providers.errors import RateLimited
from brightrun.workspace import Workspace, utcnow

JOB_TABLES = ["llm_calls", "turns", "conversations", "batch_items", "batch_jobs", "failed_generations",
              "response_cache", "provider_batches"]
COMPACT_EVERY_SECONDS = 30.0
EARLY_STOP_CALLS = 5


def _checked(response: ProviderResponse) -> GeneratedConversation | ValueError:
    """check_answer's conversation, or the ValueError saying what is wrong (checked once per answer)."""
    try:
        return check_answer(response)
    except ValueError as exc:
        return exc


class JobRunner(RunRecords):
    def __init__(self, ws: Workspace, job: BatchJob, provider: Provider, settings: RunSettings,
                 progress: ProgressFn | None = None) -> None:
        self.ws, self.job, self.provider, self.settings = ws, job, provider, settings
        self.progress_fn = progress
        self.buffer = RunBuffer()
        self.last_flush = time.monotonic()
        # An empty job model means: each template's own model setting.
        self.model = None if provider.is_scripted else (job.model or None)
        self.journal = Journal(ws, job.job_id)
        self.limiter = AdaptiveLimiter(settings.concurrency, base_backoff=settings.backoff_base)
        self.abort: str | None = None
        self._cancel_checked = 0.0
        self._cancelled = False
        self.cache: ResponseCache | None = None
        self.recorded: set[str] = set()
        """Call ids already in the ledger (llm_calls): a replay rewrites its row without counting it twice."""
        self.early_stop = EarlyStop(EARLY_STOP_CALLS)
        self._notes_written = 0
        self._writing = asyncio.Lock()  # flushes write one at a time, in order
        self.cells = CellCache()  # what each request takes from its scaffold cell, made once per cell

    # -- state ------------------------------------------------------------------------------

    def prepare(self) -> list[BatchItem]:
        """The items still to do; repairs item rows after a crash and loads the cache."""
        ws, job_id = self.ws, self.job.job_id
        if self.provider.cacheable:
            fold_journals(ws, job_id)
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
        ws.append_models("batch_items", repaired)
        totals = ws.sql(
            "SELECT coalesce(sum(input_tokens), 0)::BIGINT, coalesce(sum(output_tokens), 0)::BIGINT, "
            "coalesce(sum(cost_usd), 0) FROM llm_calls WHERE job_id = ?", [job_id]).row(0)
        failed = int(items.filter(items["status"] == "failed").height)
        self.recorded = set(ws.sql("SELECT call_id FROM llm_calls WHERE job_id = ?", [job_id])["call_id"].to_list())
        self.progress = JobProgress(job_id, self.job.total, len(made_by_item), failed, int(totals[0]),
                                    int(totals[1]), float(totals[2]))
        if self.provider.cacheable:
            self.cache = ResponseCache(ws, job_id, [sample_of(i) for i in pending])
        return pending

    def request_for(self, item: BatchItem, attempt: int, feedback: list[dict] | None = None) -> ProviderRequest:
        return build_request(self.ws, item, item_seed(self.job.seed, item.item_index), attempt, self.model, feedback,
                             temperature=self.job.temperature, max_tokens=self.job.max_tokens, cells=self.cells)

    @property
    def cancelled(self) -> bool:
        if self.abort:
            return True
        now = time.monotonic()
        if not self._cancelled and now - self._cancel_checked > 0.25:
            self._cancel_checked = now
            self._cancelled = cancel_requested(self.ws, self.job.job_id)
        return self._cancelled

    # -- one answer -------------------------------------------------------------------------

    def cached_answer(self, request: ProviderRequest, call_id: str,
                      key: str | None = None) -> tuple[ProviderResponse, str] | None:
        """An answer already paid for, with the call id to record it under: a replay of this job's own paid
        answer (after a crash) is recorded, and billed, under the call that paid for it, once; any other hit
        costs nothing. `key`: the request's cache key when the caller has it already."""
        if self.cache is None:
            return None
        row = self.cache.get(key or request.cache_key(self.provider.cache_name), call_id)
        if row is None:
            return None
        paid_by = row["paid_by_call"]
        if paid_by == call_id or (row["job_id"] == self.job.job_id and paid_by not in self.recorded):
            return ResponseCache.response(row, replay=True), paid_by
        self.progress.cache_hits += 1
        return ResponseCache.response(row, replay=False), call_id

    def keep_answer(self, request: ProviderRequest, response: ProviderResponse, call_id: str,
                    key: str | None = None) -> tuple[GeneratedConversation | ValueError, float] | None:
        """Journal a fresh answer at once, so it is never paid for again. Returns the answer's check and its cost,
        for take_answer (None when there is no cache). `key`: the request's cache key, if known."""
        if self.cache is None:
            return None
        cost = self.provider.cost_usd(response.model, response.input_tokens, response.output_tokens, response.batch)
        checked = _checked(response)
        row = cache_row(key or request.cache_key(self.provider.cache_name), request.sample, self.provider.name,
                        response, cost, call_id, self.job.job_id, not isinstance(checked, ValueError))
        self.journal.write({"cache": row})  # (orjson writes created_at as its isoformat())
        self.cache.put(row)
        self.buffer.cache_rows.append(row)
        return checked, cost

    def take_answer(self, item: BatchItem, request: ProviderRequest, response: ProviderResponse, attempt: int,
                    call_id: str, checked: GeneratedConversation | ValueError | None = None,
                    cost: float | None = None) -> str | None:
        """Record the call; store the conversation if the answer is good. Returns the problem, if any.
        `checked`, `cost`: the answer's check and its cost when keep_answer made them already."""
        generated = _checked(response) if checked is None else checked
        if isinstance(generated, ValueError):
            self.record_call(call_id, request, response, item, attempt, error=str(generated), cost=cost)
            return str(generated)
        self.record_call(call_id, request, response, item, attempt, cost=cost)
        self.record_conversation(item, generated, call_id, response.model, attempt, variation_of(request))
        return None

    def outcome(self, error: ProviderError | None) -> None:
        """Note a call's outcome (None: an answer or a retryable fault); stop the job when its first calls all
        failed with the same non-retryable error."""
        reason = self.early_stop.note(error)
        if reason and not self.abort:
            self.abort = reason

    # -- messages mode ----------------------------------------------------------------------

    async def generate(self, item: BatchItem) -> None:
        """Generate one item to success, to failure, or until the run is cancelled."""
        attempt, last_attempt = item.attempts + 1, item.attempts + self.settings.max_attempts
        feedback: list[dict] = []
        waits = 0
        request: ProviderRequest | None = None
        key: str | None = None
        while not self.cancelled:
            if request is None or request.attempt != attempt:  # after a 429 the same attempt is sent again
                request = self.request_for(item, attempt, feedback)
                key = request.cache_key(self.provider.cache_name) if self.cache is not None else None  # once each
            call_id = f"call-{item.item_id}-a{attempt}"
            cached = self.cached_answer(request, call_id, key)
            response, call_id = cached if cached else (None, call_id)
            checked = cost = None
            if response is None:
                started = time.perf_counter()
                epoch = await self.limiter.acquire()
                try:
                    self.progress.requests += 1
                    response = await self.provider.complete(request)
                except RateLimited as exc:
                    waits += 1
                    self.progress.rate_limits += 1
                    self.record_call(f"{call_id}-wait{waits}", request, None, item, attempt, error=str(exc),
                                     latency_ms=(time.perf_counter() - started) * 1000)
                    await self.limiter.rate_limited(exc.retry_after, epoch)
                    if waits > self.settings.max_rate_limit_waits:
                        self.record_failure(item, attempt, exc.error_type, str(exc), exc.raw)
                        return
                    continue
                except ProviderError as exc:
                    self.record_call(call_id, request, None, item, attempt, error=str(exc),
                                     latency_ms=(time.perf_counter() - started) * 1000)
                    if exc.error_type == "authentication":
                        self.abort = str(exc)
                        return
                    self.outcome(None if exc.transient else exc)
                    if not exc.transient or attempt >= last_attempt:
                        self.record_failure(item, attempt, exc.error_type, str(exc), exc.raw)
                        return
                    attempt += 1
                    await asyncio.sleep(backoff(attempt - 1, self.settings.backoff_base))
                    continue
                finally:
                    await self.limiter.release()
                await self.limiter.succeeded()
                self.outcome(None)
                checked, cost = self.keep_answer(request, response, call_id, key) or (None, None)
            problem = self.take_answer(item, request, response, attempt, call_id, checked, cost)
            if problem is None:
                return
            if attempt >= last_attempt:
                self.record_failure(item, attempt, "malformed_output", problem, response.text)
                return
            feedback = [*feedback, *correction(response, problem)][-4:]
            attempt += 1

    async def run_messages(self, pending: list[BatchItem]) -> None:
        queue: asyncio.Queue[BatchItem] = asyncio.Queue()
        for item in pending:
            queue.put_nowait(item)

        async def worker() -> None:
            while not self.cancelled:
                try:
                    item = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await self.generate(item)
                await self.flush()

        workers = max(1, min(self.settings.concurrency, len(pending) or 1))
        compactor = asyncio.create_task(self.compact_periodically())
        try:
            await asyncio.gather(*(worker() for _ in range(workers)))
        finally:
            compactor.cancel()

    async def compact_periodically(self) -> None:
        """Keep the dashboard fast during a long job: merge small parts in a thread every half minute."""
        while True:
            await asyncio.sleep(COMPACT_EVERY_SECONDS)
            await asyncio.to_thread(self.ws.store.compact_all, tables=JOB_TABLES, min_parts=16)

    # -- writing ----------------------------------------------------------------------------

    async def flush(self, status: str = "processing", force: bool = False) -> None:
        """Write what the buffer holds. The frames are built on the event loop (Python work: in a thread
        it fought the loop for the GIL, measured worse in bench_generation); the Parquet writes and fsyncs,
        which release the GIL, run in a thread while the calls go on, one flush at a time, in order."""
        due = (len(self.buffer) >= self.settings.flush_items
               or time.monotonic() - self.last_flush >= self.settings.flush_seconds)
        if not (force or (due and (len(self.buffer) or self.buffer.calls))):
            return
        buf, self.buffer = self.buffer, RunBuffer()
        journal = self.journal.rotate() if buf.cache_rows else None  # later answers go to a new file
        self.last_flush = time.monotonic()
        progress = replace(self.progress)  # what this flush commits
        frames = self._frames(buf, status)
        async with self._writing:
            await asyncio.to_thread(self._write, frames)
        if journal is not None:
            journal.unlink(missing_ok=True)  # its answers are in the tables now
        if self.progress_fn:
            self.progress_fn(progress)

    def _frames(self, buf: RunBuffer, status: str) -> list[tuple[str, pl.DataFrame]]:
        """The buffer's rows as one frame per table, in the order they are written, and the job's row."""
        rows = [("response_cache", buf.cache_rows), ("llm_calls", buf.calls), ("failed_generations", buf.failures),
                ("turns", buf.turns), ("conversations", buf.conversations),  # the commit point of each item
                ("batch_items", buf.items), ("batch_jobs", [self.next_job(status).model_dump()])]
        return [(table, self.ws.store.rows_frame(table, r)) for table, r in rows if r]

    def _write(self, frames: list[tuple[str, pl.DataFrame]]) -> None:
        for table, frame in frames:
            self.ws.append(table, frame)

    def write_job(self, status: str, note: str | None = None) -> None:
        self.ws.append_models("batch_jobs", [self.next_job(status, note)])

    def next_job(self, status: str, note: str | None = None) -> BatchJob:
        """The job's row with this status and the progress so far (it becomes self.job)."""
        p, now = self.progress, utcnow()
        finished = status in ("completed", "failed", "cancelled")
        update = {"status": status, "done": p.done, "failed": p.failed, "input_tokens": p.input_tokens,
                  "output_tokens": p.output_tokens, "cost_usd": round(p.cost_usd, 6), "updated_at": now,
                  "started_at": self.job.started_at or now, "finished_at": now if finished else None}
        notes = getattr(self.provider, "notes", [])
        if len(notes) > self._notes_written:  # what the provider had to change on the way, e.g. a JSON-mode fallback
            update["note"] = "; ".join(n for n in (self.job.note, *notes[self._notes_written:]) if n)
            self._notes_written = len(notes)
        if note is not None:
            update["note"] = "; ".join(n for n in (update.get("note", self.job.note), note) if n)
        self.job = self.job.model_copy(update=update)
        return self.job

    def start(self) -> None:
        self.job = self.job.model_copy(update={"run_started_at": utcnow(),
                                               "run_start_finished": self.progress.finished})
        self.write_job("processing")

    async def finish(self) -> BatchJob:
        if self.abort:
            await self.flush("failed", force=True)
            self.journal.close()
            self.write_job("failed", note=f"stopped: {self.abort}")
            raise JobStopped(f"job {self.job.job_id} stopped: {self.abort}", self.job)
        if self.cancelled:
            status = "cancelled"
        else:
            status = "completed" if self.progress.done > 0 or self.job.total == 0 else "failed"
        await self.flush(status, force=True)
        self.journal.close()
        # Every row is committed: the job's result is returned now, and its parts are merged (and the Delta
        # copies published) in the background (Workspace.compact_in_background).
        self.ws.compact_in_background(tables=JOB_TABLES, min_parts=8)
        return self.job
