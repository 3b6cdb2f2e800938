"""Message Batches mode: submit items in provider batches, store each batch id at once, poll, map
results back to items. A restart resumes polling the stored batches instead of submitting again.

The one window left: between the API accepting a batch and its id being written (a few ms), a crash
loses the id and those items are submitted again on restart.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from brightrun.errors import ProviderError
from brightrun.generation.limiter import backoff
from brightrun.generation.requests import correction
from brightrun.generation.runner import JobRunner
from brightrun.models import BatchItem
from brightrun.workspace import utcnow


@dataclass
class _Todo:
    item: BatchItem
    attempt: int
    feedback: list[dict]
    first_attempt: int


def _batch_row(runner: JobRunner, batch_id: str, entries: list[tuple[str, _Todo]], status: str) -> dict:
    now = utcnow()
    return {"batch_id": batch_id, "job_id": runner.job.job_id, "provider": runner.provider.name,
            "custom_ids": [cid for cid, _ in entries], "item_ids": [t.item.item_id for _, t in entries],
            "attempts": [t.attempt for _, t in entries], "status": status, "submitted_at": now, "updated_at": now}


async def run_batches(runner: JobRunner, pending: list[BatchItem]) -> None:
    ws, job_id, settings = runner.ws, runner.job.job_id, runner.settings
    by_id = {item.item_id: item for item in pending}
    open_batches = ws.sql("SELECT * FROM provider_batches WHERE job_id = ? AND status = 'submitted'", [job_id])
    in_flight: dict[str, dict[str, _Todo]] = {}
    for row in open_batches.iter_rows(named=True):
        entries = {}
        for cid, item_id, attempt in zip(row["custom_ids"], row["item_ids"], row["attempts"], strict=True):
            if item_id in by_id:
                item = by_id.pop(item_id)
                entries[cid] = _Todo(item, attempt, [], item.attempts + 1)
        in_flight[row["batch_id"]] = entries
    todo = [_Todo(item, item.attempts + 1, [], item.attempts + 1) for item in by_id.values()]
    submit_failures = 0

    def settle(entry: _Todo, response, call_id: str) -> _Todo | None:
        """Take an answer for an item; returns the follow-up to do, if any."""
        problem = runner.take_answer(entry.item, request_of(entry), response, entry.attempt, call_id)
        if problem is None:
            return None
        if entry.attempt >= entry.first_attempt + settings.max_attempts - 1:
            runner.record_failure(entry.item, entry.attempt, "malformed_output", problem, response.text)
            return None
        return _Todo(entry.item, entry.attempt + 1, [*entry.feedback, *correction(response, problem)][-4:],
                     entry.first_attempt)

    def request_of(entry: _Todo):
        return runner.request_for(entry.item, entry.attempt, entry.feedback)

    while (todo or in_flight) and not runner.abort:
        # Answers already paid for come from the cache; the rest go out in new batches.
        fresh: list[_Todo] = []
        for entry in todo:
            cached = runner.cached_answer(request_of(entry), f"call-{entry.item.item_id}-a{entry.attempt}")
            if cached is None:
                fresh.append(entry)
            else:
                follow = settle(entry, *cached)
                if follow:
                    fresh.append(follow)
        todo = []
        if runner.cancelled:
            fresh = []
        for start in range(0, len(fresh), settings.batch_size):
            chunk = [(f"i{t.item.item_index}-a{t.attempt}", t) for t in fresh[start:start + settings.batch_size]]
            try:
                batch_id = await runner.provider.submit_batch([(cid, request_of(t)) for cid, t in chunk])
            except ProviderError as exc:
                if exc.error_type == "authentication":
                    runner.abort = str(exc)
                    return
                submit_failures += 1
                todo += [t for _, t in chunk]
                await asyncio.sleep(backoff(submit_failures, settings.backoff_base))
                continue
            ws.append("provider_batches", [_batch_row(runner, batch_id, chunk, "submitted")])
            runner.progress.requests += len(chunk)
            in_flight[batch_id] = dict(chunk)
        if not in_flight:
            continue
        await asyncio.sleep(settings.poll_seconds)
        for batch_id in list(in_flight):
            try:
                if not await runner.provider.batch_ended(batch_id):
                    continue
                entries = in_flight[batch_id]
                models = {cid: request_of(t).model for cid, t in entries.items()}
                async for cid, result in runner.provider.batch_results(batch_id, models):
                    entry = entries.get(cid)
                    if entry is None:
                        continue
                    call_id = f"call-{entry.item.item_id}-a{entry.attempt}"
                    request = request_of(entry)
                    if isinstance(result, ProviderError):
                        runner.record_call(call_id, request, None, entry.item, entry.attempt, error=str(result))
                        runner.outcome(None if result.transient else result)
                        last = entry.attempt >= entry.first_attempt + settings.max_attempts - 1
                        if not result.transient or last:
                            runner.record_failure(entry.item, entry.attempt, result.error_type, str(result), None)
                        else:
                            todo.append(_Todo(entry.item, entry.attempt + 1, entry.feedback, entry.first_attempt))
                        continue
                    runner.outcome(None)
                    runner.keep_answer(request, result, call_id)
                    follow = settle(entry, result, call_id)
                    if follow:
                        todo.append(follow)
            except ProviderError as exc:
                if exc.error_type == "authentication":
                    runner.abort = str(exc)
                    return
                continue  # polling failed this time; try again next round
            done_row = _batch_row(runner, batch_id, list(in_flight.pop(batch_id).items()), "processed")
            await runner.flush(force=True)
            ws.append("provider_batches", [done_row])
