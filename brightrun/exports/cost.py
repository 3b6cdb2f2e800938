"""The cookbook-style epoch and cost estimate per target model (formats.md §1.2, OpenAI cookbook
"Data preparation and analysis for chat model fine-tuning", cell fb95a7ce):

    n_epochs = 3; if n * 3 < 100: n_epochs = min(25, 100 // n); elif n * 3 > 25000: n_epochs = max(1, 25000 // n)
    billing_tokens = sum(min(MAX_TOKENS_PER_EXAMPLE, tokens of each training example))
    charged tokens = n_epochs * billing_tokens; cost = charged / 1M * USD per 1M training tokens

Only the training split is billed (OpenAI: validation tokens are free). Prices, per-example limits and
default epochs come from training_prices.yaml (source and date in it; a workspace may override it with
<workspace>/training_prices.yaml). Every figure is an estimate: token counts are estimated unless a
tokenizer is available, prices are as recorded, and providers may bill differently.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, Field, ValidationError, computed_field

from brightrun.exports.base import ExportError, Kind
from brightrun.exports.tokens import TokenCounter, billing_tokens, counter_for, counts_label

PRICE_TABLE = Path(__file__).with_name("training_prices.yaml")
_DATED = re.compile(r"-\d{4}-\d{2}-\d{2}")


class Cookbook(BaseModel):
    target_epochs: int = 3
    min_target_examples: int = 100
    max_target_examples: int = 25_000
    min_default_epochs: int = 1
    max_default_epochs: int = 25


class TrainingPrice(BaseModel):
    provider: str
    usd_per_million_training_tokens: float | None = Field(ge=0)
    max_tokens_per_example: int | None = None
    epochs: int | str = "cookbook"
    source: str = ""
    formats: list[str] = Field(default_factory=list,
                               description="the BrightRun export formats this model is fine-tuned from")
    by_default: bool = Field(True, description="priced in every export of its formats; False: only when named "
                                               "(its tokenizer would be run over the whole export for it alone)")


class TrainingPrices(BaseModel):
    recorded: str
    cookbook: Cookbook = Cookbook()
    models: dict[str, TrainingPrice]

    def models_for(self, fmt: str, *, every: bool = False) -> list[str]:
        """The target models that train from export format `fmt` (none for self-hosted stacks) and are priced
        by default (`every`: also those priced only when named)."""
        return [name for name, price in self.models.items() if fmt in price.formats and (every or price.by_default)]

    def get(self, model: str) -> TrainingPrice | None:
        """The entry for a model id, its undated alias ("gpt-4o-mini") or a fine-tuned id ("ft:gpt-4o-...")."""
        if model in self.models:
            return self.models[model]
        base = model.removeprefix("ft:").split(":")[0] if model.startswith("ft:") else model
        for name in self.models:
            if base == name or _DATED.fullmatch(name.removeprefix(base)) or _DATED.fullmatch(base.removeprefix(name)):
                return self.models[name]
        return None


@lru_cache(maxsize=8)
def _load(path: str, mtime: float) -> TrainingPrices:
    try:
        return TrainingPrices.model_validate(yaml.safe_load(Path(path).read_text(encoding="utf-8")))
    except (ValidationError, yaml.YAMLError, AttributeError, OSError) as exc:
        raise ExportError(f"{path}: invalid training price table ({exc}). Fix: follow the layout of "
                          f"{PRICE_TABLE}.") from None


def training_prices(workspace_root: Path | None = None) -> TrainingPrices:
    """The shipped table, overridden model by model by <workspace>/training_prices.yaml if present."""
    table = _load(str(PRICE_TABLE), PRICE_TABLE.stat().st_mtime)
    override = Path(workspace_root) / "training_prices.yaml" if workspace_root else None
    if override and override.exists():
        extra = _load(str(override), override.stat().st_mtime)
        kept = {name: price.model_copy(update={
                    "formats": price.formats or table.models[name].formats,
                    "by_default": price.by_default if "by_default" in price.model_fields_set
                    else table.models[name].by_default}) if name in table.models else price
                for name, price in extra.models.items()}
        return table.model_copy(update={"models": {**table.models, **kept}})
    return table


def token_limit(model: str) -> int | None:
    price = training_prices().get(model)
    return price.max_tokens_per_example if price else None


def default_epochs(n_examples: int, cookbook: Cookbook | None = None) -> int:
    """The cookbook's default number of epochs for n training examples."""
    c = cookbook or Cookbook()
    if n_examples <= 0:
        return 0
    if n_examples * c.target_epochs < c.min_target_examples:
        return min(c.max_default_epochs, c.min_target_examples // n_examples)
    if n_examples * c.target_epochs > c.max_target_examples:
        return max(c.min_default_epochs, c.max_target_examples // n_examples)
    return c.target_epochs


class CostEstimate(BaseModel):
    model: str
    provider: str | None
    examples: int
    epochs: int
    epochs_rule: str = Field(description="'given', 'cookbook' or 'provider default'")
    billing_tokens: int = Field(description="training tokens of one epoch, each example capped at the limit")
    charged_tokens: int
    truncated_examples: int
    max_tokens_per_example: int | None
    usd_per_million_training_tokens: float | None
    cost_usd: float | None = Field(description="None when the price of the model is not known")
    token_method: str
    exact_tokens: bool
    price_source: str
    price_recorded: str
    estimate: bool = True
    note: str = "An estimate: token counts, prices and epochs may differ from what the provider bills."

    @computed_field  # type: ignore[prop-decorator]
    @property
    def token_counts(self) -> str:
        """"exact (tiktoken o200k_base)" or "estimated": how the tokens behind the cost were counted."""
        return counts_label(self.token_method, self.exact_tokens)


def estimate_cost(example_tokens: Sequence[int], model: str, *, epochs: int | None = None,
                  prices: TrainingPrices | None = None, token_method: str = "", exact_tokens: bool = False,
                  max_tokens_per_example: int | None = None) -> CostEstimate:
    """The estimate for one target model from the token count of each training example."""
    prices = prices or training_prices()
    price = prices.get(model)
    limit = max_tokens_per_example or (price.max_tokens_per_example if price else None)
    n = len(example_tokens)
    if epochs is not None:
        n_epochs, rule = epochs, "given"
    elif price is not None and isinstance(price.epochs, int):
        n_epochs, rule = price.epochs, "provider default"
    else:
        n_epochs, rule = default_epochs(n, prices.cookbook), "cookbook"
    billed = sum(min(limit, t) if limit else t for t in example_tokens)
    charged = n_epochs * billed
    rate = price.usd_per_million_training_tokens if price else None
    return CostEstimate(
        model=model, provider=price.provider if price else None, examples=n, epochs=n_epochs, epochs_rule=rule,
        billing_tokens=billed, charged_tokens=charged,
        truncated_examples=sum(t > limit for t in example_tokens) if limit else 0, max_tokens_per_example=limit,
        usd_per_million_training_tokens=rate, cost_usd=round(charged * rate / 1_000_000, 6) if rate is not None else None,
        token_method=token_method, exact_tokens=exact_tokens, price_source=price.source if price else
        f"{model!r} is not in {PRICE_TABLE.name}: add it there to get a cost", price_recorded=prices.recorded)


def estimate_for_records(records: Iterable[dict], model: str, *, kind: Kind = "sft",
                         counter: TokenCounter | None = None, epochs: int | None = None,
                         prices: TrainingPrices | None = None, split: str = "train") -> CostEstimate:
    """The estimate for canonical records: the tokens of each record of the training split."""
    counter = counter or counter_for(model)
    counter.settle()
    tokens = [billing_tokens(r, kind, counter) for r in records if r["split"] == split]
    return estimate_cost(tokens, model, epochs=epochs, prices=prices, token_method=counter.name,
                         exact_tokens=counter.exact)


def estimate_all(records: Iterable[dict], models: Iterable[str] | None = None, *, kind: Kind = "sft",
                 counter: TokenCounter | None = None, prices: TrainingPrices | None = None,
                 fmt: str | None = None, counter_of: Callable[[str], TokenCounter] | None = None
                 ) -> list[CostEstimate]:
    """One estimate per target model: `models`, else the models that train export format `fmt` and are priced
    by default (none when no priced model does: self-hosted stacks, KTO), else every model in the price table. Each model's
    tokens are counted by `counter`, else `counter_of(model)`, else counter_for(model): exact for OpenAI
    models, the estimate for the others."""
    prices = prices or training_prices()
    if models is None and fmt is not None:
        models = prices.models_for(fmt)
    train = [r for r in records if r["split"] == "train"]
    counted: dict[str, list[int]] = {}  # the tokens of each record, counted once per tokenizer
    out = []
    for model in prices.models if models is None else models:
        use = counter or (counter_of or counter_for)(model)
        if use.name not in counted:
            use.settle()
            counted[use.name] = [billing_tokens(r, kind, use) for r in train]
        out.append(estimate_cost(counted[use.name], model, prices=prices, token_method=use.name,
                                 exact_tokens=use.exact))
    return out
