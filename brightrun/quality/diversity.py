"""Diversity within each scaffold cell, so that a template collapsing into one stock conversation shows.

Per persona x arc x topic cell (template-level collapse shows as the same pattern across its cells):

- distinct_2: distinct word bigrams / all word bigrams over the cell's advisor turns (1.0 when every
  bigram is new; a cell of identical conversations falls towards 1 / conversations);
- repeated_openings: share of the cell's conversations whose first advisor sentence (normalized)
  also opens another conversation of the cell;
- variation_draws: how many distinct declared-variation draws (brightrun/scaffolding/variation.py) the cell's
  conversations were asked for (0: none recorded), and variation_values: how many distinct options of
  each dimension they used, e.g. "client_mood 3, opening 4". cell_draws lists the options themselves.

Cells with a single conversation have no diversity to measure: their bigram and opening figures are null.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import polars as pl

from brightrun.quality.duplicates import normalize
from brightrun.quality.scoring import sentences
from brightrun.scaffolding import parse_variation, variation_json
from brightrun.workspace import Workspace

CELL = ["persona_key", "arc_key", "topic_key"]


def distinct_n(texts: list[str], n: int = 2) -> float:
    grams: list[tuple[str, ...]] = []
    for text in texts:
        words = normalize(text).split()
        grams += [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repeated_openings(openings: list[str]) -> float:
    counts = Counter(openings)
    return sum(1 for o in openings if counts[o] > 1) / len(openings) if openings else 0.0


CHUNK = 10_000
"""Conversations read at once by cell_diversity (a range of ids: the turns' files are sorted by conversation)."""


class _Cell:
    """What a cell's figures need, kept as its conversations stream past: its distinct bigrams (pairs of word
    ids, exact), its bigram count and its openings."""

    def __init__(self) -> None:
        self.conversations = 0
        self.bigrams = 0
        self.distinct = np.empty(0, np.uint64)
        self.pending: list[np.ndarray] = []
        self.openings: Counter[str] = Counter()

    def settle(self) -> None:
        if self.pending:
            self.distinct = np.unique(np.concatenate([self.distinct, *self.pending]))
            self.pending = []


class _Vocabulary(dict):
    def __missing__(self, word: str) -> int:
        value = self[word] = len(self)
        return value


def cell_diversity(ws: Workspace) -> pl.DataFrame:
    """One row per cell: conversations, distinct_2, repeated_openings (null for single-conversation cells).
    Conversations are read CHUNK at a time, so memory holds a chunk's texts and each cell's distinct bigrams."""
    ids = ws.sql("SELECT conversation_id FROM conversations ORDER BY 1")["conversation_id"]
    cells: dict[tuple[str, str, str], _Cell] = {}
    vocabulary = _Vocabulary()
    for k in range(0, len(ids), CHUNK):
        frame = ws.sql("""
            SELECT c.persona_key, c.arc_key, c.topic_key, c.conversation_id,
                   string_agg(t.content, '\n' ORDER BY t.turn_number) AS advisor_text,
                   arg_min(t.content, t.turn_number) AS first_advice
            FROM conversations c JOIN turns t USING (conversation_id)
            WHERE t.role = 'assistant' AND c.conversation_id BETWEEN ? AND ? AND t.conversation_id BETWEEN ? AND ?
            GROUP BY ALL""", [ids[k], ids[min(k + CHUNK, len(ids)) - 1]] * 2)
        touched = set()
        for persona, arc, topic, _, text, first in frame.iter_rows():
            cell = cells.get((persona, arc, topic))
            if cell is None:
                cell = cells[(persona, arc, topic)] = _Cell()
            touched.add(cell)
            cell.conversations += 1
            cell.openings[normalize((sentences(first) or [""])[0])] += 1
            words = normalize(text).split()
            if len(words) > 1:
                word_ids = np.fromiter(map(vocabulary.__getitem__, words), np.uint64, len(words))
                cell.pending.append((word_ids[:-1] << np.uint64(32)) | word_ids[1:])
                cell.bigrams += len(words) - 1
        for cell in touched:
            cell.settle()
    rows = []
    for (persona, arc, topic), cell in cells.items():
        n = cell.conversations
        repeated = sum(c for c in cell.openings.values() if c > 1) / n
        rows.append({"persona_key": persona, "arc_key": arc, "topic_key": topic, "conversations": n,
                     "distinct_2": round(cell.distinct.size / cell.bigrams if cell.bigrams else 0.0, 3) if n > 1 else None,
                     "repeated_openings": round(repeated, 3) if n > 1 else None})
    schema = {"persona_key": pl.String, "arc_key": pl.String, "topic_key": pl.String, "conversations": pl.Int64,
              "distinct_2": pl.Float64, "repeated_openings": pl.Float64}
    cells_frame = pl.DataFrame(rows, schema=schema).join(cell_variation(ws), on=CELL, how="left")
    return cells_frame.with_columns(pl.col("variation_draws").fill_null(0), pl.col("variation_values").fill_null("")
                                    ).sort("distinct_2", *CELL, nulls_last=True)  # ties by cell: the same order each run


def cell_variation(ws: Workspace) -> pl.DataFrame:
    """One row per cell: variation_draws (distinct draws among its conversations) and variation_values
    (distinct options used per dimension, "name count" joined by commas; '' when nothing was drawn)."""
    cells: dict[tuple[str, str, str], tuple[set[str], dict[str, set[str]]]] = {}
    for persona, arc, topic, text in ws.sql(
            "SELECT persona_key, arc_key, topic_key, variation FROM conversations").iter_rows():
        draws, values = cells.setdefault((persona, arc, topic), (set(), {}))
        draw = parse_variation(text)
        if draw:
            draws.add(variation_json(draw))
            for name, value in draw.items():
                values.setdefault(name, set()).add(value)
    rows = [{"persona_key": p, "arc_key": a, "topic_key": t, "variation_draws": len(draws),
             "variation_values": ", ".join(f"{name} {len(v)}" for name, v in sorted(values.items()))}
            for (p, a, t), (draws, values) in cells.items()]
    return pl.DataFrame(rows, schema={"persona_key": pl.String, "arc_key": pl.String, "topic_key": pl.String,
                                      "variation_draws": pl.Int64, "variation_values": pl.String})


def cell_draws(ws: Workspace, persona_key: str, arc_key: str, topic_key: str) -> pl.DataFrame:
    """The options one cell's conversations were drawn: dimension, value and how many conversations used it,
    most used first within each dimension."""
    counts: Counter[tuple[str, str]] = Counter()
    for (text,) in ws.sql("SELECT variation FROM conversations WHERE persona_key = ? AND arc_key = ? "
                          "AND topic_key = ?", [persona_key, arc_key, topic_key]).iter_rows():
        counts.update(parse_variation(text).items())
    rows = [{"dimension": d, "value": v, "conversations": n} for (d, v), n in counts.items()]
    return pl.DataFrame(rows, schema={"dimension": pl.String, "value": pl.String, "conversations": pl.Int64}
                        ).sort(["dimension", "conversations", "value"], descending=[False, True, False])
