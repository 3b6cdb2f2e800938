"""Declared variation: the options a template (and a topic) offers per named dimension, one drawn per sample.

A template declares dimensions under `variation:` (for example `opening`, `situation`, `client_mood`,
`detail`), each a list of options, and uses them as `{{opening}}` and so on in its text. A topic may
add options to a dimension a template declares: for conversations about that topic, the topic's options
join the template's (after them, repeats dropped), so an arc's situations and a subject's situations are
both drawn. The draw for a sample depends only on the item's seed and the dimension's name, so it is
reproducible, independent of the turn-count draw, and adding a dimension leaves the draws of the others
unchanged. The draw is sent to the model through the placeholders and recorded on the conversation
(column `variation`, JSON).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson

from brightrun.errors import ScaffoldingError
from brightrun.models.scaffolding import PromptTemplate, TrainingTopic

NO_VARIATION = "{}"


def options_for(template: PromptTemplate, topic: TrainingTopic) -> dict[str, list[str]]:
    """The options of each dimension the template declares: the template's, then the topic's new ones."""
    return {name: list(dict.fromkeys([*options, *topic.variation.get(name, [])]))
            for name, options in sorted(template.variation.items())}


def pick(seed: int, name: str, options: list[str]) -> str:
    """The option of dimension `name` for `seed`: the first 8 bytes of blake2b("<seed>:variation:<name>") as
    a number, modulo the options' count (uniform to within 1e-17; no random.Random to seed per dimension,
    which cost ~5 us each on every request)."""
    digest = hashlib.blake2b(f"{seed}:variation:{name}".encode(), digest_size=8).digest()
    return options[int.from_bytes(digest, "big") % len(options)]


def draw_variation(template: PromptTemplate, topic: TrainingTopic, seed: int) -> dict[str, str]:
    """One option per declared dimension, drawn from the item's seed (independently per dimension name)."""
    return draw_from(options_for(template, topic), seed)


def draw_from(options: dict[str, list[str]], seed: int) -> dict[str, str]:
    """draw_variation over options_for's result, for a caller that keeps it (it depends only on the cell)."""
    return {name: pick(seed, name, values) for name, values in options.items()}


def variation_json(draw: dict[str, str]) -> str:
    """The draw as stored on a conversation: JSON with sorted keys, '{}' when nothing was drawn."""
    return orjson.dumps(draw, option=orjson.OPT_SORT_KEYS).decode() if draw else NO_VARIATION


def parse_variation(text: str | None) -> dict[str, str]:
    """A stored draw read back; empty for '{}', null or a row written before variation existed."""
    if not text:
        return {}
    value = orjson.loads(text)
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def check_topic_variation(topics: dict[str, TrainingTopic], templates: dict[str, PromptTemplate],
                          path: Path) -> None:
    """Raise ScaffoldingError for a topic dimension no template declares: its options would never be drawn."""
    declared = sorted({name for t in templates.values() for name in t.variation})
    for topic in topics.values():
        for name in topic.variation:
            if name not in declared:
                choices = f"one of {', '.join(declared)}" if declared else "a dimension a template declares"
                raise ScaffoldingError(
                    f"{path}: topic {topic.key!r}, field variation.{name}: no template declares the variation "
                    f"dimension {name!r}, so these options would never be drawn. Fix: rename it to {choices}, "
                    f"or declare {name} under 'variation:' in a template that uses {{{{{name}}}}}.")
