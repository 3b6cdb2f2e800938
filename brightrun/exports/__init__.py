"""Exports of training data to every major fine-tuning stack, each checked by its consumer's rules.

Inputs are canonical records (records.py): SFT conversations
with optional per-turn weights, preference pairs, and unpaired (KTO) examples. Each format has a writer,
`write_<format>(records, folder, *, split_names=None) -> list[Path]`, which writes data/<split>.jsonl (or
Parquet shards), a README.md dataset card naming the splits, manifest.json and the format's own files, and a
validator, `validate_<format>(paths) -> ValidationResult`, which applies every check its consumer applies
and names the file, line, record and fix of each problem. FORMATS lists them all. tokens.py counts tokens
(exact with a tokenizer, else a documented estimate); cost.py estimates epochs and cost per target model.

    from brightrun.exports import FORMATS, sft_records_from_enriched
    records = [sft_records_from_enriched(enriched_conversation(ws, cid)) for cid in ids]
    spec = FORMATS["openai_sft"]
    result = spec.validator(spec.writer(records, "exports/openai"))

May import: datasets, errors, quality.
"""

from brightrun.exports.axolotl import validate_axolotl, write_axolotl
from brightrun.exports.base import ExportError, FormatSpec, Problem, ValidationResult
from brightrun.exports.bedrock import (
    validate_bedrock,
    validate_bedrock_haiku,
    write_bedrock,
    write_bedrock_haiku,
)
from brightrun.exports.cost import (
    CostEstimate,
    default_epochs,
    estimate_all,
    estimate_cost,
    estimate_for_records,
    training_prices,
)
from brightrun.exports.hf import validate_hf_parquet, write_hf_parquet
from brightrun.exports.llama_factory import (
    validate_alpaca,
    validate_llama_factory,
    validate_llama_factory_kto,
    validate_llama_factory_preference,
    write_alpaca,
    write_llama_factory,
    write_llama_factory_kto,
    write_llama_factory_preference,
)
from brightrun.exports.openai_ft import (
    validate_openai_dpo,
    validate_openai_sft,
    write_openai_dpo,
    write_openai_sft,
)
from brightrun.exports.records import (
    check_records,
    kto_records_from_preference,
    kto_records_from_thumbs,
    preference_records_from_dataset,
    sft_records_from_dataset,
    sft_records_from_enriched,
)
from brightrun.exports.registry import FORMATS
from brightrun.exports.sharegpt import validate_sharegpt, write_sharegpt
from brightrun.exports.tokens import (
    ESTIMATE,
    SplitStats,
    TokenCounter,
    counter_for,
    estimate_tokens,
    message_tokens,
    split_statistics,
)
from brightrun.exports.trl import (
    validate_trl_dpo,
    validate_trl_kto,
    validate_trl_sft,
    write_trl_dpo,
    write_trl_kto,
    write_trl_sft,
)
from brightrun.exports.vertex import validate_vertex, write_vertex

__all__ = [
    "ESTIMATE", "FORMATS", "CostEstimate", "ExportError", "FormatSpec", "Problem", "SplitStats", "TokenCounter",
    "ValidationResult", "check_records", "counter_for", "default_epochs", "estimate_all", "estimate_cost",
    "estimate_for_records", "estimate_tokens", "kto_records_from_preference", "kto_records_from_thumbs",
    "message_tokens", "preference_records_from_dataset", "sft_records_from_dataset", "sft_records_from_enriched",
    "split_statistics", "training_prices",
    "validate_alpaca", "validate_axolotl", "validate_bedrock", "validate_bedrock_haiku", "validate_hf_parquet", "validate_llama_factory",
    "validate_llama_factory_kto", "validate_llama_factory_preference", "validate_openai_dpo", "validate_openai_sft",
    "validate_sharegpt", "validate_trl_dpo", "validate_trl_kto", "validate_trl_sft", "validate_vertex",
    "write_alpaca", "write_axolotl", "write_bedrock", "write_bedrock_haiku", "write_hf_parquet", "write_llama_factory",
    "write_llama_factory_kto", "write_llama_factory_preference", "write_openai_dpo", "write_openai_sft",
    "write_sharegpt", "write_trl_dpo", "write_trl_kto", "write_trl_sft", "write_vertex",
]
