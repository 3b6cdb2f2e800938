"""Declared variation: validated at load time, drawn per sample from the item's seed, rendered through
placeholders and recorded on the conversation."""

from __future__ import annotations

import hashlib
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import orjson
import polars as pl
import pytest
import yaml
from test_storage import NOW

from brightrun.errors import ScaffoldingError, TemplateError
from brightrun.generation import build_request, create_job, plan_uniform, run_job
from brightrun.generation.jobs import item_seed
from brightrun.models import BatchItem
from brightrun.providers import ScriptedProvider
from brightrun.scaffolding.library import default_library, load_scaffolding
from brightrun.scaffolding.templates import template_version
from brightrun.scaffolding.variation import draw_variation, options_for, parse_variation, pick, variation_json
from brightrun.workspace import Workspace
from brightrun.workspace.store import _CLOCK

CELL = (["jennifer_walsh"], ["crisis_to_stabilization"], ["emergency_fund"])


@pytest.fixture
def library(tmp_path: Path) -> Path:
    target = tmp_path / "scaffolding"
    shutil.copytree(default_library(), target)
    return target


def _edit(path: Path, change) -> Path:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _template(library: Path, key: str = "tpl_confusion_to_clarity") -> Path:
    return library / "templates" / f"{key}.yaml"


def test_topic_options_join_the_templates() -> None:
    s = load_scaffolding(default_library())
    template, topic = s.templates["tpl_crisis_to_stabilization"], s.topics["emergency_fund"]
    options = options_for(template, topic)
    assert list(options) == ["client_mood", "crisis_event", "detail", "opening", "situation"]
    assert options["situation"] == template.variation["situation"] + topic.variation["situation"]
    assert options["opening"] == template.variation["opening"]  # the topic adds no openings
    overlapping = topic.model_copy(update={"variation": {"detail": [template.variation["detail"][0], "new"]}})
    assert options_for(template, overlapping)["detail"] == [*template.variation["detail"], "new"]


def test_a_draw_is_one_option_per_dimension_reproducible_and_independent_per_dimension() -> None:
    s = load_scaffolding(default_library())
    template, topic = s.templates["tpl_crisis_to_stabilization"], s.topics["emergency_fund"]
    options = options_for(template, topic)
    draw = draw_variation(template, topic, 41)
    assert draw == draw_variation(template, topic, 41)
    assert draw == {name: pick(41, name, opts) for name, opts in options.items()}
    assert all(draw[name] in options[name] for name in options)
    fewer = template.model_copy(update={"variation": {k: v for k, v in template.variation.items() if k != "detail"}})
    assert draw_variation(fewer, topic, 41) == {k: v for k, v in draw.items() if k != "detail"}
    seen = {draw_variation(template, topic, seed)["opening"] for seed in range(200)}
    assert seen == set(options["opening"])  # every option gets drawn


def test_samples_of_one_cell_send_different_prompts_with_unchanged_turn_counts(ws: Workspace) -> None:
    job = create_job(ws, plan_uniform(ws.scaffolding.cells(*CELL), 12), provider="scripted", model="scripted-1",
                     seed=7, job_id="j")
    items = [BatchItem.model_validate(r) for r in ws.sql("SELECT * FROM batch_items ORDER BY item_index").to_dicts()]
    template = ws.scaffolding.templates["tpl_crisis_to_stabilization"]
    requests = [build_request(ws, item, item_seed(job.seed, item.item_index), 1, None) for item in items]
    draws = [r.scaffold.variation for r in requests]
    assert len({variation_json(d) for d in draws}) >= 11  # 5 x 4 x 7 x 5 x 7 combinations
    assert len({r.prompt for r in requests}) >= 11
    for item, request in zip(items, requests, strict=True):
        seed = item_seed(job.seed, item.item_index)
        assert request.scaffold.turn_count == 2 * random.Random(seed).randint(4, 7)  # the draw before variation
        assert request.scaffold.variation == draw_variation(template, ws.scaffolding.topics["emergency_fund"], seed)
        assert all(option in request.prompt for option in request.scaffold.variation.values())
    again = build_request(ws, items[0], item_seed(job.seed, 0), 1, None)
    assert again.prompt == requests[0].prompt and again.cache_key("p") == requests[0].cache_key("p")
    assert len({r.cache_key("p") for r in requests}) == len({r.prompt for r in requests})


def test_each_conversation_records_its_draw(ws: Workspace) -> None:
    create_job(ws, plan_uniform(ws.scaffolding.cells(*CELL), 6), provider="scripted", model="scripted-1", seed=3,
               job_id="j")
    run_job(ws, "j", ScriptedProvider())
    rows = ws.sql("SELECT i.item_index, c.variation FROM conversations c JOIN batch_items i USING (item_id) "
                  "ORDER BY 1").rows()
    s = ws.scaffolding
    expected = [variation_json(draw_variation(s.templates["tpl_crisis_to_stabilization"], s.topics["emergency_fund"],
                                              item_seed(3, index))) for index, _ in rows]
    assert [text for _, text in rows] == expected
    assert set(parse_variation(expected[0])) == {"client_mood", "crisis_event", "detail", "opening", "situation"}
    assert orjson.loads(expected[0]) == parse_variation(expected[0])


def test_conversations_written_before_variation_read_as_none_drawn(ws: Workspace) -> None:
    folder = ws.root / "tables" / "conversations"
    folder.mkdir(parents=True)
    old = {"conversation_id": "old", "job_id": "j", "item_id": "i", "persona_key": "david_chen",
           "arc_key": "confusion_to_clarity", "topic_key": "emergency_fund", "template_key": "tpl_confusion_to_clarity",
           "template_version": "x", "tier": "template", "provider": "scripted", "model": "m", "is_scripted": True,
           "title": "t", "turn_count": 2, "call_id": "c", "created_at": NOW, "_seq": _CLOCK.next()}
    pl.DataFrame([old]).write_parquet(folder / "part-1-1-old.parquet")
    assert ws.sql("SELECT variation FROM conversations").item() == "{}"
    assert parse_variation("{}") == {} and parse_variation(None) == {}


def test_a_template_without_variation_keeps_its_version() -> None:
    s = load_scaffolding(default_library())
    plain = s.templates["tpl_confusion_to_clarity"].model_copy(update={"variation": {}})
    before = {k: v for k, v in plain.model_dump(mode="json").items() if k != "variation"}  # as hashed before
    expected = hashlib.sha256(orjson.dumps(before, option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]
    assert template_version(plain) == expected
    template = s.templates["tpl_confusion_to_clarity"]
    changed = template.model_copy(update={"variation": {**template.variation, "opening": ["only this one"]}})
    assert template_version(changed) != template_version(template)


def _set_variation(name: str, options) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        data["variation"] = {**{k: v for k, v in data["variation"].items() if k != "opening"}, name: options}
        data["body"] = data["body"].replace("{{opening}}", "{{" + name + "}}")
    return change


@pytest.mark.parametrize(("change", "error", "expected"), [
    (_set_variation("opening", ["fine", "  "]), ScaffoldingError,
     ["variation.opening.1", "a variation option is blank", "Fix: write the option's text"]),
    (_set_variation("opening", []), ScaffoldingError, ["variation.opening", "Fix: add at least"]),
    (_set_variation("opening", "just one"), ScaffoldingError, ["variation.opening", "Fix: write it as a list"]),
    (_set_variation("opening", ["same", "same"]), ScaffoldingError,
     ["the option 'same' appears twice", "Fix: remove the repeated"]),
    (_set_variation("Client-Mood", ["x"]), ScaffoldingError,
     ["variation.Client-Mood", "Fix: keys are lowercase letters"]),
    (_set_variation("topic_name", ["x"]), TemplateError, ["variation.topic_name", "already a built-in", "Fix:"]),
    (lambda d: d["variation"].pop("opening"), TemplateError,
     ["unknown placeholder {{opening}}", "'variation:' (options drawn per sample)"]),
    (lambda d: d.update(body=d["body"].replace("{{opening}}", "the client's own words")), TemplateError,
     ["variation.opening", "declared but neither system_prompt nor body uses {{opening}}", "Fix:"]),
])
def test_bad_template_variation_names_file_key_and_fix(library: Path, change, error, expected) -> None:
    path = _edit(_template(library), change)
    with pytest.raises(error) as err:
        load_scaffolding(library)
    message = str(err.value)
    assert str(path) in message and "tpl_confusion_to_clarity" in message
    for part in expected:
        assert part in message


def test_a_variable_and_a_variation_of_one_name_clash(library: Path) -> None:
    _edit(_template(library), lambda d: d.update(variables={"opening": "hello"}))
    with pytest.raises(TemplateError, match="already a variable under 'variables:'"):
        load_scaffolding(library)


def test_a_topic_dimension_no_template_declares_is_an_error(library: Path) -> None:
    path = library / "training_topics.yaml"
    _edit(path, lambda d: d["training_topics"][0]["variation"].update(situaton=["typo"]))
    with pytest.raises(ScaffoldingError) as err:
        load_scaffolding(library)
    message = str(err.value)
    assert str(path) in message and "'emergency_fund'" in message and "variation.situaton" in message
    assert "Fix: rename it to one of " in message and "situation" in message


def test_the_shipped_library_varies_every_template() -> None:
    s = load_scaffolding(default_library())
    for template in s.templates.values():
        assert {"opening", "situation", "client_mood", "detail"} <= set(template.variation), template.key
        assert all(len(options) >= 3 for options in template.variation.values())
    for topic in s.topics.values():
        assert set(topic.variation) == {"situation", "detail"}, topic.key


def test_a_runs_cell_cache_renders_every_request_as_render_template_does(ws: Workspace) -> None:
    """The runner's CellCache fills each cell's fixed placeholders once: every request of every cell of the library
    is still the one render_template gives, byte for byte, and the same as without the cache."""
    from brightrun.generation.requests import CellCache
    from brightrun.scaffolding import render_template, scaffold_context

    job = create_job(ws, plan_uniform(ws.scaffolding.cells(), 2), provider="scripted", model="scripted-1", seed=5,
                     job_id="j")
    items = [BatchItem.model_validate(r) for r in ws.sql("SELECT * FROM batch_items ORDER BY item_index").to_dicts()]
    cells, s = CellCache(), ws.scaffolding
    for item in items:
        seed = item_seed(job.seed, item.item_index)
        request = build_request(ws, item, seed, 1, None, cells=cells)
        template, topic = s.templates[item.template_key], s.topics[item.topic_key]
        context = scaffold_context(s.consultant, s.personas[item.persona_key], s.arcs[item.arc_key], topic,
                                   request.scaffold.turn_count)
        assert (request.system, request.prompt) == render_template(template, context,
                                                                   draw_variation(template, topic, seed))
        assert request == build_request(ws, item, seed, 1, None)
    assert len(cells.cells) == len(items) // 2


@pytest.mark.parametrize("value", [None, "  ", "the north"])
def test_a_variable_without_a_value_fails_as_render_template_says(ws: Workspace, value: str | None) -> None:
    _edit(_template(ws.scaffolding_dir, "tpl_crisis_to_stabilization"),
          lambda d: d.update(variables={"region": value}, body=d["body"] + "\nThe client lives in {{region}}."))
    ws.reload_scaffolding()
    create_job(ws, plan_uniform(ws.scaffolding.cells(*CELL), 2), provider="scripted", model="scripted-1",
                     seed=7, job_id="j")
    item = BatchItem.model_validate(ws.sql("SELECT * FROM batch_items ORDER BY item_index").to_dicts()[0])
    if value == "the north":
        assert build_request(ws, item, 3, 1, None).prompt.endswith("The client lives in the north.")
        return
    with pytest.raises(TemplateError, match=r"no value for placeholder \{\{region\}\}.*under 'variables:'"):
        build_request(ws, item, 3, 1, None)
