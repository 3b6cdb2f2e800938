"""What the Conversations page shows: filter options, the filtered list, one conversation."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import orjson
import polars as pl
from pydantic import BaseModel, Field

from brightrun.errors import BrightRunError
from brightrun.workspace import Workspace, contains, contains_pattern

ENRICHMENT_STATUSES = ["not_started", "enrichment_in_progress", "completed", "failed"]


class ConversationFilter(BaseModel):
    """Every field narrows the list; an empty list means 'any'."""

    personas: list[str] = Field(default_factory=list)
    arcs: list[str] = Field(default_factory=list)
    topics: list[str] = Field(default_factory=list)
    templates: list[str] = Field(default_factory=list)
    tiers: list[str] = Field(default_factory=list)
    statuses: list[str] = Field(default_factory=list)
    jobs: list[str] = Field(default_factory=list, description="the batch jobs that made them (job ids)")
    text: str = ""
    limit: int = Field(default=500, ge=1, le=100_000)


_COLUMNS = {"personas": "persona_key", "arcs": "arc_key", "topics": "topic_key",
            "templates": "template_key", "tiers": "tier", "statuses": "enrichment_status", "jobs": "job_id"}


def job_ids(ws: Workspace) -> list[str]:
    """The batch jobs, newest first: the Conversations page's job filter."""
    return ws.sql("SELECT job_id FROM batch_jobs ORDER BY created_at DESC, job_id")["job_id"].to_list()


def filter_options(ws: Workspace) -> dict[str, dict[str, str]]:
    """For each filter, value -> label, in scaffolding order."""
    s = ws.scaffolding
    return {
        "personas": {k: v.name for k, v in s.personas.items()},
        "arcs": {k: f"{v.name} ({v.tier.replace('_', ' ')})" for k, v in s.arcs.items()},
        "topics": {k: v.name for k, v in s.topics.items()},
        "templates": {k: v.name for k, v in s.templates.items()},
        "tiers": {"template": "template", "scenario": "scenario", "edge_case": "edge case"},
        "statuses": {v: v.replace("_", " ") for v in ENRICHMENT_STATUSES},
    }


def _where(f: ConversationFilter) -> tuple[str, list]:
    clauses, params = [], []
    for name, column in _COLUMNS.items():
        values = getattr(f, name)
        if values:
            clauses.append(f"c.{column} IN (SELECT unnest(?))")
            params.append(values)
    if f.text.strip():
        clauses.append(f"({contains('c.title')} OR EXISTS (SELECT 1 FROM turns t WHERE t.conversation_id = "
                       f"c.conversation_id AND {contains('t.content')}))")
        params += [contains_pattern(f.text.strip())] * 2
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _source(f: ConversationFilter) -> str:
    """What to filter: the conversations table itself unless the filter asks for an enrichment status. The
    `conversations` view joins the status and quality tables to every conversation, most of a filtered list's
    time at a million conversations; the list joins the status to the rows it returns instead."""
    return "conversations" if f.statuses else "_t_conversations"


def count_conversations(ws: Workspace, f: ConversationFilter) -> int:
    where, params = _where(f)
    return int(ws.scalar(f"SELECT count(*) FROM {_source(f)} c{where}", params))


def list_conversations(ws: Workspace, f: ConversationFilter) -> pl.DataFrame:
    """The conversations matching `f`, newest first, with readable scaffold names."""
    where, params = _where(f)
    status = "c.enrichment_status" if f.statuses else "coalesce(s.status, 'not_started') AS enrichment_status"
    joined = "" if f.statuses else " LEFT JOIN _t_conversation_status s USING (conversation_id)"
    if not where:
        # Unfiltered (the page's first load): the newest `limit` rows all have created_at at least the limit-th
        # newest one. Found first from that column alone, it bounds the sorted read, which then decodes the other
        # columns of those rows only, not of every conversation (100k: 36-39 -> 25-29 ms). A filter makes the
        # sorted read small already, and the extra pass cost more than it saved there (19 -> 21 ms).
        edge = ws.sql(f"SELECT c.created_at FROM {_source(f)} c ORDER BY c.created_at DESC LIMIT 1 OFFSET ?",
                      [f.limit - 1])
        if edge.height:
            where, params = " WHERE c.created_at >= ?", [edge.item()]
    frame = ws.sql(f"""
        SELECT c.conversation_id, c.title, c.persona_key, c.arc_key, c.topic_key, c.template_key,
               c.template_version, c.tier, c.turn_count, {status}, c.provider, c.model, c.created_at
        FROM (SELECT * FROM {_source(f)} c{where} ORDER BY c.created_at DESC, c.conversation_id LIMIT ?) c{joined}
        ORDER BY c.created_at DESC, c.conversation_id""", [*params, f.limit])
    options = filter_options(ws)
    return frame.with_columns(
        pl.col("persona_key").replace_strict(options["personas"], default=pl.col("persona_key")).alias("persona"),
        pl.col("arc_key").replace_strict(
            {k: ws.scaffolding.arcs[k].name for k in ws.scaffolding.arcs}, default=pl.col("arc_key")).alias("arc"),
        pl.col("topic_key").replace_strict(options["topics"], default=pl.col("topic_key")).alias("topic"),
    )


@dataclass(frozen=True)
class ConversationDetail:
    conversation: dict
    turns: list[dict]
    persona: str
    arc: str
    topic: str
    template: str
    pairs: int
    enrichment_error: str | None
    ws: Workspace = field(repr=False, compare=False)

    # The producing call is looked up when first asked for (the Conversations page's "call behind it"): finding
    # one call among a million scans the ledger's ids, and Review, which opens a conversation on every load,
    # never shows it.
    @cached_property
    def call(self) -> dict | None:
        calls = self.ws.sql("SELECT * FROM llm_calls WHERE call_id = ?", [self.conversation["call_id"]])
        return calls.row(0, named=True) if calls.height else None

    @cached_property
    def request(self) -> dict | None:
        return orjson.loads(self.call["request"]) if self.call else None


def conversation_detail(ws: Workspace, conversation_id: str) -> ConversationDetail:
    frame = ws.sql("SELECT * FROM conversations WHERE conversation_id = ?", [conversation_id])
    if not frame.height:
        raise BrightRunError(f"no conversation {conversation_id!r} in this workspace. Fix: pick one from the list.")
    conversation = frame.row(0, named=True)
    turns = ws.sql("SELECT turn_number, role, content FROM turns WHERE conversation_id = ? ORDER BY turn_number",
                   [conversation_id]).to_dicts()
    error = ws.sql("SELECT reason, fix FROM enrichment_errors WHERE conversation_id = ?", [conversation_id])
    pairs = conversation.get("pair_count")  # kept with its quality; counted where written before it was
    if pairs is None:
        pairs = ws.scalar("SELECT count(*) FROM training_pairs WHERE conversation_id = ?", [conversation_id])
    s = ws.scaffolding

    def name(collection: dict, key: str) -> str:
        return collection[key].name if key in collection else f"{key} (no longer in the scaffolding)"

    return ConversationDetail(
        conversation=conversation, turns=turns, ws=ws,
        persona=name(s.personas, conversation["persona_key"]), arc=name(s.arcs, conversation["arc_key"]),
        topic=name(s.topics, conversation["topic_key"]), template=name(s.templates, conversation["template_key"]),
        pairs=int(pairs),
        enrichment_error=(f"{error['reason'][0]}. Fix: {error['fix'][0]}" if error.height and
                          conversation["enrichment_status"] == "failed" else None),
    )
