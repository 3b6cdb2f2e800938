"""A new template version from the app: the edited text checked placeholder by placeholder, a preview rendered
for one scaffold cell with the scaffolding's own render function, and "save as version N+1", which writes the
template's YAML in the workspace's scaffolding (as a person editing it would) and records the version before and
the version after in the registry, under the workspace's `scaffolding` lock so two saves never lose one."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from brightrun.errors import BrightRunError, TemplateError, check_name
from brightrun.generation.jobs import record_template_versions
from brightrun.models.scaffolding import PromptTemplate
from brightrun.scaffolding import draw_variation, render_template, scaffold_context
from brightrun.scaffolding.templates import (
    BUILTIN_PLACEHOLDERS,
    check_template,
    placeholders,
    template_version,
)
from brightrun.workspace import Workspace
from brightrun.workspace.files import atomic_write_bytes

TEMPLATE_KEY = re.compile(r"[a-z][a-z0-9_]{1,63}")
FIELDS = {"system_prompt": "system prompt", "body": "body"}


def _template(ws: Workspace, template_key: object) -> PromptTemplate:
    """The current template named `template_key` (a name from the browser: checked before any use)."""
    check_name(template_key, "template", TEMPLATE_KEY, "a template key: 2 to 64 lower-case letters, digits or '_', "
               "starting with a letter (the Prompts page lists them)", TemplateError)
    templates = ws.scaffolding.templates
    if template_key not in templates:
        raise TemplateError(f"no template {template_key!r} in this workspace's scaffolding. Fix: pick one of "
                            f"{', '.join(sorted(templates))}.")
    return templates[template_key]


def known_placeholders(template: PromptTemplate) -> list[str]:
    """Every placeholder the template's text may use: the built-in ones, its variables and its variation."""
    return sorted(set(BUILTIN_PLACEHOLDERS) | set(template.variables) | set(template.variation))


@dataclass(frozen=True)
class Draft:
    """Edited text checked against its template: `problems` (each with its fix) or the edited template."""

    template_key: str
    problems: list[str]
    template: PromptTemplate | None  # the template with the edited text, when it has no problem
    version: str | None  # its content-hash version
    unchanged: bool  # the text is the current version's

    @property
    def ok(self) -> bool:
        return not self.problems


def _normal(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def check_draft(ws: Workspace, template_key: str, system_prompt: str, body: str) -> Draft:
    """Check edited text: every unknown placeholder is named with the known ones, then the scaffolding's own
    template checks (malformed or unclosed placeholders, a variation dimension the text no longer uses)."""
    current = _template(ws, template_key)
    texts = {"system_prompt": _normal(system_prompt), "body": _normal(body)}
    known = known_placeholders(current)
    problems = []
    for field, text in texts.items():
        if not text.strip():
            problems.append(f"the {FIELDS[field]} is empty. Fix: write the {FIELDS[field]}, or start again from the "
                            "current version's text.")
        unknown = [n for n in placeholders(text) if n not in known]
        problems += [f"{FIELDS[field]}: unknown placeholder {{{{{name}}}}}. Fix: use one of the known placeholders "
                     f"({', '.join(known)}); a new one needs a 'variables:' entry in the template's YAML."
                     for name in unknown]
    if problems:
        return Draft(template_key, problems, None, None, False)
    try:
        edited = PromptTemplate.model_validate({**current.model_dump(), **texts})
        check_template(edited, "the edited text")
    except TemplateError as exc:
        return Draft(template_key, [str(exc).removeprefix("the edited text: ")], None, None, False)
    except ValidationError as exc:  # pragma: no cover - the empty-text check above catches what the model refuses
        return Draft(template_key, [f"{exc.errors()[0]['msg']}. Fix: correct the text."], None, None, False)
    version = template_version(edited)
    return Draft(template_key, [], edited, version, version == ws.scaffolding.versions[template_key])


def preview(ws: Workspace, template: PromptTemplate, persona_key: str, arc_key: str, topic_key: str,
            *, seed: int = 0) -> tuple[str, str]:
    """(system prompt, body) of `template` rendered for one cell as generation would render it: the scaffold's
    values, the shortest turn count of the template, and the variation drawn for `seed`."""
    s = ws.scaffolding
    for key, have, what in ((persona_key, s.personas, "persona"), (arc_key, s.arcs, "arc"),
                            (topic_key, s.topics, "topic")):
        if key not in have:
            raise TemplateError(f"no {what} {key!r}. Fix: pick one of {', '.join(have)}.")
    topic = s.topics[topic_key]
    turns = max(2, template.turns.min - template.turns.min % 2)
    context = scaffold_context(s.consultant, s.personas[persona_key], s.arcs[arc_key], topic, turns)
    return render_template(template, context, draw_variation(template, topic, seed))


def version_numbers(ws: Workspace, template_key: str) -> dict[str, int]:
    """{version: its number}: 1 for the first version recorded, in the order they were first used or saved (the
    current version, if no job has recorded it yet, comes last)."""
    frame = ws.sql("SELECT version FROM prompt_templates WHERE template_key = ? "
                   "ORDER BY first_used_at NULLS LAST, version", [template_key])
    return {v: i for i, v in enumerate(frame["version"].to_list(), start=1)}


@dataclass(frozen=True)
class SavedVersion:
    template_key: str
    version: str
    number: int
    previous: str  # the version that was current before the save
    path: Path  # the template's YAML file


def _yaml_path(ws: Workspace, template_key: str) -> Path:
    for path in sorted((ws.scaffolding_dir / "templates").glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and data.get("key") == template_key:
            return path
    raise TemplateError(f"no YAML file under {ws.scaffolding_dir / 'templates'} holds template {template_key!r}. "
                        "Fix: reload the page; the scaffolding changed while you edited.")


class _Dumper(yaml.SafeDumper):
    """Multi-line text as a literal block (`|`), as the library's files are written."""


_Dumper.add_representer(str, lambda d, s: d.represent_scalar("tag:yaml.org,2002:str", s, style="|" if "\n" in s
                                                             else None))


def save_version(ws: Workspace, template_key: str, system_prompt: str, body: str) -> SavedVersion:
    """Write the edited text into the template's YAML and record it as the template's next version (the version it
    replaces is recorded first, so it stays usable, e.g. as an experiment's control). Refuses text with a problem,
    or text that is already a version of the template."""
    with ws.lock("scaffolding"):
        ws.reload_scaffolding()
        draft = check_draft(ws, template_key, system_prompt, body)
        if not draft.ok:
            raise TemplateError(f"template {template_key!r} was not saved: " + " ".join(draft.problems))
        numbers = version_numbers(ws, template_key)
        if draft.version in numbers:
            raise TemplateError(f"template {template_key!r}: this text is version {numbers[draft.version]} "
                                f"({draft.version}) already. Fix: change the text to make a new version.")
        previous = record_template_versions(ws, {template_key})[template_key]
        path = _yaml_path(ws, template_key)
        before = path.read_bytes()
        data = yaml.safe_load(before.decode("utf-8"))
        data.update(system_prompt=draft.template.system_prompt, body=draft.template.body)
        atomic_write_bytes(path, yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                                           width=10_000).encode("utf-8"))
        try:
            written = ws.reload_scaffolding().versions[template_key]
            if written != draft.version:
                raise TemplateError(f"template {template_key!r}: the YAML written reads back as version {written}, "
                                    f"not {draft.version}. Fix: report this; the file was restored.")
        except BrightRunError:
            atomic_write_bytes(path, before)
            ws.reload_scaffolding()
            raise
        record_template_versions(ws, {template_key})
        number = version_numbers(ws, template_key)[draft.version]
    return SavedVersion(template_key, draft.version, number, previous, path)
