"""Counting the distinct texts of an export's records in worker processes while the writer writes, before the
validator and the cost estimate look their counts up.

Exact token counts (tiktoken) are most of an export's CPU after the reading: a million training pairs make
about two million distinct texts, about 16 us each. The export counts each text once for everyone
(TokenCounter.once); with more than one core, `start_counting` sends them to worker processes, one fewer than
the cores (tiktoken holds Python's lock between texts, so threads gain little), and returns at once, so the
export writes its files and the validator checks the records' shape and digests them meanwhile; the validator
and the cost estimate call the counter's settle() before their first count, which waits (`Counting.wait()`) and
puts every count where the lookups find it. With one core it does nothing: the counts are made as they are
asked for, as before.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from brightrun.exports.base import Kind
from brightrun.exports.records import sequences
from brightrun.exports.tokens import TokenCounter, counter_for
from brightrun.workspace.pool import default_workers, map_ordered

AHEAD_TEXTS = 50_000
"""Fewer distinct texts than this are counted as they are asked for (starting processes would cost more)."""
PART_TEXTS = 50_000
"""Texts sent to a worker at once (the first part starts while the next ones are being sent)."""


def count_texts(texts: list[str], model: str | None) -> list[int]:
    """The token count of each text by `model`'s counter (counter_for): what a worker process runs."""
    count = counter_for(model).count
    return [count(text) for text in texts]


class Counting:
    """Texts being counted by worker processes (a thread waits for them, so the caller goes on); `wait()`
    fills the counter's counts and re-raises what went wrong there. `texts`: how many are counted ahead."""

    def __init__(self, counter: TokenCounter, texts: list[str], model: str | None, workers: int) -> None:
        self.texts = len(texts)
        self._known = counter.known
        self._keys = [(hash(text), len(text)) for text in texts]
        self._counts: list[int] = []
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if texts:
            step = min(PART_TEXTS, -(-len(texts) // workers))
            parts = [texts[k:k + step] for k in range(0, len(texts), step)]
            self._thread = threading.Thread(target=self._run, args=(parts, model, workers),
                                            name="brightrun-count-ahead", daemon=True)
            self._thread.start()

    def _run(self, parts: list[list[str]], model: str | None, workers: int) -> None:
        try:
            self._counts = [n for _, part in map_ordered(count_texts, parts, workers, shared=(model,), beside=True)
                            for n in part]
        except BaseException as exc:  # handed to the caller by wait()
            self._error = exc

    def wait(self) -> int:
        """Wait for the counts and add them to the counter's; returns how many texts were counted ahead."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            if self._error is not None:
                raise self._error
            assert self._known is not None
            self._known.update(zip(self._keys, self._counts, strict=True))
            self._keys, self._counts = [], []
        return self.texts


def start_counting(records: Iterable[dict], kind: Kind, counter: TokenCounter, model: str | None,
                   workers: int | None = None) -> Counting:
    """Start counting, in `workers` processes, every distinct string of the records' messages that `counter` (a
    TokenCounter.once() of counter_for(model)) does not know yet. By default one process fewer than the cores this
    process may use: this one goes on writing and validating meanwhile (with a process for every core, three
    busy processes on two cores made the export slower, 2026-12-04). Nothing is started (a Counting of 0 texts)
    with one core, no worker, an inexact or uncached counter, or fewer than AHEAD_TEXTS texts to count."""
    workers = default_workers() - 1 if workers is None else workers
    known = counter.known
    if workers < 1 or known is None or not counter.exact:
        return Counting(counter, [], model, 1)
    distinct: set[str] = set()  # (strings hash once and are compared only when equal: cheaper than keys)
    add = distinct.add
    for record in records:
        for sequence in sequences(record, kind):
            for message in sequence:
                for value in message.values():
                    if type(value) is str:
                        add(value)
    todo = [text for text in distinct if (hash(text), len(text)) not in known] if known else list(distinct)
    del distinct
    if len(todo) < AHEAD_TEXTS:
        return Counting(counter, [], model, 1)
    counting = Counting(counter, todo, model, workers)
    if counter.pending is not None:  # the validator and the estimate wait for it before they count (settle)
        counter.pending.append(counting.wait)
    return counting

