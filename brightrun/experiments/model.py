"""Experiments: a control and test variants (template versions or model settings) compared on a success
metric with guardrails, one conversation the unit of randomisation and analysis."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from brightrun.errors import ID_RULE, check_name, id_pattern

Status = Literal["draft", "running", "paused", "completed"]
_ID = id_pattern(60)
_ARM = id_pattern(30)


@dataclass(frozen=True)
class MetricDef:
    kind: Literal["rate", "rating", "continuous"]
    higher_is_better: bool
    description: str


METRICS: dict[str, MetricDef] = {
    "thumbs_up": MetricDef("rate", True, "a conversation counts when over half its judged advisor turns got a thumbs up"),
    "mean_rating": MetricDef("rating", True, "the mean 1-5 rating of the conversation's judged turns"),
    "quality_score": MetricDef("continuous", True, "the heuristic quality score (0-10) of the conversation"),
    "edited": MetricDef("rate", False, "a conversation counts when a reviewer edited one of its turns"),
    "response_words": MetricDef("continuous", False, "mean words per advisor turn (longer is worse)"),
    "failed": MetricDef("rate", False, "a planned conversation counts when its generation failed"),
    "cost_usd": MetricDef("continuous", False, "what the conversation's generation cost"),
}


class Variant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="the arm's name, e.g. control or warm-prompt")
    template_version: str | None = Field(default=None, description="a recorded version of the template "
                                                                  "(default: the current one)")
    model: str | None = Field(default=None, description="override the model")
    temperature: float | None = Field(default=None, ge=0, le=1)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value, "arm name", _ARM, f"1 to 30 {ID_RULE}", ValueError)


class Experiment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    experiment_id: str
    name: str
    hypothesis: str = ""
    template_key: str = Field(description="the template whose variants are compared")
    control: Variant
    variants: list[Variant] = Field(min_length=1)
    success_metric: str = "thumbs_up"
    guardrails: list[str] = Field(default_factory=lambda: ["failed"])
    unit: Literal["conversation"] = "conversation"
    personas: list[str] = Field(default_factory=list, description="cells: default every persona")
    topics: list[str] = Field(default_factory=list, description="cells: default every topic")
    per_arm: int = Field(default=1, ge=1, description="conversations per arm in each cell")
    seed: int = 0
    status: Status = "draft"
    created_at: datetime
    updated_at: datetime

    @field_validator("experiment_id")
    @classmethod
    def _id(cls, value: str) -> str:
        return check_name(value, "experiment id", _ID, f"1 to 60 {ID_RULE}", ValueError)

    @model_validator(mode="after")
    def _consistent(self) -> Experiment:
        names = [self.control.name, *(v.name for v in self.variants)]
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must differ (got {', '.join(names)})")
        for metric in [self.success_metric, *self.guardrails]:
            if metric not in METRICS:
                raise ValueError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
        if self.success_metric in self.guardrails:
            raise ValueError("the success metric cannot also be a guardrail")
        return self

    @property
    def arms(self) -> list[Variant]:
        return [self.control, *self.variants]

    def job_id(self, arm: str) -> str:
        return f"exp-{self.experiment_id}-{arm}"
