"""The scaffolding as tables, for the `personas`, `emotional_arcs`, `training_topics` and
`prompt_templates` views."""

from __future__ import annotations

import orjson
import polars as pl

from brightrun.scaffolding.library import Scaffolding


def template_rows(scaffolding: Scaffolding) -> list[dict]:
    rows = []
    for key, t in scaffolding.templates.items():
        rows.append({
            "template_key": key, "version": scaffolding.versions[key], "name": t.name, "tier": t.tier,
            "arc_type": t.arc_type, "description": t.description, "system_prompt": t.system_prompt,
            "body": t.body, "model": t.model_settings.model, "temperature": t.model_settings.temperature,
            "max_tokens": t.model_settings.max_tokens, "turns_min": t.turns.min, "turns_max": t.turns.max,
            "definition": orjson.dumps(t.model_dump(mode="json")).decode(),
        })
    return rows


def scaffolding_frames(scaffolding: Scaffolding) -> dict[str, pl.DataFrame]:
    personas = pl.DataFrame([
        {"persona_key": p.key, "name": p.name, "archetype": p.archetype, "background": p.background,
         "traits": list(p.traits), "communication_style": p.communication_style}
        for p in scaffolding.personas.values()
    ])
    arcs = pl.DataFrame([
        {"arc_key": a.key, "name": a.name, "tier": a.tier, "start_emotion": a.start_emotion,
         "end_emotion": a.end_emotion, "description": a.description, "stage_count": len(a.stages),
         "stages": [s.emotion for s in a.stages]}
        for a in scaffolding.arcs.values()
    ])
    topics = pl.DataFrame([
        {"topic_key": t.key, "name": t.name, "description": t.description, "complexity": t.complexity}
        for t in scaffolding.topics.values()
    ])
    templates = pl.DataFrame(template_rows(scaffolding)).drop("definition")
    return {"personas": personas, "arcs": arcs, "topics": topics, "templates": templates}
