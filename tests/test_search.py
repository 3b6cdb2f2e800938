"""Text search takes every character literally (`%`, `_` and regular-expression operators alike), ignoring case."""

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


def test_the_pattern_matches_exactly_a_case_insensitive_substring() -> None:
    """Every character of the text is literal, whatever it is to a regular expression or to LIKE."""
    import duckdb

    from brightrun.workspace import contains, contains_pattern

    texts = ["Costs 5% (maybe)", "a_b", "a.b", "axb", "C:\\path\\E", "[x]*+?{2}|^$", "Ünïcode ÉTÉ", "\\Qraw\\E",
             "tab\there", "emoji 🙂 ok", "", "line\nbreak", "50%_off"]
    needles = ["5%", "(MAYBE)", "_", ".", "\\E", "\\", "[x]*", "{2}|^$", "été", "ünï", "\\Q", "\t", "🙂",
               "%_", "\n", "a.b", "A_B"]
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT unnest(?::VARCHAR[]) AS x", [texts])
    for needle in needles:
        got = {r[0] for r in con.execute(f"SELECT x FROM t WHERE {contains('x')}",
                                         [contains_pattern(needle)]).fetchall()}
        want = {t for t in texts if needle.casefold() in t.casefold()}
        assert got == want, needle
