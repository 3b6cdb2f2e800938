"""Enrichment: raw conversations -> validated training pairs in the enriched structure.

Stages (each a function over tables):
  normalize    reads and returns turns: role aliases, unicode (NFC, no zero-width or control characters),
               whitespace, 0-based turn numbers shifted to 1-based. It runs before validate, so that a
               record that is only differently spelled ("client", "Advisor") is not rejected
  validate     reads conversations + turns; writes nothing; returns the bad ids with reasons
  build_pairs  reads conversations + turns of the good ids; writes training_pairs rows
  record       writes conversation_status (the commit point) and enrichment_errors

A conversation moves not_started -> enrichment_in_progress -> completed or failed. A run takes the
conversations not yet enriched at the current ENRICHMENT_VERSION (all with force=True).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import polars as pl

from brightrun.enrichment import emotions
from brightrun.errors import WorkspaceError
from brightrun.models import ConsultantProfile, EnrichedConversation
from brightrun.quality import scoring, signature_store
from brightrun.scaffolding import Scaffolding
from brightrun.workspace import Workspace, utcnow
from brightrun.workspace.pool import check_workers, map_ordered, workers_for

ENRICHMENT_VERSION = "2"  # 2: heuristic quality scores and arc adherence
MAX_TURN_CHARS = 20_000
MAX_TURNS = 80
_WORDS = re.compile(r"\S+")


@dataclass
class EnrichResult:
    enriched: int = 0
    failed: int = 0
    pairs: int = 0
    errors: list[dict] = field(default_factory=list)


def advisor_system_prompt(consultant: ConsultantProfile) -> str:
    """The system prompt of the fine-tuned advisor (not the generation prompt)."""
    return (
        f"You are {consultant.name}, {consultant.title}. {consultant.communication_style} "
        f"Your principles: {'; '.join(p.rstrip('.') for p in consultant.principles)}."
    )


# -- normalize ---------------------------------------------------------------------------------

ROLE_ALIASES = {"client": "user", "human": "user", "customer": "user", "advisor": "assistant",
                "ai": "assistant", "bot": "assistant", "consultant": "assistant", "model": "assistant"}


def normalize_turns(turns: pl.DataFrame) -> pl.DataFrame:
    """Reads and returns turns(conversation_id, turn_number, role, content), normalized."""
    role = pl.col("role").str.strip_chars().str.to_lowercase()
    content = (
        pl.col("content").str.normalize("NFC")
        .str.replace_all("[\u200b\u200c\u200d\u2060\ufeff]", "")
        .str.replace_all("[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]", "")
        .str.replace_all("[\u00a0\u2007\u202f\t ]+", " ")
        .str.replace_all(" *\n *", "\n")
        .str.replace_all("\n{3,}", "\n\n")
        .str.strip_chars()
    )
    first = pl.col("turn_number").min().over("conversation_id")
    return turns.with_columns(
        role.replace(ROLE_ALIASES).alias("role"),
        content.alias("content"),
        pl.when(first == 0).then(pl.col("turn_number") + 1).otherwise(pl.col("turn_number")).alias("turn_number"),
    )


# -- validate -----------------------------------------------------------------------------------


def validate(conversations: pl.DataFrame, turns: pl.DataFrame, scaffolding: Scaffolding) -> dict[str, tuple[str, str]]:
    """Reads conversations(conversation_id, persona_key, arc_key, topic_key, turn_count) and
    turns(conversation_id, turn_number, role, content). Returns {conversation_id: (reason, fix)}."""
    bad: dict[str, tuple[str, str]] = {}
    by_conversation = {
        key[0]: frame for key, frame in turns.sort("conversation_id", "turn_number").group_by(
            "conversation_id", maintain_order=True)
    }
    for row in conversations.iter_rows(named=True):
        cid = row["conversation_id"]
        problem = _scaffold_problem(row, scaffolding) or _turns_problem(by_conversation.get(cid), row["turn_count"])
        if problem:
            bad[cid] = problem
    return bad


def _scaffold_problem(row: dict, scaffolding: Scaffolding) -> tuple[str, str] | None:
    for column, known in (("persona_key", scaffolding.personas), ("arc_key", scaffolding.arcs),
                          ("topic_key", scaffolding.topics)):
        if row[column] not in known:
            return (f"{column} {row[column]!r} is not in the scaffolding",
                    "restore it in data/scaffolding or regenerate the conversation")
    return None


def _turns_problem(frame: pl.DataFrame | None, expected: int | None) -> tuple[str, str] | None:
    regenerate = "regenerate the conversation (its item can be rerun) or delete it"
    if frame is None or frame.height == 0:
        return ("the conversation has no turns", regenerate)
    numbers = frame["turn_number"].to_list()
    if numbers != list(range(1, len(numbers) + 1)):
        return (f"turn numbers are {numbers[:12]}, not 1..{len(numbers)} without gaps", regenerate)
    if expected is not None and expected != len(numbers):
        return (f"the conversation says {expected} turns but has {len(numbers)}", regenerate)
    if len(numbers) > MAX_TURNS:
        return (f"{len(numbers)} turns is over the limit of {MAX_TURNS}", "split it or regenerate it shorter")
    roles = frame["role"].to_list()
    for n, role in enumerate(roles, start=1):
        if role not in ("user", "assistant"):
            return (f"turn {n} has role {role!r}", "roles must be 'user' or 'assistant'")
        wanted = "user" if n % 2 else "assistant"
        if role != wanted:
            return (f"turn {n} is {role!r} where {wanted!r} should be: roles must alternate, client first",
                    regenerate)
    for n, content in enumerate(frame["content"].to_list(), start=1):
        if content is None or not content.strip():
            return (f"turn {n} is empty", regenerate)
        if len(content) > MAX_TURN_CHARS:
            return (f"turn {n} has {len(content)} characters, over {MAX_TURN_CHARS}", "shorten or regenerate it")
    if "assistant" not in roles:
        return ("the conversation has no advisor turn, so it yields no training pair", regenerate)
    return None


# -- build pairs --------------------------------------------------------------------------------


def build_pairs(conversations: pl.DataFrame, turns: pl.DataFrame, scaffolding: Scaffolding,
                created_at: datetime) -> pl.DataFrame:
    """Reads conversations (scaffold keys, template, tier, provider, model, is_scripted) and turns of
    valid conversations; returns training_pairs rows, one per advisor turn."""
    turns = turns.sort("conversation_id", "turn_number")
    history = turns.group_by("conversation_id").agg(
        pl.struct(role="role", content="content").sort_by("turn_number").alias("all_turns"))
    pairs = (
        turns.with_columns(
            pl.col("content").shift(1).over("conversation_id", order_by="turn_number").alias("current_user_input"))
        .filter(pl.col("role") == "assistant")
        .join(history, on="conversation_id")
        .join(conversations.select("conversation_id", "persona_key", "arc_key", "topic_key", "template_key",
                                   "template_version", "tier", "provider", "model", "is_scripted", "turn_count"),
              on="conversation_id")
        .with_columns(
            pl.col("all_turns").list.head(pl.col("turn_number") - 2).alias("conversation_history"),
            pl.col("content").alias("target_response"),
        )
    )
    stage_emotion, stage_valence = [], []
    for arc_key, turn_number, turn_count in zip(pairs["arc_key"].to_list(), pairs["turn_number"].to_list(),
                                                pairs["turn_count"].to_list(), strict=True):
        stages = scaffolding.arcs[arc_key].stages
        k, i = turn_count // 2, turn_number // 2 - 1
        stage = stages[round(i * (len(stages) - 1) / max(1, k - 1))]
        stage_emotion.append(stage.emotion)
        stage_valence.append(stage.valence)
    scores = [scoring.score_response(text, is_last=n == count) for text, n, count in zip(
        pairs["content"].to_list(), pairs["turn_number"].to_list(), pairs["turn_count"].to_list(), strict=True)]
    detected = [emotions.detect(text) for text in pairs["current_user_input"].to_list()]
    system_prompt = advisor_system_prompt(scaffolding.consultant)
    return pairs.select(
        (pl.col("conversation_id") + "_turn" + pl.col("turn_number").cast(pl.String)).alias("pair_id"),
        "conversation_id", "turn_number", "persona_key", "arc_key", "topic_key", "template_key",
        "template_version", "tier", "provider", "model", "is_scripted",
        pl.lit(system_prompt).alias("system_prompt"), "conversation_history", "current_user_input",
        "target_response",
    ).with_columns(
        pl.Series("detected_emotions", [d[0] for d in detected], dtype=pl.List(pl.String)),
        pl.Series("primary_emotion", [d[0][0] if d[0] else None for d in detected], dtype=pl.String),
        pl.Series("valence", [d[1] for d in detected], dtype=pl.Float64),
        pl.Series("intensity", [d[2] for d in detected], dtype=pl.Float64),
        pl.Series("expected_stage_emotion", stage_emotion, dtype=pl.String),
        pl.col("target_response").str.count_matches(r"\S+").cast(pl.Int64).alias("response_word_count"),
        pl.col("current_user_input").str.count_matches(r"\S+").cast(pl.Int64).alias("user_input_word_count"),
        (pl.col("turn_number") - 2).alias("history_turns"),
        pl.Series("stage_valence", stage_valence, dtype=pl.Float64),
        *[pl.Series(name, [s[name] for s in scores], dtype=pl.Float64) for name in [*scoring.DIMENSIONS,
                                                                                   "quality_score"]],
        pl.lit(ENRICHMENT_VERSION).alias("enrichment_version"),
        pl.lit(created_at).cast(pl.Datetime("us", "UTC")).alias("created_at"),
    )


def conversation_quality(pairs: pl.DataFrame, created_at: datetime) -> pl.DataFrame:
    """Reads training_pairs rows; returns conversation_quality rows (mean and worst pair score, arc
    adherence and emotion match rate over the client turns, and how many pairs it has)."""
    rows = []
    for (cid,), group in pairs.sort("turn_number").group_by("conversation_id", maintain_order=True):
        detected = [v if e else None for v, e in zip(group["valence"].to_list(),
                                                     group["detected_emotions"].to_list(), strict=True)]
        matches = [p == e for p, e in zip(group["primary_emotion"].to_list(),
                                          group["expected_stage_emotion"].to_list(), strict=True)]
        rows.append({
            "conversation_id": cid, "quality_score": round(float(group["quality_score"].mean()), 2),
            "min_pair_score": float(group["quality_score"].min()),
            "arc_adherence": scoring.arc_adherence(detected, group["stage_valence"].to_list()),
            "emotion_match_rate": round(sum(matches) / len(matches), 3), "method": scoring.VERSION,
            "enrichment_version": ENRICHMENT_VERSION, "created_at": created_at, "pair_count": group.height,
        })
    return pl.DataFrame(rows, schema={"conversation_id": pl.String, "quality_score": pl.Float64,
                                      "min_pair_score": pl.Float64, "arc_adherence": pl.Float64,
                                      "emotion_match_rate": pl.Float64, "method": pl.String,
                                      "enrichment_version": pl.String,
                                      "created_at": pl.Datetime("us", "UTC"), "pair_count": pl.Int64})


# -- run ----------------------------------------------------------------------------------------


def pending_ids(ws: Workspace, force: bool = False) -> list[str]:
    if force:
        return ws.sql("SELECT conversation_id FROM conversations ORDER BY conversation_id")["conversation_id"].to_list()
    return ws.sql(
        "SELECT conversation_id FROM conversations WHERE enrichment_status <> 'completed' "
        "OR enrichment_version IS DISTINCT FROM ? ORDER BY conversation_id", [ENRICHMENT_VERSION],
    )["conversation_id"].to_list()


def enrich(ws: Workspace, *, force: bool = False, chunk_size: int = 5000,
           progress: Callable[[int, int], None] | None = None, workers: int | None = 1) -> EnrichResult:
    """Enrich what is new (everything with force=True); bad records are reported and skipped. `workers`
    processes compute the chunks (None: one per core); this process alone reads and writes the tables, and
    the rows are the same whatever the number of workers."""
    scaffolding = ws.scaffolding
    todo = pending_ids(ws, force)
    workers = workers_for(check_workers(workers), -(-len(todo) // chunk_size))
    result = EnrichResult()
    with ws.lock("enrichment", timeout=5):
        ws.recover()
        chunks = (_read_chunk(ws, todo[start:start + chunk_size]) for start in range(0, len(todo), chunk_size))
        done = 0
        for chunk, rows in map_ordered(compute_chunk, chunks, workers, shared=(scaffolding,)):
            commit_chunk(ws, chunk.ids, chunk.now, rows, result)
            done += len(chunk.ids)
            if progress:
                progress(done, len(todo))
    if todo:
        ws.compact(tables=["training_pairs", "conversation_status", "enrichment_errors", "conversation_quality"],
                   min_parts=8)
    return result


def interrupted(ws: Workspace) -> int:
    """Conversations a killed enrich left `enrichment_in_progress` (0 while an enrich runs, which holds them
    now). `brightrun enrich` takes them up again like any conversation not completed."""
    query = "SELECT count(*) FROM conversations WHERE enrichment_status = 'enrichment_in_progress'"
    lock = ws.lock("enrichment", timeout=0)
    try:
        lock.acquire()
    except TimeoutError:
        return 0
    except OSError:  # a read-only workspace: nothing can be enriching it
        return ws.scalar(query)
    try:
        return ws.scalar(query)
    finally:
        lock.release()


def _status_rows(ids: list[str], status: str, now: datetime) -> list[dict]:
    return [{"conversation_id": c, "status": status, "enrichment_version": ENRICHMENT_VERSION,
             "updated_at": now} for c in ids]


@dataclass(frozen=True)
class Chunk:
    """What a worker needs to enrich a chunk: its conversation ids, their conversations and turns rows (as
    read, not yet normalized), and the time its rows are stamped with."""

    ids: list[str]
    conversations: pl.DataFrame
    turns: pl.DataFrame
    now: datetime


@dataclass(frozen=True)
class ChunkRows:
    """What a chunk makes: training_pairs and conversation_quality rows, the bad ids with (reason, fix), and the
    good ones' near-duplicate features."""

    pairs: pl.DataFrame | None
    quality: pl.DataFrame | None
    bad: dict[str, tuple[str, str]]
    signed: signature_store.Signed | None = None
    """The near-duplicate features of the good conversations' texts (kept for training files' adds)."""


def _read_chunk(ws: Workspace, ids: list[str]) -> Chunk:
    """Mark `ids` enrichment_in_progress and read their rows (the parent's part before a worker's)."""
    now = utcnow()
    ws.append("conversation_status", _status_rows(ids, "enrichment_in_progress", now))
    conversations = ws.sql("SELECT * FROM conversations WHERE conversation_id IN (SELECT unnest(?))", [ids])
    turns = ws.sql("SELECT conversation_id, turn_number, role, content FROM turns "
                   "WHERE conversation_id IN (SELECT unnest(?))", [ids])
    return Chunk(ids, conversations, turns, now)


def compute_chunk(chunk: Chunk, scaffolding: Scaffolding) -> ChunkRows:
    """The pure part of enrichment (normalize, validate, build pairs, conversation quality, the near-duplicate
    features of the good conversations' texts): reads only its arguments, writes nothing, so a worker process
    or a Ray task can run it."""
    turns = normalize_turns(chunk.turns)
    bad = validate(chunk.conversations, turns, scaffolding)
    good = [c for c in chunk.ids if c not in bad]
    if not good:
        return ChunkRows(None, None, bad)
    pairs = build_pairs(chunk.conversations.filter(pl.col("conversation_id").is_in(good)),
                        turns.filter(pl.col("conversation_id").is_in(good)), scaffolding, chunk.now)
    texts = signature_store.texts_of_turns(chunk.turns.filter(pl.col("conversation_id").is_in(good)))
    return ChunkRows(pairs, conversation_quality(pairs, chunk.now), bad,
                     signature_store.compute(list(texts), list(texts.values())))


def commit_chunk(ws: Workspace, ids: list[str], now: datetime, rows: ChunkRows, result: EnrichResult) -> None:
    """Write a computed chunk through the store: its pairs, quality and errors (stamped `now`), then the
    statuses (the commit point)."""
    bad = rows.bad
    good = [c for c in ids if c not in bad]
    if rows.pairs is not None:
        ws.append("training_pairs", rows.pairs)
        result.pairs += rows.pairs.height
        ws.append("conversation_quality", rows.quality)
    if rows.signed is not None:
        signature_store.write(ws, rows.signed)
    errors = [{"conversation_id": c, "reason": r, "fix": f, "enrichment_version": ENRICHMENT_VERSION,
               "created_at": now} for c, (r, f) in bad.items()]
    ws.append("enrichment_errors", errors)
    done = utcnow()
    ws.append("conversation_status", _status_rows(good, "completed", done) + _status_rows(list(bad), "failed", done))
    result.enriched += len(good)
    result.failed += len(bad)
    result.errors += errors


# -- the enriched JSON on demand ------------------------------------------------------------------


def enriched_conversation(ws: Workspace, conversation_id: str) -> dict:
    """The per-conversation enriched JSON of the source documents, built from the tables."""
    scaffolding = ws.scaffolding
    pairs = ws.sql("SELECT * FROM training_pairs WHERE conversation_id = ? ORDER BY turn_number", [conversation_id])
    if not pairs.height:
        raise WorkspaceError(f"conversation {conversation_id!r} has no training pairs. "
                             f"Fix: run `brightrun enrich`, and check `enrichment_errors` if it failed.")
    turn_total = ws.scalar("SELECT count(*) FROM turns WHERE conversation_id = ?", [conversation_id])
    records = []
    for row in pairs.iter_rows(named=True):
        persona = scaffolding.personas[row["persona_key"]]
        arc, topic = scaffolding.arcs[row["arc_key"]], scaffolding.topics[row["topic_key"]]
        records.append({
            "id": row["pair_id"], "conversation_id": conversation_id, "turn_number": row["turn_number"],
            "conversation_metadata": {
                "client_persona": persona.name, "persona_archetype": persona.archetype,
                "client_background": persona.background, "emotional_arc": arc.name,
                "emotional_arc_key": arc.key, "training_topic": topic.name, "training_topic_key": topic.key,
            },
            "system_prompt": row["system_prompt"], "conversation_history": row["conversation_history"],
            "current_user_input": row["current_user_input"],
            "emotional_context": {
                "detected_emotions": row["detected_emotions"], "primary_emotion": row["primary_emotion"],
                "valence": row["valence"], "intensity": row["intensity"],
                "expected_stage_emotion": row["expected_stage_emotion"], "method": emotions.METHOD,
            },
            "target_response": row["target_response"],
            "training_metadata": {
                **{k: row[k] for k in (
                    "enrichment_version", "template_key", "template_version", "tier", "provider", "model",
                    "is_scripted", "response_word_count", "user_input_word_count", "history_turns",
                    "quality_score")},
                "quality_scores": {k: row[k] for k in scoring.DIMENSIONS},
            },
        })
    document = {
        "dataset_metadata": {
            "dataset_name": f"fp_conversation_{conversation_id}", "version": ENRICHMENT_VERSION,
            "created_date": datetime.now(UTC).date().isoformat(), "vertical": scaffolding.consultant.vertical,
            "total_conversations": 1, "total_turns": int(turn_total),
        },
        "consultant_profile": scaffolding.consultant.model_dump(mode="json"),
        "training_pairs": records,
    }
    return EnrichedConversation.model_validate(document).model_dump(mode="json")
