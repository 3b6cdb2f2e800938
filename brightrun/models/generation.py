"""Generation: batch jobs, their items, conversations, turns, LLM calls and failures."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

JobStatus = Literal["queued", "processing", "completed", "failed", "cancelled"]
ItemStatus = Literal["pending", "completed", "failed"]
EnrichmentStatus = Literal["not_started", "enrichment_in_progress", "completed", "failed"]
Role = Literal["user", "assistant"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Cell(_Record):
    """One scaffold cell: persona x arc x topic, generated with the arc's template."""

    persona_key: str
    arc_key: str
    topic_key: str
    template_key: str


class BatchJob(_Record):
    job_id: str
    status: JobStatus
    tier: str = Field(description="the tier of its templates, or 'mixed'")
    provider: str
    model: str
    seed: int
    total: int = Field(ge=0)
    done: int = Field(default=0, ge=0)
    failed: int = Field(default=0, ge=0)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime
    note: str = ""
    provider_options: str = Field(default="{}", description="JSON of the provider's settings (never a key)")
    concurrency: int = Field(default=8, ge=1, le=512)
    batch_api: bool = False
    max_attempts: int = Field(default=3, ge=1, le=20)
    temperature: float | None = Field(default=None, ge=0.0, le=1.0, description="overrides the templates'")
    max_tokens: int | None = Field(default=None, ge=256, le=128000, description="overrides the templates'")
    run_started_at: datetime | None = None
    run_start_finished: int = 0


class BatchItem(_Record):
    item_id: str
    job_id: str
    item_index: int = Field(ge=0)
    sample_index: int = Field(default=0, ge=0, description="which variation of its cell this item is")
    persona_key: str
    arc_key: str
    topic_key: str
    template_key: str
    template_version: str
    status: ItemStatus = "pending"
    attempts: int = 0
    conversation_id: str | None = None
    updated_at: datetime


class Turn(_Record):
    role: Role
    content: str

    @field_validator("content")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("turn content is empty")
        return value


class GeneratedConversation(_Record):
    """What a provider must return for a conversation request (the output schema)."""

    title: str = Field(min_length=1, max_length=200)
    turns: list[Turn] = Field(min_length=2)

    @field_validator("turns")
    @classmethod
    def _alternating(cls, turns: list[Turn]) -> list[Turn]:
        if turns[0].role != "user":
            raise ValueError("the first turn must be the client's (role 'user')")
        for i, (a, b) in enumerate(zip(turns, turns[1:], strict=False), start=2):
            if a.role == b.role:
                raise ValueError(f"turn {i} repeats role {b.role!r}; roles must alternate")
        return turns


class Conversation(_Record):
    conversation_id: str
    job_id: str
    item_id: str
    persona_key: str
    arc_key: str
    topic_key: str
    template_key: str
    template_version: str
    tier: str
    provider: str
    model: str
    is_scripted: bool
    title: str
    turn_count: int
    call_id: str = Field(description="the LLM call that produced it")
    created_at: datetime
    variation: str = Field(default="{}", description="JSON of the declared variation drawn for it ('{}': none)")
    input_tokens: int | None = Field(default=None, description="the producing call's input tokens (None: written "
                                     "before conversations carried them; llm_calls has them by call_id)")
    output_tokens: int | None = Field(default=None, description="the producing call's output tokens")
    cost_usd: float | None = Field(default=None, description="what the producing call cost (0 for a cache hit)")
    latency_ms: float | None = Field(default=None, description="the producing call's latency")


class TurnRecord(_Record):
    conversation_id: str
    turn_number: int = Field(ge=1)
    role: Role
    content: str


class LLMCall(_Record):
    call_id: str
    action_type: str = Field(description="conversation_generation, quality_judge, or an imported app's step")
    provider: str
    model: str
    request: str = Field(description="the request as JSON, secrets removed")
    response: str = Field(description="the raw response text, kept even when it failed to parse")
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    cache_hit: bool = False
    template_key: str | None = None
    template_version: str | None = None
    job_id: str | None = None
    item_id: str | None = None
    attempt: int = 1
    status: Literal["ok", "error"] = "ok"
    error: str | None = None
    created_at: datetime
    # Imported app logs (None for generated calls): who, which session, what category, from where.
    user_id: str | None = None
    session_id: str | None = None
    category: str | None = None
    import_id: str | None = Field(default=None, description="the import that brought this call in")
    source_line: int | None = Field(default=None, description="the line (or row) of the imported file")


class FailedGeneration(_Record):
    failure_id: str
    job_id: str
    item_id: str
    error_type: str
    message: str
    raw_response: str | None
    attempt: int
    created_at: datetime
