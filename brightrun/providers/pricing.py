"""The price table: what a call costs, per model, with the batch discount."""

from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, Field, ValidationError

from brightrun.errors import BrightRunError

DEFAULT_TABLE = Path(__file__).with_name("prices.yaml")


class Price(BaseModel):
    input: float = Field(ge=0, description="USD per million input tokens")
    output: float = Field(ge=0, description="USD per million output tokens")
    batch_discount: float = Field(default=0.0, ge=0, le=1)


class PriceTable(BaseModel):
    models: dict[str, Price]

    def price(self, model: str) -> Price | None:
        if model in self.models:
            return self.models[model]
        # Dated ids ("claude-haiku-4-5-20251001") cost what their alias costs.
        for name in sorted(self.models, key=len, reverse=True):
            if model.startswith(name + "-"):
                return self.models[name]
        return None

    def cost(self, model: str, input_tokens: int, output_tokens: int, *, batch: bool = False) -> float:
        price = self.price(model)
        if price is None:
            return 0.0
        factor = (1 - price.batch_discount) if batch else 1.0
        return (input_tokens * price.input + output_tokens * price.output) * factor / 1_000_000

    def knows(self, model: str) -> bool:
        return self.price(model) is not None


@lru_cache(maxsize=8)
def _load(path: str, mtime: float) -> PriceTable:
    try:
        return PriceTable.model_validate(yaml.safe_load(Path(path).read_text(encoding="utf-8")))
    except (ValidationError, yaml.YAMLError, AttributeError) as exc:
        raise BrightRunError(f"{path}: invalid price table ({exc}). Fix: follow the layout of "
                             f"{DEFAULT_TABLE}.") from None


_shipped_stamp = [float("-inf"), 0.0]  # when the shipped table's file was last looked at, and its mtime


def _shipped_mtime() -> float:
    """The shipped table's mtime, looked at again at most once a second (as the scaffolding is): a run prices
    every answer, and the file changes only with the package."""
    now = time.monotonic()
    if now - _shipped_stamp[0] >= 1.0:
        _shipped_stamp[:] = [now, DEFAULT_TABLE.stat().st_mtime]
    return _shipped_stamp[1]


def price_table(workspace_root: Path | None = None) -> PriceTable:
    """The shipped table, overridden model by model by `<workspace>/prices.yaml` if present."""
    table = _load(str(DEFAULT_TABLE), _shipped_mtime())
    override = workspace_root / "prices.yaml" if workspace_root else None
    if override and override.exists():
        extra = _load(str(override), override.stat().st_mtime)
        return PriceTable(models={**table.models, **extra.models})
    return table
