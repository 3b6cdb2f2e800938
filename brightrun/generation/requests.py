"""One request and its answer: the item's rendered request, the answer's check, the correction."""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

from pydantic import ValidationError

from brightrun.generation.jobs import template_at_version
from brightrun.models import (
    BatchItem,
    EmotionalArc,
    GeneratedConversation,
    Persona,
    PromptTemplate,
    TrainingTopic,
)
from brightrun.providers.answers import echo, problem_of, validate_answer
from brightrun.providers.base import ProviderRequest, ProviderResponse, ScaffoldSpec
from brightrun.providers.schema import conversation_schema
from brightrun.scaffolding import (
    Scaffolding,
    draw_from,
    options_for,
    render_template,
    scaffold_context,
    variation_json,
)
from brightrun.scaffolding.templates import PLACEHOLDER
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


def _usable(value: object) -> bool:
    """What render accepts for a placeholder: a value that is not None nor a blank string."""
    return value is not None and not (isinstance(value, str) and not value.strip())


class _Unfilled(Exception):
    """A fixed placeholder of a cell has no usable value: its items take render_template's path (and its error)."""


class _Filled:
    """A template text with one cell's fixed values in place: the literal runs around the placeholders left for
    each item (the turn count and the variation's dimensions). `render` gives what render() gives."""

    __slots__ = ("names", "runs")

    def __init__(self, text: str, fixed: dict[str, str | None], per_item: set[str]) -> None:
        parts = PLACEHOLDER.split(text)
        runs, names = [parts[0]], []
        for name, literal in zip(parts[1::2], parts[2::2], strict=True):
            if name in per_item:
                names.append(name)
                runs.append(literal)
            elif _usable(value := fixed.get(name)):
                runs[-1] += str(value) + literal
            else:
                raise _Unfilled(name)
        self.runs, self.names = runs, names

    def render(self, values: dict[str, str]) -> str:
        out = [self.runs[0]]
        for name, literal in zip(self.names, self.runs[1:], strict=True):
            out += (values[name], literal)
        return "".join(out)


@dataclass(frozen=True)
class _Cell:
    """What an item's request takes from its scaffold cell and template version, made once per cell."""

    template: PromptTemplate
    persona: Persona
    arc: EmotionalArc
    topic: TrainingTopic
    context: dict[str, str]  # scaffold_context without the turn count
    texts: tuple[_Filled, _Filled] | None  # system prompt and body; None: render_template renders them
    options: dict[str, list[str]]  # the variation's options per dimension (options_for)


class CellCache:
    """build_request's per-cell work (the template version, the scaffold context, the texts with the cell's values
    filled in), kept for one job's run. It holds one scaffolding: when the workspace reloads the library, it
    starts again."""

    def __init__(self) -> None:
        self.scaffolding: Scaffolding | None = None
        self.cells: dict[tuple[str, ...], _Cell] = {}

    def cell(self, ws: Workspace, scaffolding: Scaffolding, item: BatchItem) -> _Cell:
        if scaffolding is not self.scaffolding:
            self.scaffolding, self.cells = scaffolding, {}
        key = (item.template_key, item.template_version, item.persona_key, item.arc_key, item.topic_key)
        cell = self.cells.get(key)
        if cell is None:
            cell = self.cells[key] = _make_cell(ws, scaffolding, item)
        return cell


def _make_cell(ws: Workspace, scaffolding: Scaffolding, item: BatchItem) -> _Cell:
    template = template_at_version(ws, item.template_key, item.template_version)
    persona, arc, topic = (scaffolding.personas[item.persona_key], scaffolding.arcs[item.arc_key],
                           scaffolding.topics[item.topic_key])
    context = scaffold_context(scaffolding.consultant, persona, arc, topic, 0)
    del context["turn_count"]
    fixed, per_item = {**template.variables, **context}, {"turn_count", *template.variation}
    try:
        texts = (_Filled(template.system_prompt, fixed, per_item), _Filled(template.body, fixed, per_item))
    except _Unfilled:
        texts = None
    return _Cell(template, persona, arc, topic, context, texts, options_for(template, topic))


def build_request(ws: Workspace, item: BatchItem, seed: int, attempt: int, model: str | None,
                  feedback: list[dict] | None = None, *, temperature: float | None = None,
                  max_tokens: int | None = None, cells: CellCache | None = None) -> ProviderRequest:
    """The provider request for one item: the template version rendered for its scaffold cell, with
    the template's model settings unless the job overrides them. `cells`: a run's CellCache, so that what
    depends only on the item's cell is made once."""
    scaffolding = ws.scaffolding
    cell = (cells or CellCache()).cell(ws, scaffolding, item)
    template = cell.template
    turn_count = 2 * random.Random(seed).randint(template.turns.min // 2, template.turns.max // 2)
    variation = draw_from(cell.options, seed)
    per_item = {"turn_count": str(turn_count), **variation}
    if cell.texts is not None and all(_usable(v) for v in variation.values()):
        system, prompt = cell.texts[0].render(per_item), cell.texts[1].render(per_item)
    else:  # a placeholder without a value: render_template says which
        system, prompt = render_template(template, {**cell.context, "turn_count": str(turn_count)}, variation)
    settings = template.model_settings
    # Built without validation (model_construct): every value is already of its field's type, taken from validated
    # models or made above; validating two models per call cost ~10 us of the runner's own work (bench_generation).
    return ProviderRequest.model_construct(
        system=system, prompt=prompt, model=model or settings.model,
        temperature=settings.temperature if temperature is None else float(temperature),
        max_tokens=max_tokens or settings.max_tokens,
        output_schema=_schema_for(turn_count), seed=seed, attempt=attempt, tag=item.item_id, feedback=feedback or [],
        sample=sample_of(item),
        scaffold=ScaffoldSpec.model_construct(
            consultant=scaffolding.consultant, persona=cell.persona, arc=cell.arc, topic=cell.topic, template=template,
            template_version=item.template_version, turn_count=turn_count, variation=variation),
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
