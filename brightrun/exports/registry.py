"""FORMATS: every export format by name, with its record kind, writer, validator and consumer."""

from __future__ import annotations

from brightrun.exports import axolotl, bedrock, hf, llama_factory, openai_ft, sharegpt, trl, vertex
from brightrun.exports.base import FormatSpec

_SPECS = [
    FormatSpec("openai_sft", "sft", openai_ft.write_openai_sft, openai_ft.validate_openai_sft,
               "OpenAI chat fine-tuning JSONL (messages, per-turn weight where some turns are context only)",
               "OpenAI fine-tuning", 65_536),
    FormatSpec("openai_dpo", "preference", openai_ft.write_openai_dpo, openai_ft.validate_openai_dpo,
               "OpenAI preference fine-tuning JSONL (input, preferred_output, non_preferred_output)",
               "OpenAI fine-tuning (DPO)", None),
    FormatSpec("bedrock", "sft", bedrock.write_bedrock, bedrock.validate_bedrock,
               "Amazon Bedrock fine-tuning JSONL in the Converse format (schemaVersion bedrock-conversation-2024, "
               "system and content as text blocks)", "Amazon Bedrock", None),
    FormatSpec("bedrock_haiku", "sft", bedrock.write_bedrock_haiku, bedrock.validate_bedrock_haiku,
               "Claude 3 Haiku on Amazon Bedrock JSONL (top-level system string, user/assistant messages)",
               "Amazon Bedrock (Claude 3 Haiku)", None),
    FormatSpec("trl_sft", "sft", trl.write_trl_sft, trl.validate_trl_sft,
               "TRL SFTTrainer conversational dataset (messages)", "Hugging Face TRL", trl.MAX_LENGTH),
    FormatSpec("trl_dpo", "preference", trl.write_trl_dpo, trl.validate_trl_dpo,
               "TRL DPOTrainer conversational preference dataset (prompt, chosen, rejected)", "Hugging Face TRL",
               trl.MAX_LENGTH),
    FormatSpec("trl_kto", "kto", trl.write_trl_kto, trl.validate_trl_kto,
               "TRL KTOTrainer unpaired preference dataset (prompt, completion, label)", "Hugging Face TRL",
               trl.MAX_LENGTH),
    FormatSpec("axolotl", "sft", axolotl.write_axolotl, axolotl.validate_axolotl,
               "Axolotl chat_template dataset (messages, per-message train flag) with axolotl.yaml",
               "Axolotl", axolotl.SEQUENCE_LEN),
    FormatSpec("sharegpt", "sft", sharegpt.write_sharegpt, sharegpt.validate_sharegpt,
               "ShareGPT conversations (from/value, human/gpt)", "LLaMA-Factory, Axolotl", sharegpt.CUTOFF_LEN),
    FormatSpec("alpaca", "sft", llama_factory.write_alpaca, llama_factory.validate_alpaca,
               "Alpaca records (instruction, input, output, system, history) with dataset_info.json",
               "LLaMA-Factory, Axolotl",
               sharegpt.CUTOFF_LEN),
    FormatSpec("llama_factory", "sft", llama_factory.write_llama_factory, llama_factory.validate_llama_factory,
               "LLaMA-Factory sharegpt dataset with dataset_info.json", "LLaMA-Factory", sharegpt.CUTOFF_LEN),
    FormatSpec("llama_factory_preference", "preference", llama_factory.write_llama_factory_preference,
               llama_factory.validate_llama_factory_preference,
               "LLaMA-Factory ranking (preference) dataset with dataset_info.json", "LLaMA-Factory",
               sharegpt.CUTOFF_LEN),
    FormatSpec("llama_factory_kto", "kto", llama_factory.write_llama_factory_kto,
               llama_factory.validate_llama_factory_kto, "LLaMA-Factory KTO dataset (kto_tag) with dataset_info.json",
               "LLaMA-Factory", sharegpt.CUTOFF_LEN),
    FormatSpec("hf_parquet", "sft", hf.write_hf_parquet, hf.validate_hf_parquet,
               "Hugging Face datasets Parquet shards with a dataset card naming the splits", "Hugging Face datasets",
               None),
    FormatSpec("vertex", "sft", vertex.write_vertex, vertex.validate_vertex,
               "Vertex AI Gemini supervised tuning JSONL (systemInstruction, contents with user/model parts)",
               "Google Vertex AI", 131_072),
]

FORMATS: dict[str, FormatSpec] = {spec.name: spec for spec in _SPECS}
