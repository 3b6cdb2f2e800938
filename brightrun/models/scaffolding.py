"""Scaffolding: the human-edited YAML library that generation draws on."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic_core import PydanticCustomError

Key = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,63}$")]
"""A stable identifier: lowercase letters, digits and underscores, starting with a letter."""

ArcTier = Literal["template", "edge_case"]
TemplateTier = Literal["template", "scenario", "edge_case"]
Complexity = Literal["basic", "intermediate", "advanced"]


def _not_blank(option: str) -> str:
    if not option.strip():
        raise PydanticCustomError("blank_option", "a variation option is blank")
    return option


def _distinct(options: list[str]) -> list[str]:
    seen: set[str] = set()
    for option in options:
        if option in seen:
            raise PydanticCustomError("duplicate_option", "the option '{option}' appears twice",
                                      {"option": option})
        seen.add(option)
    return options


Options = Annotated[list[Annotated[str, AfterValidator(_not_blank)]], Field(min_length=1),
                    AfterValidator(_distinct)]
Variation = dict[Key, Options]
"""Declared variation: named dimensions (placeholder-safe keys), each a non-empty list of distinct,
non-blank options. One option per dimension is drawn for each sample (brightrun/scaffolding/variation.py)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConsultantProfile(_Strict):
    """The static advisor persona of the vertical."""

    key: Key
    name: str = Field(min_length=1)
    title: str = Field(min_length=1)
    vertical: str = Field(min_length=1)
    expertise: list[str] = Field(min_length=1)
    communication_style: str = Field(min_length=1)
    principles: list[str] = Field(min_length=1)


class Persona(_Strict):
    """A client the advisor talks to."""

    key: Key
    name: str = Field(min_length=1, description='e.g. "David Chen - The Pragmatic Optimist"')
    archetype: Key
    background: str = Field(min_length=1)
    traits: list[str] = Field(min_length=1)
    communication_style: str = Field(min_length=1)
    concerns: list[str] = Field(min_length=1)


class ArcStage(_Strict):
    """One step of an emotional arc."""

    emotion: str = Field(min_length=1)
    valence: float = Field(ge=-1.0, le=1.0, description="negative to positive feeling")
    intensity: float = Field(ge=0.0, le=1.0)
    description: str = Field(min_length=1)


class EmotionalArc(_Strict):
    """The emotional trajectory a client follows through a conversation."""

    key: Key
    name: str = Field(min_length=1, description='e.g. "Confusion -> Clarity"')
    tier: ArcTier
    start_emotion: str = Field(min_length=1)
    end_emotion: str = Field(min_length=1)
    description: str = Field(min_length=1)
    stages: list[ArcStage] = Field(min_length=2)


class TrainingTopic(_Strict):
    """A financial-planning subject a conversation is about."""

    key: Key
    name: str = Field(min_length=1)
    description: str = Field(min_length=1)
    complexity: Complexity
    key_points: list[str] = Field(min_length=3, description="advice an expert would give")
    client_questions: list[str] = Field(min_length=3, description="questions a client would ask")
    variation: Variation = Field(
        default_factory=dict,
        description="more options for variation dimensions a template declares: for conversations about "
                    "this topic they are drawn along with the template's",
    )


class ModelSettings(_Strict):
    model: str = "claude-sonnet-5-5"
    temperature: float = Field(default=0.8, ge=0.0, le=1.0)
    max_tokens: int = Field(default=4096, ge=256, le=64000)


class TurnRange(_Strict):
    min: int = Field(default=6, ge=2, le=40)
    max: int = Field(default=12, ge=2, le=40)


class PromptTemplate(_Strict):
    """A prompt with {{placeholder}} fields; its version is a hash of its content."""

    key: Key
    name: str = Field(min_length=1)
    tier: TemplateTier
    arc_type: Key = Field(description="the emotional arc key this template is written for")
    description: str = Field(min_length=1)
    system_prompt: str = Field(min_length=1)
    body: str = Field(min_length=1)
    variables: dict[Key, str | None] = Field(
        default_factory=dict,
        description="extra placeholders this template declares, with a default (null: must be given)",
    )
    variation: Variation = Field(
        default_factory=dict,
        description="dimensions drawn per sample (one option each) and rendered through {{name}}",
    )
    turns: TurnRange = TurnRange()
    model_settings: ModelSettings = ModelSettings()
    output_schema: Literal["conversation"] = "conversation"
