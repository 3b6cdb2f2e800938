"""Prompt templates: {{placeholder}} parsing, validation, rendering and content-hash versions."""

from __future__ import annotations

import functools
import hashlib
import re

import orjson

from brightrun.errors import TemplateError
from brightrun.models.scaffolding import (
    ConsultantProfile,
    EmotionalArc,
    Persona,
    PromptTemplate,
    TrainingTopic,
)

PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

BUILTIN_PLACEHOLDERS: dict[str, str] = {
    "consultant_name": "the advisor's name",
    "consultant_title": "the advisor's title",
    "consultant_style": "the advisor's communication style",
    "persona_name": "the client's name",
    "persona_archetype": "the client's archetype",
    "persona_background": "the client's background",
    "persona_traits": "the client's traits, comma separated",
    "persona_communication_style": "how the client talks",
    "persona_concerns": "the client's concerns, semicolon separated",
    "arc_name": "the emotional arc's name",
    "arc_start_emotion": "the emotion the client starts in",
    "arc_end_emotion": "the emotion the client ends in",
    "arc_stages": "the arc's stages, one per line",
    "topic_name": "the training topic's name",
    "topic_description": "the topic's description",
    "topic_complexity": "basic, intermediate or advanced",
    "topic_key_points": "the topic's key points, one per line",
    "turn_count": "the number of turns to write",
}


def placeholders(text: str) -> list[str]:
    """The placeholder names in `text`, in order of first use."""
    seen: dict[str, None] = {}
    for match in PLACEHOLDER.finditer(text):
        seen.setdefault(match.group(1), None)
    return list(seen)


def check_template(template: PromptTemplate, source: str) -> None:
    """Raise TemplateError if the template uses a placeholder nobody can fill, or declares a variation
    dimension that clashes with another placeholder or that its text never uses."""
    known = set(BUILTIN_PLACEHOLDERS) | set(template.variables) | set(template.variation)
    for field in ("system_prompt", "body"):
        text = getattr(template, field)
        for name in placeholders(text):
            if not _NAME.match(name):
                raise TemplateError(
                    f"{source}: template {template.key!r}, field {field}: malformed placeholder "
                    f"{{{{{name}}}}}. Fix: placeholder names are letters, digits and underscores, "
                    f"like {{{{persona_name}}}}."
                )
            if name not in known:
                close = sorted(k for k in known if k.split("_")[0] == name.split("_")[0])
                hint = f" Did you mean {', '.join(close)}?" if close else ""
                raise TemplateError(
                    f"{source}: template {template.key!r}, field {field}: unknown placeholder "
                    f"{{{{{name}}}}}.{hint} Fix: use one of the built-in placeholders "
                    f"({', '.join(sorted(BUILTIN_PLACEHOLDERS))}) or declare it under 'variables:' "
                    f"(one value) or 'variation:' (options drawn per sample) in the template."
                )
        if text.count("{{") != len(PLACEHOLDER.findall(text)):
            raise TemplateError(
                f"{source}: template {template.key!r}, field {field}: an opening '{{{{' has no "
                f"matching '}}}}'. Fix: close every placeholder, like {{{{topic_name}}}}."
            )
    _check_variation(template, source)


def _check_variation(template: PromptTemplate, source: str) -> None:
    used = set(placeholders(template.system_prompt)) | set(placeholders(template.body))
    for name in template.variation:
        where = f"{source}: template {template.key!r}, field variation.{name}"
        if name in BUILTIN_PLACEHOLDERS or name in template.variables:
            kind = "a built-in placeholder" if name in BUILTIN_PLACEHOLDERS else "a variable under 'variables:'"
            raise TemplateError(f"{where}: {name!r} is already {kind}. Fix: rename the variation dimension "
                                f"(and its {{{{{name}}}}} placeholders), for example to {name}_variant.")
        if name not in used:
            raise TemplateError(f"{where}: the dimension is declared but neither system_prompt nor body uses "
                                f"{{{{{name}}}}}, so its draw would be recorded without changing the prompt. "
                                f"Fix: use {{{{{name}}}}} in the body, or remove the dimension.")


def template_version(template: PromptTemplate) -> str:
    """A content hash of everything that shapes the request: the template's immutable version id.
    A template without variation hashes as it did before variation existed (same versions)."""
    content = template.model_dump(mode="json")
    if not content["variation"]:
        del content["variation"]
    canonical = orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()[:12]


def scaffold_context(
    consultant: ConsultantProfile,
    persona: Persona,
    arc: EmotionalArc,
    topic: TrainingTopic,
    turn_count: int,
) -> dict[str, str]:
    """The built-in placeholder values for one scaffold cell."""
    return {
        "consultant_name": consultant.name,
        "consultant_title": consultant.title,
        "consultant_style": consultant.communication_style,
        "persona_name": persona.name,
        "persona_archetype": persona.archetype,
        "persona_background": persona.background,
        "persona_traits": ", ".join(persona.traits),
        "persona_communication_style": persona.communication_style,
        "persona_concerns": "; ".join(persona.concerns),
        "arc_name": arc.name,
        "arc_start_emotion": arc.start_emotion,
        "arc_end_emotion": arc.end_emotion,
        "arc_stages": "\n".join(
            f"{i}. {s.emotion}: {s.description}" for i, s in enumerate(arc.stages, start=1)
        ),
        "topic_name": topic.name,
        "topic_description": topic.description,
        "topic_complexity": topic.complexity,
        "topic_key_points": "\n".join(f"- {p}" for p in topic.key_points),
        "turn_count": str(turn_count),
    }


@functools.lru_cache(maxsize=256)
def _pieces(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """`text` split at its placeholders: the literal pieces (one more than the names) and the names, in order
    (a template's text is split once, not at every render)."""
    parts = PLACEHOLDER.split(text)
    return tuple(parts[0::2]), tuple(parts[1::2])


def render(text: str, values: dict[str, str | None], *, template_key: str = "?") -> str:
    """Fill every placeholder of `text`; a missing or empty value is an error naming it."""
    literals, names = _pieces(text)
    out = [literals[0]]
    for name, literal in zip(names, literals[1:], strict=True):
        value = values.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise TemplateError(
                f"template {template_key!r}: no value for placeholder {{{{{name}}}}} at render time. "
                f"Fix: pass {name}=... when rendering, or give it a default under 'variables:' "
                f"in the template."
            )
        out += (str(value), literal)
    return "".join(out)


def render_template(
    template: PromptTemplate, context: dict[str, str], overrides: dict[str, str] | None = None
) -> tuple[str, str]:
    """Render (system prompt, body) from the scaffold context, template defaults and overrides (which carry
    the sample's variation draw, brightrun.scaffolding.variation.draw_variation)."""
    values: dict[str, str | None] = {**template.variables, **context, **(overrides or {})}
    undrawn = [name for name in template.variation if not values.get(name)]
    if undrawn:
        raise TemplateError(
            f"template {template.key!r}: no draw for the variation dimension(s) {', '.join(undrawn)}. Fix: pass "
            f"the sample's draw, brightrun.scaffolding.variation.draw_variation(template, topic, seed), as the overrides.")
    return (
        render(template.system_prompt, values, template_key=template.key),
        render(template.body, values, template_key=template.key),
    )
