"""The frames the contracts run on: one DuckDB query per table, with derived columns.

Checks that span rows or tables (alternation, contiguity, foreign keys, blank text) are computed here
in SQL, as plain columns, so the suites in `expectations/` assert on them with built-in Great
Expectations expectations. Only ids, small values, lengths and booleans leave DuckDB: never the text
of a turn or a response (text is reduced to lengths and flags before any join, window or sort), so a
100,000-conversation workspace (a million turns) validates in about 1.5 GB.

Reads: conversations, turns, training_pairs, batch_jobs, personas, emotional_arcs, training_topics,
prompt_templates. Writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from brightrun.validation.errors import ContractError
from brightrun.workspace import Workspace
from brightrun.workspace.tables import TABLES, TRAINING_PAIR_SCHEMA
from brightrun.workspace.views import DERIVED_VIEWS, TABLE_VIEWS

# True when the text holds no visible character: only whitespace, separators (no-break space, ...),
# format characters (zero-width space, BOM, ...) and control characters, or nothing at all.
_BLANK = "({col} IS NULL OR NOT regexp_matches({col}, '[^\\s\\pZ\\p{{Cf}}\\p{{Cc}}]'))"


def _blank(column: str) -> str:
    return _BLANK.format(col=column)


@dataclass(frozen=True)
class Frame:
    """How to build the frame of one table's suite."""

    table: str
    ids: tuple[str, ...]
    """The columns that name a record in a failing example."""
    sql: str


CONVERSATIONS = Frame("conversations", ("conversation_id",), """
WITH turn_counts AS (
    SELECT conversation_id, count(*) AS turns_stored,
           count(*) FILTER (WHERE role = 'assistant') AS assistant_turns
    FROM turns GROUP BY conversation_id
), pair_counts AS (
    SELECT conversation_id, count(*) AS pairs_stored FROM training_pairs GROUP BY conversation_id
), template_versions AS (
    SELECT DISTINCT template_key, version AS template_version FROM prompt_templates
)
SELECT c.conversation_id, c.job_id, c.persona_key, c.arc_key, c.topic_key, c.template_key,
       c.template_version, c.tier, c.turn_count, c.enrichment_status, c.quality_score,
       c.arc_adherence, c.emotion_match_rate,
       coalesce(tc.turns_stored, 0) AS turns_stored,
       coalesce(tc.assistant_turns, 0) AS assistant_turns,
       coalesce(pc.pairs_stored, 0) AS pairs_stored,
       p.persona_key IS NOT NULL AS persona_exists,
       a.arc_key IS NOT NULL AS arc_exists,
       t.topic_key IS NOT NULL AS topic_exists,
       v.template_key IS NOT NULL AS template_version_exists,
       j.job_id IS NOT NULL AS job_exists
FROM conversations c
LEFT JOIN turn_counts tc ON tc.conversation_id = c.conversation_id
LEFT JOIN pair_counts pc ON pc.conversation_id = c.conversation_id
LEFT JOIN (SELECT DISTINCT persona_key FROM personas) p ON p.persona_key = c.persona_key
LEFT JOIN (SELECT DISTINCT arc_key FROM emotional_arcs) a ON a.arc_key = c.arc_key
LEFT JOIN (SELECT DISTINCT topic_key FROM training_topics) t ON t.topic_key = c.topic_key
LEFT JOIN template_versions v ON v.template_key = c.template_key AND v.template_version = c.template_version
LEFT JOIN (SELECT DISTINCT job_id FROM batch_jobs) j ON j.job_id = c.job_id
ORDER BY c.conversation_id
""")

TURNS = Frame("turns", ("conversation_id", "turn_number"), f"""
WITH t AS (  -- the text is reduced to its length and a flag before anything is joined or windowed
    SELECT conversation_id, turn_number, role, coalesce(length(content), 0) AS content_chars,
           {_blank("content")} AS content_blank
    FROM turns
)
SELECT t.conversation_id, t.turn_number, t.role, t.content_chars, t.content_blank,
       row_number() OVER w AS turn_number_expected,
       CASE WHEN row_number() OVER w % 2 = 1 THEN 'user' ELSE 'assistant' END AS role_expected,
       c.conversation_id IS NOT NULL AS conversation_exists
FROM t
LEFT JOIN (SELECT DISTINCT conversation_id FROM conversations) c ON c.conversation_id = t.conversation_id
WINDOW w AS (PARTITION BY t.conversation_id ORDER BY t.turn_number)
ORDER BY t.conversation_id, t.turn_number
""")


def _drift_sql() -> str:
    """|quality_score - 10 x weighted mean of the dimensions|, or NULL when the weights name a
    dimension the table does not store."""
    from brightrun.quality.scoring import WEIGHTS

    if not WEIGHTS or any(name not in TRAINING_PAIR_SCHEMA for name in WEIGHTS):
        return "CAST(NULL AS DOUBLE)"
    weighted = " + ".join(f"{float(w)!r} * p.{name}" for name, w in WEIGHTS.items())
    return f"abs(p.quality_score - 10 * ({weighted}))"


_SCAFFOLD_KEYS = ("persona_key", "arc_key", "topic_key", "template_key", "template_version")


def _mismatch_sql() -> str:
    """'' when the pair's scaffold keys equal its conversation's, else which differ and how."""
    return ", ".join(
        f"CASE WHEN p.{k} IS DISTINCT FROM c.{k} THEN '{k} ' || coalesce(p.{k}, 'NULL') || ' (conversation: ' "
        f"|| coalesce(c.{k}, 'NULL') || ')' END" for k in _SCAFFOLD_KEYS)


def _pairs_sql() -> str:
    return f"""
WITH p AS (  -- the text is reduced to lengths and flags before anything is joined
    SELECT pair_id, conversation_id, turn_number, {", ".join(_SCAFFOLD_KEYS)},
           {_blank("target_response")} AS target_response_blank,
           {_blank("current_user_input")} AS user_input_blank,
           {_blank("system_prompt")} AS system_prompt_blank,
           coalesce(length(target_response), 0) AS target_response_chars,
           len(conversation_history) AS history_length,
           history_turns, response_word_count, user_input_word_count,
           quality_score, empathy, clarity, actionable, asks_first, length_balance, repetition,
           valence, intensity, stage_valence, enrichment_version, tier
    FROM training_pairs
)
SELECT p.pair_id, p.conversation_id, p.turn_number,
       p.conversation_id || '_turn' || CAST(p.turn_number AS VARCHAR) AS pair_id_expected,
       c.conversation_id IS NOT NULL AS conversation_exists,
       coalesce(t.role, '(no such turn)') AS source_turn_role,
       CASE WHEN c.conversation_id IS NULL THEN NULL ELSE concat_ws('; ', {_mismatch_sql()}) END
           AS scaffold_mismatch,
       p.target_response_blank, p.user_input_blank, p.system_prompt_blank, p.target_response_chars,
       p.history_length, p.turn_number - 2 AS history_length_expected,
       p.history_turns, p.response_word_count, p.user_input_word_count,
       p.quality_score, p.empathy, p.clarity, p.actionable, p.asks_first, p.length_balance, p.repetition,
       {_drift_sql()} AS quality_score_drift,
       p.valence, p.intensity, p.stage_valence, p.enrichment_version, p.tier
FROM p
LEFT JOIN (SELECT conversation_id, {", ".join(_SCAFFOLD_KEYS)} FROM conversations) c
       ON c.conversation_id = p.conversation_id
LEFT JOIN (SELECT conversation_id, turn_number, role FROM turns) t
       ON t.conversation_id = p.conversation_id AND t.turn_number = p.turn_number
ORDER BY p.conversation_id, p.turn_number, p.pair_id
"""


def frame_for(ws: Workspace, table: str, columns: set[str]) -> Frame:
    """The frame of `table`: its own query, or for another public view, the columns a suite uses."""
    if table == "conversations":
        return CONVERSATIONS
    if table == "turns":
        return TURNS
    if table == "training_pairs":
        return Frame("training_pairs", ("pair_id", "conversation_id", "turn_number"), _pairs_sql())
    if table not in TABLE_VIEWS and table not in DERIVED_VIEWS:
        raise ContractError(
            f"there is a suite for {table!r}, which is not a workspace view. Fix: name the suite file after "
            f"one of {', '.join(sorted([*TABLE_VIEWS, *DERIVED_VIEWS]))}, or delete it.")
    ids = TABLES[TABLE_VIEWS[table]].key if table in TABLE_VIEWS else ()
    have = ws.sql(f"SELECT * FROM {table} LIMIT 0").columns
    wanted = [c for c in dict.fromkeys([*ids, *sorted(columns)]) if c in have] or have[:1]
    listing = ", ".join(f'"{c}"' for c in wanted)
    order = f" ORDER BY {', '.join(ids)}" if ids else ""
    return Frame(table, tuple(ids), f"SELECT {listing} FROM {table}{order}")
