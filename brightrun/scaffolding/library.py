"""Load and validate the scaffolding library: personas, arcs, topics, templates, consultant."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from brightrun.errors import ScaffoldingError, TemplateError
from brightrun.models.generation import Cell
from brightrun.models.scaffolding import (
    ConsultantProfile,
    EmotionalArc,
    Persona,
    PromptTemplate,
    TrainingTopic,
)
from brightrun.scaffolding.templates import check_template, template_version
from brightrun.scaffolding.variation import check_topic_variation

FILES = {
    "consultant": "consultant.yaml",
    "personas": "personas.yaml",
    "emotional_arcs": "emotional_arcs.yaml",
    "training_topics": "training_topics.yaml",
    "templates": "templates",
}

_FIXES = {
    "literal_error": "use one of the allowed values",
    "missing": "add the field",
    "extra_forbidden": "remove the field or fix its spelling",
    "string_pattern_mismatch": "keys are lowercase letters, digits and underscores, starting with a letter",
    "too_short": "add at least the minimum number of entries",
    "string_too_short": "give it a non-empty value",
    "blank_option": "write the option's text or remove the entry",
    "duplicate_option": "remove the repeated option (a repeat would be drawn twice as often)",
    "list_type": "write it as a list, one '- item' per line",
    "dict_type": "write it as a mapping, one 'name:' per line",
}


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a mapping with the same key twice."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ScaffoldingError(
                f"{loader.name}, line {key_node.start_mark.line + 1}: the key {key!r} appears twice "
                f"in one mapping. Fix: remove or rename one of them."
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ScaffoldingError(
            f"{path}: file not found. Fix: create it, or copy it from the default library with "
            f"`brightrun demo` on a new workspace."
        ) from exc
    except UnicodeDecodeError as exc:
        raise ScaffoldingError(f"{path}: not UTF-8 text. Fix: save the file as UTF-8.") from exc
    loader = _UniqueKeyLoader(text)
    loader.name = str(path)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise ScaffoldingError(f"{path}: invalid YAML: {exc}. Fix: correct the syntax there.") from exc
    finally:
        loader.dispose()


def _build(model: type[BaseModel], data: Any, path: Path, what: str) -> Any:
    key = data.get("key", "?") if isinstance(data, dict) else "?"
    if not isinstance(data, dict):
        raise ScaffoldingError(f"{path}: {what} #{key} is not a mapping. Fix: write it as 'field: value' lines.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(record)"
        fix = _FIXES.get(err["type"], "correct the value")
        if err["type"] == "literal_error":
            fix = f"use one of {err['ctx']['expected']}"
        more = f" ({exc.error_count() - 1} more problem(s) in the same record)" if exc.error_count() > 1 else ""
        raise ScaffoldingError(
            f"{path}: {what} {key!r}, field {loc}: {err['msg']} (got {err.get('input')!r}). Fix: {fix}.{more}"
        ) from None


def _load_list(path: Path, top: str, model: type[BaseModel], what: str) -> dict[str, Any]:
    data = _read_yaml(path)
    if not isinstance(data, dict) or not isinstance(data.get(top), list):
        raise ScaffoldingError(f"{path}: expected a top-level '{top}:' list. Fix: start the file with '{top}:'.")
    out: dict[str, Any] = {}
    for raw in data[top]:
        item = _build(model, raw, path, what)
        if item.key in out:
            raise ScaffoldingError(
                f"{path}: duplicate {what} key {item.key!r}. Fix: every {what} needs its own key; rename one."
            )
        out[item.key] = item
    if not out:
        raise ScaffoldingError(f"{path}: no {what} defined. Fix: add at least one under '{top}:'.")
    return out


@dataclass(frozen=True)
class Scaffolding:
    """The validated library, with each template's content-hash version."""

    source: Path
    consultant: ConsultantProfile
    personas: dict[str, Persona]
    arcs: dict[str, EmotionalArc]
    topics: dict[str, TrainingTopic]
    templates: dict[str, PromptTemplate]
    versions: dict[str, str] = field(default_factory=dict)
    fingerprint: str = ""

    def template_for_arc(self, arc_key: str) -> PromptTemplate:
        for template in self.templates.values():
            if template.arc_type == arc_key:
                return template
        raise ScaffoldingError(
            f"{self.source}: no template is written for arc {arc_key!r}. "
            f"Fix: add a template with 'arc_type: {arc_key}' under templates/."
        )

    def cells(
        self,
        personas: list[str] | None = None,
        arcs: list[str] | None = None,
        topics: list[str] | None = None,
    ) -> list[Cell]:
        """Every persona x arc x topic cell (each with its arc's template), optionally narrowed."""
        chosen = {
            "persona": self._choose(personas, self.personas, "persona"),
            "arc": self._choose(arcs, self.arcs, "arc"),
            "topic": self._choose(topics, self.topics, "topic"),
        }
        return [
            Cell(persona_key=p, arc_key=a, topic_key=t, template_key=self.template_for_arc(a).key)
            for p in chosen["persona"]
            for a in chosen["arc"]
            for t in chosen["topic"]
        ]

    def _choose(self, wanted: list[str] | None, have: dict[str, Any], what: str) -> list[str]:
        if not wanted:
            return list(have)
        unknown = [w for w in wanted if w not in have]
        if unknown:
            raise ScaffoldingError(
                f"unknown {what} key(s) {', '.join(unknown)}. Fix: use one of {', '.join(have)}."
            )
        return list(dict.fromkeys(wanted))


def _fingerprint(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.yaml")):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def load_scaffolding(folder: Path | str) -> Scaffolding:
    """Load and validate a scaffolding folder; any problem raises ScaffoldingError or TemplateError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ScaffoldingError(
            f"{folder}: no scaffolding folder. Fix: create it or open a workspace made by `brightrun demo`."
        )
    consultant = _build(ConsultantProfile, _read_yaml(folder / FILES["consultant"]),
                        folder / FILES["consultant"], "consultant")
    personas = _load_list(folder / FILES["personas"], "personas", Persona, "persona")
    arcs = _load_list(folder / FILES["emotional_arcs"], "emotional_arcs", EmotionalArc, "arc")
    topics = _load_list(folder / FILES["training_topics"], "training_topics", TrainingTopic, "topic")
    templates: dict[str, PromptTemplate] = {}
    template_dir = folder / FILES["templates"]
    paths = sorted(template_dir.glob("*.yaml")) if template_dir.is_dir() else []
    if not paths:
        raise ScaffoldingError(f"{template_dir}: no templates. Fix: add one YAML file per template there.")
    for path in paths:
        template = _build(PromptTemplate, _read_yaml(path), path, "template")
        if template.key in templates:
            raise ScaffoldingError(
                f"{path}: duplicate template key {template.key!r}. Fix: rename one of the templates."
            )
        check_template(template, str(path))
        if template.arc_type not in arcs:
            raise TemplateError(
                f"{path}: template {template.key!r} names arc_type {template.arc_type!r}, which is not an "
                f"arc. Fix: use one of {', '.join(arcs)}."
            )
        if template.turns.min > template.turns.max:
            raise TemplateError(
                f"{path}: template {template.key!r}: turns.min {template.turns.min} is above turns.max "
                f"{template.turns.max}. Fix: swap them."
            )
        templates[template.key] = template
    check_topic_variation(topics, templates, folder / FILES["training_topics"])
    return Scaffolding(
        source=folder, consultant=consultant, personas=personas, arcs=arcs, topics=topics,
        templates=templates, versions={k: template_version(t) for k, t in templates.items()},
        fingerprint=_fingerprint(folder),
    )


def default_library() -> Path:
    """The scaffolding library shipped with BrightRun (in a wheel, or data/scaffolding in a checkout)."""
    package_root = Path(__file__).resolve().parent.parent  # brightrun/
    packaged = package_root / "_scaffolding"
    if packaged.is_dir():
        return packaged
    return package_root.parent / "data" / "scaffolding"
