"""Enrichment: training pairs in the enriched structure, and quarantined records."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from brightrun.models.generation import Role


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HistoryTurn(_Record):
    role: Role
    content: str


class ConversationMetadata(_Record):
    client_persona: str
    persona_archetype: str
    client_background: str
    emotional_arc: str
    emotional_arc_key: str
    training_topic: str
    training_topic_key: str


class EmotionalContext(_Record):
    detected_emotions: list[str]
    primary_emotion: str | None
    valence: float = Field(ge=-1.0, le=1.0)
    intensity: float = Field(ge=0.0, le=1.0)
    expected_stage_emotion: str | None = Field(description="the arc stage this turn falls in")
    method: str = Field(description="how the context was detected")


class TrainingMetadata(_Record):
    enrichment_version: str
    template_key: str
    template_version: str
    tier: str
    provider: str
    model: str
    is_scripted: bool
    response_word_count: int
    user_input_word_count: int
    history_turns: int
    quality_scores: dict[str, float | None] = Field(default_factory=dict,
                                                    description="each heuristic dimension, 0 to 1")
    quality_score: float | None = Field(default=None, ge=0, le=10, description="overall, 0 to 10")


class TrainingPair(_Record):
    id: str = Field(description='"<conversation>_turn<N>"')
    conversation_id: str
    turn_number: int
    conversation_metadata: ConversationMetadata
    system_prompt: str
    conversation_history: list[HistoryTurn]
    current_user_input: str
    emotional_context: EmotionalContext
    target_response: str
    training_metadata: TrainingMetadata


class DatasetMetadata(_Record):
    dataset_name: str
    version: str
    created_date: str
    vertical: str
    total_conversations: int
    total_turns: int


class EnrichedConversation(_Record):
    """The per-conversation enriched JSON of the source documents."""

    dataset_metadata: DatasetMetadata
    consultant_profile: dict
    training_pairs: list[TrainingPair]


class EnrichmentError(_Record):
    conversation_id: str
    reason: str
    fix: str
    enrichment_version: str
    created_at: datetime
