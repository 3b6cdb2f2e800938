"""Counting the distinct texts of an export's records in worker processes, before the writer, the validator
and the cost estimate look their counts up.

Exact token counts (tiktoken) are most of an export's CPU after the reading: a million training pairs make
about two million distinct texts, about 16 us each. The export counts each text once for everyone
(TokenCounter.once); with more than one core, `count_ahead` counts them in that many processes first (tiktoken
holds Python's lock between texts, so threads gain little), and the lookups then find every count. With one
core it does nothing: the counts are made as they are asked for, as before.
"""

from __future__ import annotations

from collections.abc import Iterable

from brightrun.exports.base import Kind
from brightrun.exports.records import sequences
from brightrun.exports.tokens import TokenCounter, counter_for
from brightrun.workspace.pool import default_workers, map_ordered

AHEAD_TEXTS = 50_000
"""Fewer distinct texts than this are counted as they are asked for (starting processes would cost more)."""


def count_texts(texts: list[str], model: str | None) -> list[int]:
    """The token count of each text by `model`'s counter (counter_for): what a worker process runs."""
    count = counter_for(model).count
    return [count(text) for text in texts]


def count_ahead(records: Iterable[dict], kind: Kind, counter: TokenCounter, model: str | None,
                workers: int | None = None) -> int:
    """Fill `counter` (a TokenCounter.once() of counter_for(model)) with the count of every distinct string of
    the records' messages it does not know yet, counted by `workers` processes (default: the cores this process
    may use). Returns how many texts were counted ahead (0: none, as with one core or few texts)."""
    workers = default_workers() if workers is None else workers
    known = counter.known
    if workers < 2 or known is None or not counter.exact:
        return 0
    todo: dict[tuple[int, int], str] = {}
    for record in records:
        for sequence in sequences(record, kind):
            for message in sequence:
                for value in message.values():
                    if type(value) is str:
                        key = (hash(value), len(value))
                        if key not in known and key not in todo:
                            todo[key] = value
    if len(todo) < AHEAD_TEXTS:
        return 0
    keys, texts = list(todo), list(todo.values())
    del todo
    step = -(-len(texts) // workers)
    parts = [texts[k:k + step] for k in range(0, len(texts), step)]
    counts = [n for _, part in map_ordered(count_texts, parts, workers, shared=(model,)) for n in part]
    known.update(zip(keys, counts, strict=True))
    return len(keys)
