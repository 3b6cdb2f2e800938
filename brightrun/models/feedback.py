"""Feedback: human judgements of generated turns and of imported app calls. Append-only; the latest
judgement per (target, reviewer) wins, every earlier one is kept."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

TargetType = Literal["training_pair", "conversation", "llm_call"]


class Feedback(BaseModel):
    model_config = ConfigDict(extra="forbid")

    feedback_id: str = Field(description="unique per judgement; imports derive it from the source row, so a "
                                         "re-import writes the same ids and adds nothing")
    target_type: TargetType
    target_id: str = Field(description="pair_id, conversation_id or call_id")
    conversation_id: str | None = Field(default=None, description="the conversation of a training pair")
    reviewer: str = Field(description="who judged: a reviewer's name, or the app user of an imported log")
    helpful: bool | None = Field(default=None, description="thumbs up (true) or down (false); None: not given")
    rating: int | None = Field(default=None, ge=1, le=5)
    comment: str | None = None
    edited_response: str | None = Field(default=None, description="the reviewer's better response; the "
                                                                  "original stays untouched beside it")
    source: str = Field(default="review", description="'review' (the app or the API) or 'import:<import_id>'")
    created_at: datetime

    @model_validator(mode="after")
    def _says_something(self) -> Feedback:
        if self.helpful is None and self.rating is None and not self.comment and not self.edited_response:
            raise ValueError("feedback must carry a thumbs, a rating, a comment or an edit")
        return self
