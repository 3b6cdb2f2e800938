"""Text search takes `%` and `_` literally (DuckDB's ILIKE honours backslash escapes only with ESCAPE)."""

from __future__ import annotations

import polars as pl

from brightrun.applogs.explore import list_calls
from brightrun.explore import ConversationFilter, count_conversations, list_conversations
from brightrun.workspace import Workspace


def containing(ws: Workspace, needle: str) -> set[str]:
    """The conversations whose title or a turn holds `needle`, case-insensitively, found without SQL."""
    turns = ws.read("turns").filter(pl.col("content").str.to_lowercase().str.contains(needle.lower(), literal=True))
    titles = ws.read("conversations").filter(pl.col("title").str.to_lowercase().str.contains(needle.lower(),
                                                                                          literal=True))
    return set(turns["conversation_id"]) | set(titles["conversation_id"])


def test_a_percent_sign_is_searched_for_not_a_wildcard(demo_ws: Workspace) -> None:
    expected = containing(demo_ws, "10%")
    assert expected, "the demo should have turns that mention a percentage of 10%"
    f = ConversationFilter(text="10%", limit=10_000)
    assert count_conversations(demo_ws, f) == len(expected)
    assert set(list_conversations(demo_ws, f)["conversation_id"]) == expected
    # and a bare "%" is not "anything"
    assert count_conversations(demo_ws, ConversationFilter(text="%")) == len(containing(demo_ws, "%"))


def test_an_underscore_is_searched_for_not_any_character(demo_ws: Workspace) -> None:
    everything = count_conversations(demo_ws, ConversationFilter())
    assert count_conversations(demo_ws, ConversationFilter(text="_")) == len(containing(demo_ws, "_")) < everything
    assert count_conversations(demo_ws, ConversationFilter(text="a\\b")) == len(containing(demo_ws, "a\\b"))


def test_app_log_search_takes_the_text_literally(demo_ws: Workspace) -> None:
    calls = demo_ws.read("llm_calls").filter(pl.col("import_id").is_not_null())
    literal = calls.filter(pl.col("request").str.contains("%", literal=True)
                           | pl.col("response").str.contains("%", literal=True))
    found = list_calls(demo_ws, text="%", limit=100_000)
    assert found.height == literal.height < calls.height
