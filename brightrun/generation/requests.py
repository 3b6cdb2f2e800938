"""One request and its answer: the item's rendered request, the answer's check, the correction."""

from __future__ import annotations

import functools
import random

from pydantic import ValidationError

from brightrun.generation.jobs import template_at_version
from brightrun.models import BatchItem, GeneratedConversation
from brightrun.providers.answers import echo, problem_of, validate_answer
from brightrun.providers.base import ProviderRequest, ProviderResponse, ScaffoldSpec
from brightrun.providers.schema import conversation_schema
from brightrun.scaffolding import draw_variation, render_template, scaffold_context, variation_json
from brightrun.workspace import Workspace

OUTPUT_SCHEMA = conversation_schema()


@functools.lru_cache(maxsize=64)
def _schema_for(turn_count: int) -> dict:
    """The conversation schema with exactly `turn_count` turns, shared by every request (never changed)."""
    return conversation_schema(turn_count)


def sample_of(item: BatchItem) -> str:
    """Which variation of which cell an item is: part of its request, so equal samples share a cache entry."""
    return (f"{item.persona_key}/{item.arc_key}/{item.topic_key}/{item.template_key}@{item.template_version}"
            f"#{item.sample_index}")


def build_request(ws: Workspace, item: BatchItem, seed: int, attempt: int, model: str | None,
                  feedback: list[dict] | None = None, *, temperature: float | None = None,
                  max_tokens: int | None = None) -> ProviderRequest:
    """The provider request for one item: the template version rendered for its scaffold cell, with
    the template's model settings unless the job overrides them."""
    scaffolding = ws.scaffolding
    template = template_at_version(ws, item.template_key, item.template_version)
    persona, arc, topic = (scaffolding.personas[item.persona_key], scaffolding.arcs[item.arc_key],
                           scaffolding.topics[item.topic_key])
    turn_count = 2 * random.Random(seed).randint(template.turns.min // 2, template.turns.max // 2)
    variation = draw_variation(template, topic, seed)
    system, prompt = render_template(template, scaffold_context(scaffolding.consultant, persona, arc, topic,
                                                                turn_count), variation)
    return ProviderRequest(
        system=system, prompt=prompt, model=model or template.model_settings.model,
        temperature=template.model_settings.temperature if temperature is None else temperature,
        max_tokens=max_tokens or template.model_settings.max_tokens,
        output_schema=_schema_for(turn_count), seed=seed, attempt=attempt, tag=item.item_id, feedback=feedback or [],
        sample=sample_of(item),
        scaffold=ScaffoldSpec(consultant=scaffolding.consultant, persona=persona, arc=arc, topic=topic,
                              template=template, template_version=item.template_version, turn_count=turn_count,
                              variation=variation),
    )


def check_answer(response: ProviderResponse) -> GeneratedConversation:
    """The conversation in an answer, or ValueError saying what is wrong with it."""
    if response.stop_reason == "max_tokens":
        raise ValueError("the answer was cut off at max_tokens")
    try:
        return validate_answer(GeneratedConversation, response.text)
    except ValidationError as exc:
        raise ValueError(problem_of(exc, "conversation")) from None


def correction(response: ProviderResponse, problem: str) -> list[dict]:
    """The feedback that asks for a corrected answer (quoting at most the beginning of a long bad one)."""
    return [{"role": "assistant", "content": echo(response.text)},
            {"role": "user", "content": f"That answer could not be used: {problem}. Reply again with only the "
                                        f"JSON object that matches the schema, complete and shorter if needed."}]


def variation_of(request: ProviderRequest) -> str:
    """The stored form of the draw a request was rendered with."""
    return variation_json(request.scaffold.variation if request.scaffold is not None else {})
