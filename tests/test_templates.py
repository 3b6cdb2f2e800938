"""Placeholders, rendering and content-hash versions."""

from __future__ import annotations

import pytest

from brightrun.errors import TemplateError
from brightrun.scaffolding.library import default_library, load_scaffolding
from brightrun.scaffolding.templates import (
    placeholders,
    render,
    render_template,
    scaffold_context,
    template_version,
)
from brightrun.scaffolding.variation import draw_variation


def test_placeholders_in_order_with_spaces() -> None:
    assert placeholders("{{ a }} and {{b}} then {{a}}") == ["a", "b"]


def test_render_fills_values_and_names_the_missing_one() -> None:
    assert render("Hi {{ name }}!", {"name": "Ana"}) == "Hi Ana!"
    with pytest.raises(TemplateError) as err:
        render("Hi {{name}} about {{topic}}", {"name": "Ana"}, template_key="tpl_x")
    assert "tpl_x" in str(err.value) and "{{topic}}" in str(err.value) and "Fix:" in str(err.value)
    with pytest.raises(TemplateError, match="no value for placeholder"):
        render("Hi {{name}}", {"name": "   "})


def test_every_default_template_renders_for_a_real_cell() -> None:
    s = load_scaffolding(default_library())
    persona = next(iter(s.personas.values()))
    topic = s.topics["mortgage_payoff_strategy"]
    for template in s.templates.values():
        context = scaffold_context(s.consultant, persona, s.arcs[template.arc_type], topic, 8)
        with pytest.raises(TemplateError, match="no draw for the variation"):
            render_template(template, context)
        draw = draw_variation(template, topic, seed=1)
        system, body = render_template(template, context, draw)
        assert "{{" not in system + body
        assert all(option in system + body for option in draw.values())
        assert persona.name in system + body or persona.name.split(" - ")[0] in system + body


def test_declared_variable_without_default_must_be_given() -> None:
    s = load_scaffolding(default_library())
    template = s.templates["tpl_confusion_to_clarity"].model_copy(
        update={"variables": {"deadline": None}, "body": "Due {{deadline}}.", "variation": {}})
    context = scaffold_context(s.consultant, next(iter(s.personas.values())), s.arcs["confusion_to_clarity"],
                               s.topics["emergency_fund"], 8)
    with pytest.raises(TemplateError, match="deadline"):
        render_template(template, context)
    assert render_template(template, context, {"deadline": "Friday"})[1] == "Due Friday."


def test_version_is_a_content_hash() -> None:
    s = load_scaffolding(default_library())
    template = s.templates["tpl_confusion_to_clarity"]
    assert template_version(template) == s.versions[template.key]
    assert template_version(template.model_copy()) == template_version(template)
    changed = template.model_copy(update={"body": template.body + " "})
    assert template_version(changed) != template_version(template)
