"""The domain model: pydantic v2 types for every entity, and their JSON schemas.

May import: nothing from BrightRun.
"""

from __future__ import annotations

from pydantic import BaseModel

from brightrun.models.enrichment import (
    ConversationMetadata,
    DatasetMetadata,
    EmotionalContext,
    EnrichedConversation,
    EnrichmentError,
    HistoryTurn,
    TrainingMetadata,
    TrainingPair,
)
from brightrun.models.feedback import Feedback
from brightrun.models.generation import (
    BatchItem,
    BatchJob,
    Cell,
    Conversation,
    FailedGeneration,
    GeneratedConversation,
    LLMCall,
    Turn,
    TurnRecord,
)
from brightrun.models.scaffolding import (
    ArcStage,
    ConsultantProfile,
    EmotionalArc,
    ModelSettings,
    Persona,
    PromptTemplate,
    TrainingTopic,
    TurnRange,
)

ENTITIES: dict[str, type[BaseModel]] = {
    "consultant_profile": ConsultantProfile,
    "persona": Persona,
    "emotional_arc": EmotionalArc,
    "training_topic": TrainingTopic,
    "prompt_template": PromptTemplate,
    "batch_job": BatchJob,
    "batch_item": BatchItem,
    "conversation": Conversation,
    "turn": TurnRecord,
    "generated_conversation": GeneratedConversation,
    "llm_call": LLMCall,
    "failed_generation": FailedGeneration,
    "training_pair": TrainingPair,
    "enriched_conversation": EnrichedConversation,
    "enrichment_error": EnrichmentError,
    "feedback": Feedback,
}


def json_schemas() -> dict[str, dict]:
    """The JSON schema of every entity, by entity name."""
    return {name: model.model_json_schema() for name, model in ENTITIES.items()}


__all__ = [
    "ENTITIES", "json_schemas", "ArcStage", "BatchItem", "BatchJob", "Cell", "ConsultantProfile",
    "Conversation", "ConversationMetadata", "DatasetMetadata", "EmotionalArc", "EmotionalContext",
    "EnrichedConversation", "EnrichmentError", "FailedGeneration", "Feedback", "GeneratedConversation",
    "HistoryTurn", "LLMCall", "ModelSettings", "Persona", "PromptTemplate", "TrainingMetadata",
    "TrainingPair", "TrainingTopic", "Turn", "TurnRange", "TurnRecord",
]
