"""The provider interface: one request in, one response out, async."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod

import orjson
from pydantic import BaseModel, ConfigDict, Field, SkipValidation

from brightrun.models.scaffolding import (
    ConsultantProfile,
    EmotionalArc,
    Persona,
    PromptTemplate,
    TrainingTopic,
)

JSON_MODES = ("auto", "json_schema", "json_object", "none")
"""How an OpenAI-compatible server is asked for JSON (see providers/openai_compat.py)."""


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
    variation: dict[str, str] = Field(default_factory=dict, description="the declared variation drawn for it")


class ProviderRequest(BaseModel):
    """A model call. Everything here except `scaffold` shapes what a real API receives."""

    action_type: str = "conversation_generation"
    system: str
    prompt: str
    model: str
    temperature: float = 0.8
    max_tokens: int = 4096
    output_schema: SkipValidation[dict | None] = Field(
        default=None, description="the answer's JSON schema; kept as the very object given (requests share a few, "
                                  "and memos key on it): never change one")
    seed: int = 0
    attempt: int = 1
    sample: str = Field(default="", description="which variation of a cell this is: part of the cache key")
    tag: str | None = Field(default=None, description="the item id, sent as trace metadata")
    feedback: list[dict] = Field(default_factory=list,
                                 description="earlier answers and corrections, sent after the prompt")
    scaffold: ScaffoldSpec | None = Field(default=None, exclude=True)

    def for_log(self) -> dict:
        """The request as stored in `llm_calls` (no secrets ever live on a request): every field but the
        schema and the scaffold, in field order (what `model_dump(mode="json")` gives, built directly: this
        runs for every call)."""
        return {"action_type": self.action_type, "system": self.system, "prompt": self.prompt, "model": self.model,
                "temperature": self.temperature, "max_tokens": self.max_tokens, "seed": self.seed,
                "attempt": self.attempt, "sample": self.sample, "tag": self.tag, "feedback": self.feedback}

    def messages(self) -> list[dict]:
        """The conversation sent to a chat API: the prompt, then any corrections."""
        return [{"role": "user", "content": self.prompt}, *self.feedback]

    def cache_key(self, provider: str) -> str:
        """A hash of everything that shapes the answer: equal keys need not be paid for twice. It is the
        sha256 of the request's JSON with sorted keys (tag, attempt and action type left out, the provider
        added); the schema's part is serialized once per schema object, not per call."""
        shaped = {"system": self.system, "prompt": self.prompt, "model": self.model, "temperature": self.temperature,
                  "max_tokens": self.max_tokens, "output_schema": None if self.output_schema is None else _MARK,
                  "seed": self.seed, "sample": self.sample, "feedback": self.feedback, "provider": provider}
        data = orjson.dumps(shaped, option=orjson.OPT_SORT_KEYS)
        if self.output_schema is not None:
            data = data.replace(_MARK_JSON, _sorted_json(self.output_schema), 1)
        return hashlib.sha256(data).hexdigest()


_MARK = "\x00brightrun:output_schema\x00"
_MARK_JSON = orjson.dumps(_MARK)
_SORTED: dict[int, tuple[dict, bytes]] = {}


def _sorted_json(schema: dict) -> bytes:
    """`schema` as JSON with sorted keys, memoized per schema object (requests share a few)."""
    hit = _SORTED.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    data = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
    if len(_SORTED) < 256:
        _SORTED[id(schema)] = (schema, data)  # holds `schema`, so its id is not reused meanwhile
    return data


class ProviderResponse(BaseModel):
    text: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    stop_reason: str = "end_turn"
    latency_ms: float = 0.0
    cache_hit: bool = False
    batch: bool = False


class Provider(ABC):
    """A source of completions. Implementations: scripted (offline); Anthropic and
    OpenAI-compatible endpoints plug in here without changes elsewhere."""

    name: str
    default_model: str
    is_scripted: bool = False
    supports_batches: bool = False
    cacheable: bool = True

    @abstractmethod
    async def complete(self, request: ProviderRequest) -> ProviderResponse:
        """Return the model's answer, or raise ProviderError (transient=True if worth retrying)."""

    @property
    def cache_name(self) -> str:
        """The provider as part of a response-cache key: its name, plus any setting that changes what the model
        sees for the same request (an OpenAI-compatible server's address, a folded system prompt)."""
        return self.name

    def cost_usd(self, model: str, input_tokens: int, output_tokens: int, batch: bool = False) -> float:
        """What the call cost, from the price table."""
        from brightrun.providers.pricing import price_table

        return price_table().cost(model, input_tokens, output_tokens, batch=batch)

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most providers hold nothing
        """Release connections; the default has none."""

    async def list_models(self) -> list[str] | None:
        """The model ids this key may use, when the API lists them; None when it has no such list."""
        return None
