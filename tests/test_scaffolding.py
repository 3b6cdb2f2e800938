"""The scaffolding library loads, and every kind of bad scaffolding gets an error naming file, key and fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from brightrun.errors import ScaffoldingError, TemplateError
from brightrun.scaffolding.library import default_library, load_scaffolding


@pytest.fixture
def library(tmp_path: Path) -> Path:
    target = tmp_path / "scaffolding"
    shutil.copytree(default_library(), target)
    return target


def test_default_library_has_the_required_content() -> None:
    s = load_scaffolding(default_library())
    assert len(s.personas) >= 3
    assert "David Chen - The Pragmatic Optimist" in [p.name for p in s.personas.values()]
    tiers = [a.tier for a in s.arcs.values()]
    assert (len(s.arcs), tiers.count("template"), tiers.count("edge_case")) == (10, 7, 3)
    assert {"confusion_to_clarity", "overwhelm_to_empowerment"} <= set(s.arcs)
    assert len(s.topics) >= 8
    assert {"mortgage_payoff_strategy", "estate_planning_basics"} <= set(s.topics)
    template_tiers = [t.tier for t in s.templates.values()]
    assert (len(s.templates), template_tiers.count("template"), template_tiers.count("edge_case")) == (10, 7, 3)
    assert all(len(v) == 12 for v in s.versions.values())
    assert s.consultant.key == "financial_planning_consultant"
    assert len(s.cells()) == len(s.personas) * len(s.arcs) * len(s.topics)


def _edit_template(library: Path, key: str, **changes) -> Path:
    path = library / "templates" / f"{key}.yaml"
    data = yaml.safe_load(path.read_text())
    data.update(changes)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_unknown_placeholder_names_file_key_placeholder_and_fix(library: Path) -> None:
    path = _edit_template(library, "tpl_confusion_to_clarity", body="Talk about {{topic_nmae}} please.")
    with pytest.raises(TemplateError) as err:
        load_scaffolding(library)
    message = str(err.value)
    assert str(path) in message and "tpl_confusion_to_clarity" in message
    assert "{{topic_nmae}}" in message and "Did you mean" in message and "Fix:" in message


def test_unclosed_placeholder_is_an_error(library: Path) -> None:
    _edit_template(library, "tpl_confusion_to_clarity", body="Talk about {{topic_name please.")
    with pytest.raises(TemplateError, match="no matching"):
        load_scaffolding(library)


def test_duplicate_yaml_key_names_file_line_and_key(library: Path) -> None:
    path = library / "personas.yaml"
    original = path.read_text()
    text = original.replace("    archetype: pragmatic_optimist\n",
                            "    archetype: pragmatic_optimist\n    archetype: anxious_planner\n", 1)
    assert text != original
    path.write_text(text)
    with pytest.raises(ScaffoldingError) as err:
        load_scaffolding(library)
    assert str(path) in str(err.value) and "appears twice" in str(err.value) and "line" in str(err.value)


def test_duplicate_entity_key_is_an_error(library: Path) -> None:
    path = library / "training_topics.yaml"
    data = yaml.safe_load(path.read_text())
    data["training_topics"].append(dict(data["training_topics"][0]))
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ScaffoldingError, match=r"duplicate topic key 'emergency_fund'|duplicate topic key"):
        load_scaffolding(library)


def test_duplicate_template_key_across_files_is_an_error(library: Path) -> None:
    shutil.copy(library / "templates" / "tpl_fear_to_security.yaml", library / "templates" / "copy.yaml")
    with pytest.raises(ScaffoldingError, match="duplicate template key 'tpl_fear_to_security'"):
        load_scaffolding(library)


def test_arc_with_unknown_tier_names_the_arc_and_allowed_tiers(library: Path) -> None:
    path = library / "emotional_arcs.yaml"
    data = yaml.safe_load(path.read_text())
    data["emotional_arcs"][1]["tier"] = "legendary"
    key = data["emotional_arcs"][1]["key"]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ScaffoldingError) as err:
        load_scaffolding(library)
    message = str(err.value)
    assert str(path) in message and repr(key) in message and "tier" in message
    assert "legendary" in message and "'template'" in message and "'edge_case'" in message


def test_template_for_unknown_arc_is_an_error(library: Path) -> None:
    _edit_template(library, "tpl_fear_to_security", arc_type="fear_to_nowhere")
    with pytest.raises(TemplateError, match="arc_type 'fear_to_nowhere'.*Fix: use one of"):
        load_scaffolding(library)


def test_invalid_yaml_and_missing_file(library: Path) -> None:
    (library / "personas.yaml").write_text("personas: [unclosed\n")
    with pytest.raises(ScaffoldingError, match="invalid YAML"):
        load_scaffolding(library)
    (library / "personas.yaml").unlink()
    with pytest.raises(ScaffoldingError, match="file not found"):
        load_scaffolding(library)


def test_unknown_cell_key_is_an_error() -> None:
    s = load_scaffolding(default_library())
    with pytest.raises(ScaffoldingError, match="unknown persona key.*nobody.*Fix"):
        s.cells(personas=["nobody"])
