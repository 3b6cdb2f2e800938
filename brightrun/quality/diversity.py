"""Diversity within each scaffold cell, so that a template collapsing into one stock conversation shows.

Per persona x arc x topic cell (template-level collapse shows as the same pattern across its cells):

- distinct_2: distinct word bigrams / all word bigrams over the cell's advisor turns (1.0 when every
  bigram is new; a cell of identical conversations falls towards 1 / conversations);
- repeated_openings: share of the cell's conversations whose first advisor sentence (normalized)
  also opens another conversation of the cell.

Cells with a single conversation have no diversity to measure: their figures are null.
"""

from __future__ import annotations

from collections import Counter

import polars as pl

from brightrun.quality.duplicates import normalize
from brightrun.quality.scoring import sentences
from brightrun.workspace import Workspace


def distinct_n(texts: list[str], n: int = 2) -> float:
    grams: list[tuple[str, ...]] = []
    for text in texts:
        words = normalize(text).split()
        grams += [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repeated_openings(openings: list[str]) -> float:
    counts = Counter(openings)
    return sum(1 for o in openings if counts[o] > 1) / len(openings) if openings else 0.0


def cell_diversity(ws: Workspace) -> pl.DataFrame:
    """One row per cell: conversations, distinct_2, repeated_openings (null for single-conversation cells)."""
    frame = ws.sql("""
        SELECT c.persona_key, c.arc_key, c.topic_key, c.conversation_id,
               string_agg(t.content, '\n' ORDER BY t.turn_number) AS advisor_text,
               arg_min(t.content, t.turn_number) AS first_advice
        FROM conversations c JOIN turns t USING (conversation_id)
        WHERE t.role = 'assistant'
        GROUP BY ALL""")
    rows = []
    for (persona, arc, topic), cell in frame.group_by("persona_key", "arc_key", "topic_key", maintain_order=True):
        n = cell.height
        openings = [normalize((sentences(text) or [""])[0]) for text in cell["first_advice"].to_list()]
        rows.append({"persona_key": persona, "arc_key": arc, "topic_key": topic, "conversations": n,
                     "distinct_2": round(distinct_n(cell["advisor_text"].to_list()), 3) if n > 1 else None,
                     "repeated_openings": round(repeated_openings(openings), 3) if n > 1 else None})
    schema = {"persona_key": pl.String, "arc_key": pl.String, "topic_key": pl.String, "conversations": pl.Int64,
              "distinct_2": pl.Float64, "repeated_openings": pl.Float64}
    return pl.DataFrame(rows, schema=schema).sort("distinct_2", nulls_last=True)
