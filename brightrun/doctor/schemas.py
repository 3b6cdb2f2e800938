"""Every output schema BrightRun can send to a model, by a name for test reports, so a test can prove
each is inside the Anthropic subset (brightrun.providers.schema.claude_schema)."""

from __future__ import annotations

from brightrun.doctor.probe import PROBE_SCHEMA
from brightrun.providers.schema import conversation_schema
from brightrun.quality.judge import JUDGE_SCHEMA


def outgoing_schemas() -> dict[str, dict]:
    """The conversation schema at each turn count a template allows, the quality judge's and the doctor
    probe's."""
    schemas = {"conversation": conversation_schema()}
    for n in range(2, 41, 2):
        schemas[f"conversation/{n} turns"] = conversation_schema(n)
    schemas["quality_judge"] = JUDGE_SCHEMA
    schemas["doctor_probe"] = PROBE_SCHEMA
    return schemas
