"""The declared tables of a workspace: their keys and column types."""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import polars as pl
from pydantic import BaseModel

from brightrun.models import (
    BatchItem,
    BatchJob,
    Conversation,
    EnrichmentError,
    FailedGeneration,
    Feedback,
    LLMCall,
    TurnRecord,
)

SEQ = "_seq"
"""The write order of a row: the latest per key wins."""


@dataclass(frozen=True)
class TableSpec:
    name: str
    key: tuple[str, ...]
    schema: dict[str, pl.DataType]
    defaults: dict[str, object] = field(default_factory=dict)
    """What older files that lack a column read as (columns added later need a default)."""


def _dtype(annotation: typing.Any) -> pl.DataType:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _dtype(args[0])
    if origin is typing.Literal:
        return pl.String()
    if origin is list:
        return pl.List(_dtype(typing.get_args(annotation)[0]))
    mapping: dict[typing.Any, pl.DataType] = {
        str: pl.String(), int: pl.Int64(), float: pl.Float64(), bool: pl.Boolean(),
        datetime: pl.Datetime("us", "UTC"),
    }
    if annotation in mapping:
        return mapping[annotation]
    raise TypeError(f"no column type for {annotation!r}")


def schema_of(model: type[BaseModel]) -> dict[str, pl.DataType]:
    return {name: _dtype(f.annotation) for name, f in model.model_fields.items()}


def defaults_of(model: type[BaseModel]) -> dict[str, object]:
    return {name: f.default for name, f in model.model_fields.items()
            if isinstance(f.default, str | int | float | bool) and f.default is not None}


_S, _I, _F, _B = pl.String(), pl.Int64(), pl.Float64(), pl.Boolean()
_TS = pl.Datetime("us", "UTC")
_HISTORY = pl.List(pl.Struct({"role": _S, "content": _S}))

TRAINING_PAIR_SCHEMA: dict[str, pl.DataType] = {
    "pair_id": _S, "conversation_id": _S, "turn_number": _I,
    "persona_key": _S, "arc_key": _S, "topic_key": _S, "template_key": _S, "template_version": _S,
    "tier": _S, "provider": _S, "model": _S, "is_scripted": _B,
    "system_prompt": _S, "conversation_history": _HISTORY, "current_user_input": _S, "target_response": _S,
    "detected_emotions": pl.List(_S), "primary_emotion": _S, "valence": _F, "intensity": _F,
    "expected_stage_emotion": _S, "response_word_count": _I, "user_input_word_count": _I,
    "history_turns": _I, "stage_valence": _F,
    "empathy": _F, "clarity": _F, "actionable": _F, "asks_first": _F, "length_balance": _F, "repetition": _F,
    "quality_score": _F, "enrichment_version": _S, "created_at": _TS,
}

TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in [
        TableSpec("batch_jobs", ("job_id",), schema_of(BatchJob), defaults_of(BatchJob)),
        TableSpec("batch_items", ("item_id",), schema_of(BatchItem), defaults_of(BatchItem)),
        TableSpec("conversations", ("conversation_id",), schema_of(Conversation), defaults_of(Conversation)),
        TableSpec("turns", ("conversation_id", "turn_number"), schema_of(TurnRecord)),
        TableSpec("llm_calls", ("call_id",), schema_of(LLMCall), defaults_of(LLMCall)),
        TableSpec("failed_generations", ("failure_id",), schema_of(FailedGeneration)),
        TableSpec("feedback", ("feedback_id",), schema_of(Feedback), defaults_of(Feedback)),
        TableSpec(
            "conversation_status", ("conversation_id",),
            {"conversation_id": _S, "status": _S, "enrichment_version": _S, "updated_at": _TS},
        ),
        TableSpec("training_pairs", ("pair_id",), TRAINING_PAIR_SCHEMA),
        TableSpec("enrichment_errors", ("conversation_id",), schema_of(EnrichmentError)),
        TableSpec(
            "conversation_quality", ("conversation_id",),
            {"conversation_id": _S, "quality_score": _F, "min_pair_score": _F, "arc_adherence": _F,
             "emotion_match_rate": _F, "method": _S, "enrichment_version": _S, "created_at": _TS,
             "pair_count": _I},
        ),
        TableSpec(
            "judge_scores", ("pair_id", "rubric_version", "model"),
            {"pair_id": _S, "rubric_version": _S, "model": _S, "provider": _S, "conversation_id": _S, "status": _S,
             "empathy": _F, "clarity": _F, "actionable": _F, "asks_first": _F, "length_balance": _F,
             "repetition": _F, "overall": _F, "rationale": _S, "error": _S, "call_id": _S, "attempts": _I,
             "created_at": _TS},
        ),
        TableSpec(
            "response_cache", ("cache_key",),
            {"cache_key": _S, "sample": _S, "provider": _S, "model": _S, "text": _S, "input_tokens": _I, "output_tokens": _I,
             "stop_reason": _S, "batch": _B, "cost_usd": _F, "paid_by_call": _S, "job_id": _S, "usable": _B,
             "created_at": _TS},
            {"usable": True, "sample": ""},
        ),
        TableSpec(
            "provider_batches", ("batch_id",),
            {"batch_id": _S, "job_id": _S, "provider": _S, "custom_ids": pl.List(_S), "item_ids": pl.List(_S),
             "attempts": pl.List(_I), "status": _S, "submitted_at": _TS, "updated_at": _TS},
        ),
        TableSpec(
            "template_versions", ("template_key", "version"),
            {"template_key": _S, "version": _S, "name": _S, "tier": _S, "arc_type": _S, "description": _S,
             "system_prompt": _S, "body": _S, "model": _S, "temperature": _F, "max_tokens": _I,
             "turns_min": _I, "turns_max": _I, "definition": _S, "first_used_at": _TS},
        ),
        TableSpec(
            "experiments", ("experiment_id",),
            {"experiment_id": _S, "status": _S, "definition": _S, "updated_at": _TS},
        ),
        TableSpec(
            "template_labels", ("label_id",),
            {"label_id": _S, "template_key": _S, "label": _S, "version": _S, "set_by": _S, "note": _S, "set_at": _TS},
        ),
        TableSpec(
            "training_files", ("name",),
            {"name": _S, "description": _S, "created_at": _TS},
        ),
        TableSpec(
            "training_file_versions", ("name", "version"),
            {"name": _S, "version": _I, "change": _S, "member_ids": pl.List(_S), "splits": pl.List(_S),
             "split_ratios": pl.List(_I), "split_salt": _S, "records_hash": _S, "content_hash": _S,
             "scaffolding_fingerprint": _S, "template_versions": _S, "enrichment_version": _S,
             "created_at": _TS},
        ),
        TableSpec(
            "training_file_conversations", ("name", "version", "conversation_id"),
            {"name": _S, "version": _I, "conversation_id": _S, "split": _S, "tier": _S, "arc_key": _S,
             "cluster": _S, "created_at": _TS},
        ),
        TableSpec(
            "finetuning_jobs", ("job_id",),
            {"job_id": _S, "training_file": _S, "training_file_version": _I, "content_hash": _S, "format": _S,
             "provider": _S, "base_model": _S, "hyperparameters": _S, "suffix": _S, "external_job_id": _S,
             "training_file_id": _S, "validation_file_id": _S, "status": _S, "provider_status": _S, "error": _S,
             "estimated_tokens": _I, "estimated_cost_usd": _F, "cost_note": _S, "trained_tokens": _I,
             "actual_cost_usd": _F, "fine_tuned_model": _S, "forced": _S, "created_at": _TS, "updated_at": _TS},
        ),
        TableSpec(
            "finetuning_events", ("event_id",),
            {"event_id": _S, "job_id": _S, "status": _S, "detail": _S, "created_at": _TS},
        ),
        TableSpec(
            "model_versions", ("model_id",),
            {"model_id": _S, "job_id": _S, "base_model": _S, "training_file": _S, "training_file_version": _I,
             "version_label": _S, "environment": _S, "created_at": _TS, "updated_at": _TS},
            {"environment": "none"},
        ),
        TableSpec(
            "delta_pins", ("training_file", "training_file_version", "table_name"),
            {"training_file": _S, "training_file_version": _I, "table_name": _S, "delta_version": _I,
             "pinned_at": _TS},
        ),
        TableSpec(
            "import_errors", ("import_id", "line", "field"),
            {"import_id": _S, "line": _I, "field": _S, "source_column": _S, "reason": _S, "fix": _S, "value": _S,
             "file": _S, "created_at": _TS},
        ),
    ]
}


@dataclass(frozen=True)
class TableFiles:
    """What a reader should read for one table, right now."""

    base: tuple[Path, ...]
    deltas: tuple[Path, ...]
    bad: tuple[tuple[Path, str], ...]
    columns: dict[str, int] = field(default_factory=dict, compare=False)
    """How many of the readable files hold each column (files written before a column existed lack it)."""

    @property
    def signature(self) -> tuple:
        return (self.base, self.deltas)
