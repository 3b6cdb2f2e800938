"""The provider interface: one request in, one response out, async."""

from __future__ import annotations

from abc import ABC, abstractmethod

from pydantic import BaseModel, ConfigDict, Field

from brightrun.models.scaffolding import (
    ConsultantProfile,
    EmotionalArc,
    Persona,
    PromptTemplate,
    TrainingTopic,
)


class ScaffoldSpec(BaseModel):
    """The structured scaffold behind a request. Real providers see only the rendered prompt;
    the scripted provider composes from this."""

    model_config = ConfigDict(frozen=True)

    consultant: ConsultantProfile
    persona: Persona
    arc: EmotionalArc
    topic: TrainingTopic
    template: PromptTemplate
    template_version: str
    turn_count: int


class ProviderRequest(BaseModel):
    """A model call. Everything here except `scaffold` shapes what a real API receives."""

    action_type: str = "conversation_generation"
    system: str
    prompt: str
    model: str
    temperature: float = 0.8
    max_tokens: int = 4096
    output_schema: dict | None = None
    seed: int = 0
    attempt: int = 1
    scaffold: ScaffoldSpec | None = Field(default=None, exclude=True)

    def for_log(self) -> dict:
        """The request as stored in `llm_calls` (no secrets ever live on a request)."""
        return self.model_dump(mode="json", exclude={"output_schema"})


class ProviderResponse(BaseModel):
    text: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    stop_reason: str = "end_turn"
    latency_ms: float = 0.0
    cache_hit: bool = False


class Provider(ABC):
    """A source of completions. Implementations: scripted (offline); Anthropic and
    OpenAI-compatible endpoints plug in here without changes elsewhere."""

    name: str
    default_model: str
    is_scripted: bool = False

    @abstractmethod
    async def complete(self, request: ProviderRequest) -> ProviderResponse:
        """Return the model's answer, or raise ProviderError (transient=True if worth retrying)."""

    def cost_usd(self, model: str, input_tokens: int, output_tokens: int) -> float:
        """What the call cost; providers with a price table override this."""
        return 0.0

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most providers hold nothing
        """Release connections; the default has none."""
