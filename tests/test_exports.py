"""Exports (brightrun.exports): each format's record against its consumer's documented shape (docs/formats.md),
each validator against planted errors, loading with `datasets`, token statistics and cost estimates."""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from brightrun.datasets import DatasetSpec, build_dataset, read_examples, split_of
from brightrun.enrichment.pipeline import enriched_conversation
from brightrun.exports import (
    ESTIMATE,
    FORMATS,
    ExportError,
    TokenCounter,
    check_records,
    counter_for,
    default_epochs,
    estimate_all,
    estimate_cost,
    estimate_for_records,
    estimate_tokens,
    kto_records_from_preference,
    kto_records_from_thumbs,
    message_tokens,
    preference_records_from_dataset,
    sft_records_from_dataset,
    sft_records_from_enriched,
    split_statistics,
    training_prices,
    validate_hf_parquet,
    validate_llama_factory,
    validate_openai_sft,
    validate_vertex,
    write_alpaca,
    write_bedrock_haiku,
    write_hf_parquet,
    write_openai_sft,
    write_trl_sft,
    write_vertex,
)
from brightrun.exports.files import hf_split_of
from brightrun.exports.tokens import encoding_for_model, quantile
from brightrun.workspace import Workspace

# -- records --------------------------------------------------------------------------------------------

WORDS = ("budget savings mortgage rate income expense pension account transfer balance fund goal plan year month "
         "family house car school travel health insurance tax return bond stock index cash debt card loan rent "
         "salary bonus gift estate will trust child parent retire early late steady risk safe growth yield fee "
         "broker advisor review quarter spring autumn winter summer market").split()


def _sentence(rng: random.Random, n: int = 14) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def _msg(role: str, content: str, **extra) -> dict:
    return {"role": role, "content": content, **extra}


MARV = [_msg("system", "Marv is a factual chatbot that is also sarcastic."),
        _msg("user", "What's the capital of France?"), _msg("assistant", "Paris", weight=0),
        _msg("user", "Can you be more sarcastic?"),
        _msg("assistant", "Paris, as if everyone doesn't know that already.", weight=1)]


def sft_set(first: list[dict] | None = None, n_train: int = 12, n_val: int = 3, seed: int = 1) -> list[dict]:
    """A reference record (line 1 of train) and distinct filler records: n_train in train, n_val in validation."""
    rng = random.Random(seed)
    records = [{"id": "ref", "split": "train", "messages": first or MARV, "metadata": {"source": "formats.md"}}]
    for i in range(1, n_train + n_val):
        records.append({"id": f"r{i:03d}", "split": "train" if i < n_train else "validation", "metadata": {},
                        "messages": [_msg("system", "You are a careful planner."), _msg("user", _sentence(rng)),
                                     _msg("assistant", _sentence(rng))]})
    return records


SKY = {"prompt": [_msg("user", "What color is the sky?")], "chosen": "It is blue.", "rejected": "It is green."}


def pref_set(first: dict | None = None, n_train: int = 12, n_val: int = 3, seed: int = 2) -> list[dict]:
    rng = random.Random(seed)
    records = [{"id": "ref", "split": "train", **(first or SKY), "metadata": {}}]
    for i in range(1, n_train + n_val):
        records.append({"id": f"p{i:03d}", "split": "train" if i < n_train else "validation", "metadata": {},
                        "prompt": [_msg("system", "You are a careful planner."), _msg("user", _sentence(rng))],
                        "chosen": _sentence(rng), "rejected": _sentence(rng)})
    return records


def records_for(kind: str) -> list[dict]:
    return {"sft": sft_set(), "preference": pref_set(), "kto": kto_records_from_preference(pref_set())}[kind]


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def train_file(paths: list[Path]) -> Path:
    return next(p for p in paths if p.name.startswith("train"))


def card_splits(folder: Path) -> dict[str, str]:
    meta = yaml.safe_load((folder / "README.md").read_text().split("---")[1])
    (config,) = meta["configs"]
    assert config["config_name"] == "default"
    return {d["split"]: d["path"] for d in config["data_files"]}


# -- each format's record against the reference ------------------------------------------------------------


def test_openai_sft_record_is_the_reference_example(tmp_path: Path) -> None:
    paths = write_openai_sft(sft_set(), tmp_path / "o")
    assert [p.relative_to(tmp_path / "o").as_posix() for p in paths] == [
        "data/train.jsonl", "data/validation.jsonl", "README.md"]
    reference = json.loads('{"messages": [{"role": "system", "content": "Marv is a factual chatbot that is also sarcastic."}, {"role": "user", "content": "What\'s the capital of France?"}, {"role": "assistant", "content": "Paris", "weight": 0}, {"role": "user", "content": "Can you be more sarcastic?"}, {"role": "assistant", "content": "Paris, as if everyone doesn\'t know that already.", "weight": 1}]}')  # noqa: E501
    lines = read_lines(paths[0])
    assert lines[0] == reference
    assert lines[1] == {"messages": [{"role": m["role"], "content": m["content"]} for m in sft_set()[1]["messages"]]}
    assert "weight" not in json.dumps(lines[1])  # weights only where some turn is context only
    assert card_splits(tmp_path / "o") == {"train": "data/train.jsonl", "validation": "data/validation.jsonl"}
    result = validate_openai_sft(paths)
    assert result.ok and not result.errors, result.summary()
    assert result.rules("warnings") == {"few_examples"}  # 12 examples; the guide suggests starting with 50
    assert result.stats["splits"]["train"]["examples"] == 12


def test_openai_dpo_record_matches_the_reference(tmp_path: Path) -> None:
    first = {"prompt": [_msg("user", "Hello, can you tell me how cold San Francisco is today?")],
             "chosen": "Today in San Francisco, it is not quite cold as expected. Morning clouds will give away to "
                       "sunshine, …", "rejected": "It is not particularly cold in San Francisco today."}
    paths = FORMATS["openai_dpo"].writer(pref_set(first), tmp_path / "d")
    line = read_lines(paths[0])[0]
    assert set(line) == {"input", "preferred_output", "non_preferred_output"}
    assert line["input"] == {"messages": [{"role": "user", "content": first["prompt"][0]["content"]}]}
    assert line["preferred_output"] == [{"role": "assistant", "content": first["chosen"]}]  # arrays of one message
    assert line["non_preferred_output"] == [{"role": "assistant", "content": first["rejected"]}]
    assert FORMATS["openai_dpo"].validator(paths).errors == []


def test_bedrock_record_matches_the_reference(tmp_path: Path) -> None:
    answer = '{\n  "answer": {\n    "squareRoot": 12, ...}\n}'
    first = [_msg("system", "JSON Mode: Enabled"), _msg("user", "What's the square root of 144?"),
             _msg("assistant", answer, weight=1)]
    paths = write_bedrock_haiku(sft_set(first), tmp_path / "b")
    assert read_lines(paths[0])[0] == {"system": "JSON Mode: Enabled", "messages": [
        {"role": "user", "content": "What's the square root of 144?"}, {"role": "assistant", "content": answer}]}
    marv = read_lines(write_bedrock_haiku(sft_set(), tmp_path / "m")[0])[0]
    assert marv["system"] == MARV[0]["content"] and [m["role"] for m in marv["messages"]] == [
        "user", "assistant", "user", "assistant"]  # weights cannot be expressed and are dropped
    assert FORMATS["bedrock_haiku"].validator(paths).errors == []


def test_bedrock_default_is_the_converse_format(tmp_path: Path) -> None:
    """AWS's example record of the Converse fine-tuning format, written and accepted; the Haiku shape is not."""
    system = ("A chat between a curious User and an artificial intelligence Bot. The Bot gives helpful, detailed, "
              "and polite answers to the User's questions.")
    answer = "The sky is blue because molecules in the air scatter blue light from the Sun more than other colors."
    first = [_msg("system", system), _msg("user", "why is the sky blue"), _msg("assistant", answer)]
    paths = FORMATS["bedrock"].writer(sft_set(first), tmp_path / "c")
    assert read_lines(paths[0])[0] == {
        "schemaVersion": "bedrock-conversation-2024", "system": [{"text": system}],
        "messages": [{"role": "user", "content": [{"text": "why is the sky blue"}]},
                     {"role": "assistant", "content": [{"text": answer}]}]}
    assert FORMATS["bedrock"].validator(paths).errors == []
    haiku = FORMATS["bedrock_haiku"].writer(sft_set(first), tmp_path / "h")
    refused = FORMATS["bedrock"].validator(haiku)
    assert {"schema_version", "content_blocks"} <= refused.rules("errors")


SKY_SFT = [_msg("user", "What color is the sky?"), _msg("assistant", "It is blue.")]


def test_trl_records_match_the_reference_types(tmp_path: Path) -> None:
    lm = read_lines(write_trl_sft(sft_set(SKY_SFT), tmp_path / "lm")[0])[0]
    assert lm == {"messages": [{"role": "user", "content": "What color is the sky?"},
                               {"role": "assistant", "content": "It is blue."}]}
    pc = read_lines(write_trl_sft(sft_set(SKY_SFT), tmp_path / "pc", style="prompt_completion")[0])[0]
    assert pc == {"prompt": [{"role": "user", "content": "What color is the sky?"}],
                  "completion": [{"role": "assistant", "content": "It is blue."}]}
    dpo = read_lines(FORMATS["trl_dpo"].writer(pref_set(), tmp_path / "dpo")[0])[0]
    assert dpo == {"prompt": [{"role": "user", "content": "What color is the sky?"}],
                   "chosen": [{"role": "assistant", "content": "It is blue."}],
                   "rejected": [{"role": "assistant", "content": "It is green."}]}
    kto_paths = FORMATS["trl_kto"].writer(kto_records_from_preference(pref_set()), tmp_path / "kto")
    kto = read_lines(kto_paths[0])[:2]
    assert kto == [{"prompt": [{"role": "user", "content": "What color is the sky?"}],
                    "completion": [{"role": "assistant", "content": "It is blue."}], "label": True},
                   {"prompt": [{"role": "user", "content": "What color is the sky?"}],
                    "completion": [{"role": "assistant", "content": "It is green."}], "label": False}]
    for name, folder in (("trl_sft", "lm"), ("trl_sft", "pc"), ("trl_dpo", "dpo"), ("trl_kto", "kto")):
        assert FORMATS[name].validator(tmp_path / folder).errors == []


def test_axolotl_record_and_config(tmp_path: Path) -> None:
    paths = FORMATS["axolotl"].writer(sft_set(), tmp_path / "a")
    assert read_lines(paths[0])[0] == {"messages": [
        {"role": "system", "content": MARV[0]["content"], "train": False},
        {"role": "user", "content": MARV[1]["content"], "train": False},
        {"role": "assistant", "content": "Paris", "train": False},
        {"role": "user", "content": MARV[3]["content"], "train": False},
        {"role": "assistant", "content": MARV[4]["content"], "train": True}]}
    config = yaml.safe_load((tmp_path / "a" / "axolotl.yaml").read_text())
    assert config["datasets"] == [{"path": "data/train.jsonl", "ds_type": "json", "type": "chat_template",
                                   "field_messages": "messages",
                                   "message_property_mappings": {"role": "role", "content": "content"},
                                   "roles_to_train": ["assistant"], "message_field_training": "train"}]
    assert config["test_datasets"][0]["path"] == "data/validation.jsonl"
    result = FORMATS["axolotl"].validator(paths)
    assert result.errors == [] and result.rules("warnings") <= {"token_limit"}


@pytest.mark.parametrize("fmt", ["axolotl", "sharegpt"])
def test_axolotl_evaluates_on_validation_only_never_on_test(tmp_path: Path, fmt: str) -> None:
    records = sft_set(n_train=12, n_val=6)
    for r in records[-3:]:
        r["split"] = "test"
    FORMATS[fmt].writer(records, tmp_path / fmt)
    text = (tmp_path / fmt / "axolotl.yaml").read_text()
    config = yaml.safe_load(text)
    assert [d["path"] for d in config["datasets"]] == ["data/train.jsonl"]
    assert [d["path"] for d in config["test_datasets"]] == ["data/validation.jsonl"]
    assert "data/test.jsonl" not in yaml.safe_dump(config)  # only named in a comment, for the final evaluation
    assert "NOT listed here" in text and "data/test.jsonl" in text


def test_sharegpt_and_alpaca_records(tmp_path: Path) -> None:
    paths = FORMATS["sharegpt"].writer(sft_set(), tmp_path / "s")
    assert read_lines(paths[0])[0] == {"conversations": [
        {"from": "system", "value": MARV[0]["content"]}, {"from": "human", "value": MARV[1]["content"]},
        {"from": "gpt", "value": "Paris"}, {"from": "human", "value": MARV[3]["content"]},
        {"from": "gpt", "value": MARV[4]["content"]}]}
    config = yaml.safe_load((tmp_path / "s" / "axolotl.yaml").read_text())
    assert config["datasets"][0]["field_messages"] == "conversations"
    assert config["datasets"][0]["message_property_mappings"] == {"role": "from", "content": "value"}
    assert FORMATS["sharegpt"].validator(paths).errors == []

    first = [_msg("system", "system prompt (optional)"), _msg("user", "q1"), _msg("assistant", "a1"),
             _msg("user", "user instruction (required)"), _msg("assistant", "model response (required)")]
    alpaca = write_alpaca(sft_set(first), tmp_path / "al")
    assert read_lines(alpaca[0])[0] == {"instruction": "user instruction (required)", "input": "",
                                        "output": "model response (required)", "system": "system prompt (optional)",
                                        "history": [["q1", "a1"]]}
    assert set(read_lines(alpaca[0])[1]) == {"instruction", "input", "output", "system"}  # no empty history
    assert FORMATS["alpaca"].validator(alpaca).errors == []
    # LLaMA-Factory reads it through dataset_info.json, which must map system and history (its defaults
    # drop the system prompt and train only the last answer)
    info = orjson.loads((tmp_path / "al" / "dataset_info.json").read_bytes())
    assert info == {f"brightrun_{split}": {
        "file_name": f"data/{split}.jsonl", "formatting": "alpaca",
        "columns": {"prompt": "instruction", "query": "input", "response": "output", "system": "system",
                    "history": "history"}} for split in ("train", "validation")}
    for entry in info.values():
        del entry["columns"]["history"]
    (tmp_path / "al" / "dataset_info.json").write_bytes(orjson.dumps(info))
    dropped = FORMATS["alpaca"].validator(tmp_path / "al")
    assert [(p.rule, p.line) for p in dropped.errors] == [("dataset_info_columns", 1)]
    (tmp_path / "al" / "dataset_info.json").unlink()
    assert "dataset_info" in FORMATS["alpaca"].validator(tmp_path / "al").rules("errors")
    odd = sft_set([_msg("user", "a"), _msg("user", "b"), _msg("assistant", "c")])
    with pytest.raises(ExportError, match="'ref'.*Alpaca needs user/assistant pairs"):
        write_alpaca(odd, tmp_path / "odd")


def test_llama_factory_records_and_dataset_info(tmp_path: Path) -> None:
    paths = FORMATS["llama_factory"].writer(sft_set(), tmp_path / "lf")
    assert read_lines(paths[0])[0] == {"conversations": [
        {"from": "human", "value": MARV[1]["content"]}, {"from": "gpt", "value": "Paris"},
        {"from": "human", "value": MARV[3]["content"]}, {"from": "gpt", "value": MARV[4]["content"]}],
        "system": MARV[0]["content"]}
    info = json.loads((tmp_path / "lf" / "dataset_info.json").read_text())
    assert info["brightrun_train"] == {
        "file_name": "data/train.jsonl", "formatting": "sharegpt",
        "columns": {"messages": "conversations", "system": "system"},
        "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                 "system_tag": "system"}}
    assert set(info) == {"brightrun_train", "brightrun_validation"}
    assert FORMATS["llama_factory"].validator(paths).errors == []

    pref = FORMATS["llama_factory_preference"].writer(pref_set(), tmp_path / "lfp")
    assert read_lines(pref[0])[0] == {"conversations": [{"from": "human", "value": "What color is the sky?"}],
                                      "chosen": {"from": "gpt", "value": "It is blue."},
                                      "rejected": {"from": "gpt", "value": "It is green."}}
    pinfo = json.loads((tmp_path / "lfp" / "dataset_info.json").read_text())["brightrun_train"]
    assert pinfo["ranking"] is True and pinfo["columns"]["chosen"] == "chosen"
    assert FORMATS["llama_factory_preference"].validator(pref).errors == []

    kto = FORMATS["llama_factory_kto"].writer(kto_records_from_preference(pref_set()), tmp_path / "lfk")
    assert read_lines(kto[0])[1] == {"conversations": [{"from": "human", "value": "What color is the sky?"},
                                                       {"from": "gpt", "value": "It is green."}], "kto_tag": False}
    assert FORMATS["llama_factory_kto"].validator(kto).errors == []


def test_hf_parquet_rows_and_dataset_card(tmp_path: Path) -> None:
    paths = write_hf_parquet(sft_set(), tmp_path / "hf", card_metadata={"license": "cc-by-4.0", "language": ["en"]})
    rel = [p.relative_to(tmp_path / "hf").as_posix() for p in paths]
    assert rel == ["data/train-00000-of-00001.parquet", "data/validation-00000-of-00001.parquet", "README.md"]
    row = pq.read_table(paths[0]).to_pylist()[0]
    assert row["id"] == "ref"
    assert row["messages"][2] == {"role": "assistant", "content": "Paris", "weight": 0}
    assert row["messages"][0] == {"role": "system", "content": MARV[0]["content"], "weight": None}
    assert pq.read_schema(paths[0]).equals(pq.read_schema(paths[1]))
    assert card_splits(tmp_path / "hf") == {"train": "data/train-*.parquet", "validation": "data/validation-*.parquet"}
    meta = yaml.safe_load((tmp_path / "hf" / "README.md").read_text().split("---")[1])
    assert meta["license"] == "cc-by-4.0" and meta["size_categories"] == ["n<1K"]
    assert validate_hf_parquet(paths).errors == []
    shards = write_hf_parquet(sft_set(), tmp_path / "sh", rows_per_file=5)
    assert [p.name for p in shards if "train" in p.name] == [f"train-0000{i}-of-00003.parquet" for i in range(3)]
    assert validate_hf_parquet(shards).errors == []


def test_hf_parquet_writes_weights_only_where_the_openai_export_does(tmp_path: Path) -> None:
    """Every assistant turn trained (all weights 1): no weight field, as in openai_sft and every other format."""
    records = sft_set(SKY_SFT)
    for r in records:
        r["messages"] = [{**m, "weight": 1} if m["role"] == "assistant" else m for m in r["messages"]]
    plain_rows = pq.read_table(write_hf_parquet(records, tmp_path / "plain")[0]).to_pylist()
    assert "weight" not in plain_rows[0]["messages"][0]
    assert "weight" not in read_lines(write_openai_sft(records, tmp_path / "o")[0])[0]["messages"][1]
    weighted = pq.read_table(write_hf_parquet(sft_set(), tmp_path / "w")[0]).to_pylist()[0]["messages"]
    assert [m["weight"] for m in weighted] == [None, None, 0, None, 1]


def test_vertex_record_matches_the_reference(tmp_path: Path) -> None:
    paths = write_vertex(sft_set([_msg("system", "Be brief."), *SKY_SFT]), tmp_path / "v")
    assert read_lines(paths[0])[0] == {
        "systemInstruction": {"role": "system", "parts": [{"text": "Be brief."}]},
        "contents": [{"role": "user", "parts": [{"text": "What color is the sky?"}]},
                     {"role": "model", "parts": [{"text": "It is blue."}]}]}
    result = validate_vertex(paths)
    assert result.errors == [] and result.rules("warnings") == {"few_examples"}  # Vertex suggests ~100


def test_every_format_is_registered_with_a_writer_and_validator() -> None:
    assert set(FORMATS) == {"openai_sft", "openai_dpo", "bedrock", "bedrock_haiku", "trl_sft", "trl_dpo", "trl_kto", "axolotl",
                            "sharegpt", "alpaca", "llama_factory", "llama_factory_preference", "llama_factory_kto",
                            "hf_parquet", "vertex"}
    assert {s.kind for s in FORMATS.values()} == {"sft", "preference", "kto"}


# -- validators against planted errors ---------------------------------------------------------------------


def plant(path: Path, line: int, change: Callable[[dict], dict | bytes] | bytes) -> None:
    lines = path.read_bytes().split(b"\n")
    new = change if isinstance(change, bytes) else change(json.loads(lines[line - 1]))
    lines[line - 1] = new if isinstance(new, bytes) else json.dumps(new).encode()
    path.write_bytes(b"\n".join(lines))


def _set(path: str, value) -> Callable[[dict], dict]:
    """Set a value at a dotted path ('messages.1.role'); the value None deletes the key."""
    def change(obj: dict) -> dict:
        *head, last = path.split(".")
        node = obj
        for key in head:
            node = node[int(key)] if isinstance(node, list) else node[key]
        key = int(last) if isinstance(node, list) else last
        if value is None:
            del node[key]
        else:
            node[key] = value
        return obj
    return change


def _append(path: str, item) -> Callable[[dict], dict]:
    def change(obj: dict) -> dict:
        node = obj
        for key in path.split("."):
            node = node[int(key)] if isinstance(node, list) else node[key]
        node.append(item)
        return obj
    return change


def _tool_example(args="{\"city\": \"Paris\"}", name="get_weather", declared="get_weather", answer="call_1"):
    return lambda _: {"messages": [
        _msg("user", "Weather in Paris?"),
        {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function",
                                              "function": {"name": name, "arguments": args}}]},
        {"role": "tool", "tool_call_id": answer, "content": "21.0"}, _msg("assistant", "It is 21 degrees.")],
        "tools": [{"type": "function", "function": {"name": declared, "parameters": {"type": "object"}}}]}


PLANTS = [
    # OpenAI chat SFT: the cookbook's format errors, weights (check 8) and tool calls (check 10)
    ("openai_sft", b'{"messages": [', "invalid_json"),
    ("openai_sft", b"[1, 2]", "data_type"),
    ("openai_sft", b"   ", "blank_line"),
    ("openai_sft", b'{"messages": "\xff\xfe"}', "encoding"),
    ("openai_sft", _set("messages", []), "missing_messages_list"),
    ("openai_sft", _set("messages.2.content", None), "message_missing_key"),
    ("openai_sft", _set("messages.1.foo", 1), "message_unrecognized_key"),
    ("openai_sft", _set("messages.1.role", "bot"), "unrecognized_role"),
    ("openai_sft", _set("messages.2.content", "   "), "missing_content"),
    ("openai_sft", _set("messages.2.content", 42), "missing_content"),
    ("openai_sft", _set("messages.2", None), "example_missing_assistant_message"),
    ("openai_sft", _append("messages", _msg("user", "And then?")), "last_not_assistant"),
    ("openai_sft", _set("messages.2.weight", 2), "weight_value"),
    ("openai_sft", _set("messages.1.weight", 1), "weight_role"),
    ("openai_sft", _set("messages.2.weight", 0), "no_trained_turn"),
    ("openai_sft", _tool_example(args={"city": "Paris"}), "tool_arguments"),
    ("openai_sft", _tool_example(args="{city: Paris"), "tool_arguments"),
    ("openai_sft", _tool_example(answer="call_9"), "orphan_tool_result"),
    ("openai_sft", _tool_example(declared="other"), "undeclared_tool"),
    # OpenAI DPO (check 9)
    ("openai_dpo", _set("non_preferred_output", None), "missing_key"),
    ("openai_dpo", _set("input", "hello"), "input_type"),
    ("openai_dpo", _append("input.messages", _msg("assistant", "Sure.")), "prompt_not_user_last"),
    ("openai_dpo", _append("preferred_output", _msg("assistant", "More.")), "output_shape"),
    ("openai_dpo", _set("preferred_output", {"role": "assistant", "content": "x"}), "output_shape"),
    ("openai_dpo", _set("preferred_output.0.role", "user"), "unrecognized_role"),
    ("openai_dpo", lambda o: {**o, "non_preferred_output": o["preferred_output"]}, "identical_outputs"),
    ("openai_dpo", _set("preferred_output.0.content", ""), "missing_content"),
    ("openai_dpo", _set("input.messages.1.role", "bot"), "unrecognized_role"),
    # Bedrock (Claude 3 Haiku shape): no extra keys, user/assistant only, user first, assistant last,
    # alternating, >= 2 messages
    ("bedrock_haiku", _set("id", "x"), "unrecognized_key"),
    ("bedrock_haiku", _set("messages.0.weight", 1), "message_unrecognized_key"),
    ("bedrock_haiku", lambda o: {**o, "messages": [_msg("system", "s"), *o["messages"]]}, "system_in_messages"),
    ("bedrock_haiku", _set("messages.0.role", "human"), "unrecognized_role"),
    ("bedrock_haiku", lambda o: {**o, "messages": [o["messages"][0], *o["messages"]]}, "role_order"),
    ("bedrock_haiku", _append("messages", _msg("user", "More?")), "last_not_assistant"),
    ("bedrock_haiku", lambda o: {**o, "messages": o["messages"][1:]}, "too_few_messages"),
    ("bedrock_haiku", _set("system", ""), "system_type"),
    ("bedrock_haiku", _set("messages.0.content", ""), "missing_content"),
    # Bedrock Converse: the same, with schemaVersion and text blocks
    ("bedrock", _set("schemaVersion", "bedrock-conversation-2023"), "schema_version"),
    ("bedrock", lambda o: {k: v for k, v in o.items() if k != "schemaVersion"}, "schema_version"),
    ("bedrock", _set("id", "x"), "unrecognized_key"),
    ("bedrock", _set("system", "a plain string"), "content_blocks"),
    ("bedrock", _set("messages.0.content", "a plain string"), "content_blocks"),
    ("bedrock", _set("messages.0.content.0", {"image": {"format": "png"}}), "content_blocks"),
    ("bedrock", _set("messages.0.content.0.text", " "), "missing_content"),
    ("bedrock", _set("messages.0.content.0.cachePoint", {}), "unrecognized_key"),
    ("bedrock", _set("messages.0.role", "system"), "system_in_messages"),
    ("bedrock", lambda o: {**o, "messages": [o["messages"][0], *o["messages"]]}, "role_order"),
    ("bedrock", _append("messages", {"role": "user", "content": [{"text": "More?"}]}), "last_not_assistant"),
    ("bedrock", lambda o: {**o, "messages": o["messages"][1:]}, "too_few_messages"),
    # TRL
    ("trl_sft", lambda o: {"conversation": o["messages"]}, "missing_key"),
    ("trl_sft", lambda o: {"prompt": o["messages"][:-1], "completion": o["messages"][-1:]}, "mixed_types"),
    ("trl_sft", _set("messages.1.role", "bot"), "unrecognized_role"),
    ("trl_sft", _set("messages.1.content", ""), "missing_content"),
    ("trl_sft", _append("messages", _msg("user", "More?")), "last_not_assistant"),
    ("trl_sft", _set("messages.2", None), "example_missing_assistant_message"),
    ("trl_dpo", _set("rejected", None), "missing_key"),
    ("trl_dpo", lambda o: {**o, "rejected": o["chosen"]}, "identical_outputs"),
    ("trl_dpo", _set("chosen.0.role", "user"), "unrecognized_role"),
    ("trl_dpo", _set("chosen.0.content", " "), "missing_content"),
    ("trl_dpo", lambda o: {"chosen": o["prompt"] + o["chosen"], "rejected": o["prompt"] + o["rejected"]},
     "mixed_types"),
    ("trl_kto", _set("label", "yes"), "label_type"),
    ("trl_kto", _set("label", None), "missing_key"),
    ("trl_kto", _set("completion.0.role", "user"), "unrecognized_role"),
    ("trl_kto", _set("completion.0.content", ""), "missing_content"),
    # Axolotl chat_template
    ("axolotl", _set("messages.1.role", "bot"), "unrecognized_role"),
    ("axolotl", _set("messages.2.train", "yes"), "train_flag"),
    ("axolotl", _set("messages.2.train", False), "no_trained_turn"),
    ("axolotl", _set("messages.2.content", [{"type": "image", "url": "x"}]), "content_part"),
    ("axolotl", _set("messages.2.content", ""), "missing_content"),
    ("axolotl", _append("messages", _msg("user", "More?")), "last_not_assistant"),
    # ShareGPT by LLaMA-Factory's converter rules
    ("sharegpt", lambda o: {"conversations": [o["conversations"][0], o["conversations"][2], o["conversations"][1]]},
     "role_order"),
    ("sharegpt", _set("conversations.1.from", "bot"), "unrecognized_role"),
    ("sharegpt", _set("conversations.2", None), "message_count"),
    ("sharegpt", _set("conversations.2.value", ""), "missing_content"),
    ("sharegpt", _set("conversations.1.value", None), "message_missing_key"),
    # Alpaca
    ("alpaca", _set("instruction", ""), "missing_content"),
    ("alpaca", _set("output", None), "missing_content"),
    ("alpaca", _set("history", "q1 a1"), "history_type"),
    ("alpaca", _set("history", [["only a question"]]), "history_type"),
    ("alpaca", _set("input", 5), "input_type"),
    # LLaMA-Factory records
    ("llama_factory", lambda o: {**o, "conversations": o["conversations"][::-1]}, "role_order"),
    ("llama_factory", _append("conversations", {"from": "human", "value": "More?"}), "message_count"),
    ("llama_factory", _set("conversations.0.from", "user"), "unrecognized_role"),
    ("llama_factory", _set("conversations.1.value", ""), "missing_content"),
    ("llama_factory", _set("system", 5), "system_type"),
    ("llama_factory_preference", _append("conversations", {"from": "gpt", "value": "x"}), "message_count"),
    ("llama_factory_preference", _set("chosen", "It is blue."), "ranking_answer"),
    ("llama_factory_kto", _set("kto_tag", "yes"), "kto_tag"),
    # Vertex Gemini
    ("vertex", _set("contents.1.role", "assistant"), "unrecognized_role"),
    ("vertex", _set("contents.0.parts", []), "missing_parts"),
    ("vertex", _set("contents.0.parts.0.fileData", {"mimeType": "image/png", "fileUri": "gs://b/x.png"}),
     "part_shape"),
    ("vertex", _set("contents.0.parts", [{"fileData": {"mimeType": "image/png"}}]), "file_data"),
    ("vertex", _set("contents.1.parts.0.text", ""), "missing_content"),
    ("vertex", _append("contents", {"role": "user", "parts": [{"text": "More?"}]}), "last_not_assistant"),
    ("vertex", _set("contents", []), "missing_contents"),
]


@pytest.mark.parametrize(("fmt", "change", "rule"), PLANTS, ids=[f"{f}-{r}-{i}" for i, (f, _, r) in enumerate(PLANTS)])
def test_validator_catches_planted_error_with_file_line_and_fix(tmp_path: Path, fmt: str, change, rule: str) -> None:
    spec = FORMATS[fmt]
    records = records_for(spec.kind)
    paths = spec.writer(records, tmp_path / fmt)
    train = train_file(paths)
    assert spec.validator(paths).errors == []  # clean before planting
    plant(train, 2, change)
    result = spec.validator(paths)
    hits = [p for p in result.errors if p.rule == rule]
    assert hits, result.summary()
    assert hits[0].file == str(train) and hits[0].line == 2 and hits[0].fix
    assert hits[0].record_id == [r["id"] for r in records if r["split"] == "train"][1]
    assert not result.ok and result.counts[rule] >= 1


def test_a_valid_tool_calling_example_passes(tmp_path: Path) -> None:
    """The cookbook checker misreports tool calls (formats.md §1.2); this validator does not."""
    paths = write_openai_sft(sft_set(), tmp_path / "t")
    plant(paths[0], 2, _tool_example())
    assert validate_openai_sft(paths).errors == []


def test_file_level_problems(tmp_path: Path) -> None:
    few = write_openai_sft(sft_set(n_train=5, n_val=1), tmp_path / "few")
    (problem,) = [p for p in validate_openai_sft(few).errors if p.rule == "min_examples"]
    assert problem.file == str(few[0]) and problem.line is None and "10" in problem.message

    paths = write_openai_sft(sft_set(), tmp_path / "bom")
    paths[0].write_bytes(b"\xef\xbb\xbf" + paths[0].read_bytes())
    assert [(p.rule, p.line) for p in validate_openai_sft(paths).errors] == [("bom", 1)]

    many = [{"id": f"v{i}", "split": "validation" if i else "train",
             "messages": [_msg("user", f"question {i} " + "x" * (i % 7)), _msg("assistant", f"answer {i}")]}
            for i in range(258)]
    vpaths = write_vertex(many, tmp_path / "v")
    assert "too_many_validation_examples" in validate_vertex(vpaths, model="gemini-1.5-flash-002",
                                                             near_duplicates=False).rules("errors")
    assert "too_many_validation_examples" not in validate_vertex(vpaths, near_duplicates=False).rules("errors")


def test_llama_factory_dataset_info_problems(tmp_path: Path) -> None:
    folder = tmp_path / "lf"
    paths = FORMATS["llama_factory"].writer(sft_set(), folder)
    info_path = folder / "dataset_info.json"
    info = json.loads(info_path.read_text())

    def rules_with(new_info: dict | None) -> set[str]:
        if new_info is None:
            info_path.unlink()
        else:
            info_path.write_text(json.dumps(new_info))
        return validate_llama_factory(paths).rules("errors")

    assert "dataset_source" in rules_with({**info, "brightrun_train": {**info["brightrun_train"],
                                                                        "hf_hub_url": "org/data"}})
    assert "dataset_formatting" in rules_with({**info, "brightrun_train": {**info["brightrun_train"],
                                                                            "formatting": "openai"}})
    assert "dataset_file_missing" in rules_with({**info, "brightrun_train": {**info["brightrun_train"],
                                                                              "file_name": "data/nope.jsonl"}})
    assert {"unregistered_file"} <= rules_with({"brightrun_train": info["brightrun_train"]})
    assert "dataset_info" in rules_with(None)


def _rewrite_parquet(path: Path, change: Callable[[list[dict]], list[dict]], schema: pa.Schema | None = None) -> None:
    table = pq.read_table(path)
    pq.write_table(pa.Table.from_pylist(change(table.to_pylist()), schema=schema or table.schema), path)


@pytest.mark.parametrize(("change", "rule"), [
    (_set("messages.1.role", "bot"), "unrecognized_role"),
    (_set("messages.2.content", ""), "missing_content"),
    (_set("messages.2.weight", 2), "weight_value"),
    (_set("messages.1.weight", 1), "weight_role"),
    (lambda row: {**row, "messages": row["messages"][:2]}, "example_missing_assistant_message"),
])
def test_hf_parquet_validator_catches_planted_row_errors(tmp_path: Path, change, rule: str) -> None:
    paths = write_hf_parquet(sft_set(), tmp_path / "hf")

    def edit(rows: list[dict]) -> list[dict]:
        rows[1] = change(rows[1])
        return rows
    _rewrite_parquet(paths[0], edit)
    hits = [p for p in validate_hf_parquet(paths).errors if p.rule == rule]
    assert hits and hits[0].line == 2 and hits[0].record_id == "r001" and hits[0].file == str(paths[0])


def test_hf_parquet_validator_checks_the_card_and_schema(tmp_path: Path) -> None:
    folder = tmp_path / "hf"
    paths = write_hf_parquet(sft_set(), folder)
    card = (folder / "README.md").read_text()
    (folder / "README.md").write_text(card.replace("config_name: default", "name: default"))
    assert "config_name" in validate_hf_parquet(paths).rules("errors")
    (folder / "README.md").write_text(card.replace("data/validation-*.parquet", "holdout/*.parquet"))
    assert {"data_files_missing", "unlisted_file"} <= validate_hf_parquet(paths).rules("errors")
    (folder / "README.md").unlink()
    assert "dataset_card" in validate_hf_parquet(paths).rules("errors")
    (folder / "README.md").write_text(card)
    _rewrite_parquet(paths[1], lambda rows: [{"id": r["id"], "messages": [
        {"role": m["role"], "content": m["content"]} for m in r["messages"]]} for r in rows],
        schema=pa.schema([("id", pa.string()), ("messages", pa.list_(pa.struct(
            [("role", pa.string()), ("content", pa.string())])))]))
    (problem,) = [p for p in validate_hf_parquet(paths).errors if p.rule == "schema_mismatch"]
    assert problem.file == str(paths[1])


def test_duplicates_ignore_case_and_whitespace_but_not_where_messages_begin(tmp_path: Path) -> None:
    records = sft_set()
    words = [_msg("user", "Should I pay down the MORTGAGE first?"), _msg("assistant", "It depends on the rate.")]
    records[2]["messages"] = words
    records[3]["messages"] = [_msg("user", "  should i pay down the\nmortgage   first? "),
                              _msg("assistant", "it depends ON the rate.")]          # the same, case and spaces aside
    records[4]["messages"] = [_msg("user", "Should I pay down the MORTGAGE first? It"),
                              _msg("assistant", "depends on the rate.")]             # the same words, another cut
    records[5]["messages"] = [_msg("assistant", "Should I pay down the MORTGAGE first?"),
                              _msg("user", "It depends on the rate.")]               # the same texts, other roles
    records[-1]["messages"] = [_msg("user", "SHOULD I pay down the mortgage first?"),
                               _msg("assistant", "It depends on the rate. ")]        # in validation: a leak
    paths = write_openai_sft(records, tmp_path / "w")
    result = validate_openai_sft(paths, counter=ESTIMATE, near_duplicates=False)
    found = {(p.rule, Path(p.file).name, p.line) for p in result.warnings}
    assert ("duplicate", "train.jsonl", 4) in found
    assert not {("duplicate", "train.jsonl", 5), ("duplicate", "train.jsonl", 6)} & found
    assert ("leakage_exact", "validation.jsonl", 3) in found


def test_the_duplicate_key_folds_every_whitespace_as_split_does() -> None:
    """The shortcut for texts already split and joined (printable, single spaces) gives what the full fold
    gives, for every kind of whitespace str.split knows and at the ends."""
    from brightrun.exports.checks import _folded, _message_key, _norm_one

    spaces = [" ", "  ", "\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\xa0", "\u2003", "\u2028",
              "\u3000"]
    texts = ["Plain Text", "ÉCOLE İstanbul ß", ""] + [f"{a}One{b}TWO{c}" for a in ("", " ", "\n") for b in spaces
                                                      for c in ("", " ", "\u2029")]
    for text in texts:
        assert _folded(text) == " ".join(text.lower().split()), repr(text)
    import hashlib
    for m in [{"role": "user", "content": "A  b"}, {"role": None, "content": 5}, {"role": 3, "content": None}]:
        assert _message_key(m, {}) == hashlib.blake2b(_norm_one(m).encode(), digest_size=16).digest()


def test_shared_warnings_duplicates_leakage_and_token_limits(tmp_path: Path) -> None:
    records = sft_set()
    records[2]["messages"] = records[1]["messages"]                       # duplicate within train
    records[-1]["messages"] = records[3]["messages"]                      # the same record in validation
    records[-2]["messages"] = [*records[4]["messages"][:2], _msg("assistant", "Another answer entirely.")]
    rng = random.Random(7)
    long_user, long_answer = _sentence(rng, 60), _sentence(rng, 60)
    records[5]["messages"] = [_msg("user", long_user), _msg("assistant", long_answer)]
    records[-3]["messages"] = [_msg("user", long_user + " Please?"), _msg("assistant", long_answer + " Thanks.")]
    records.append({"id": "v-extra", "split": "validation", "messages": records[7]["messages"]})
    paths = write_openai_sft(records, tmp_path / "w")
    result = validate_openai_sft(paths, max_tokens=60, counter=ESTIMATE)
    found = {(p.rule, Path(p.file).name, p.line) for p in result.warnings}
    assert ("duplicate", "train.jsonl", 3) in found
    assert ("leakage_exact", "validation.jsonl", 3) in found
    assert ("leakage_prompt", "validation.jsonl", 2) in found
    assert ("leakage_near_duplicate", "validation.jsonl", 1) in found
    assert any(p.rule == "token_limit" for p in result.warnings)  # MARV is over 60 tokens
    assert any(p.rule == "near_token_limit" for p in result.warnings) or result.counts["token_limit"] > 1
    assert result.ok  # none of these is rejected by OpenAI


@pytest.mark.parametrize("fmt", ["trl_dpo", "openai_dpo", "llama_factory_preference"])
def test_leakage_checks_every_text_of_every_row_not_only_the_chosen_side(tmp_path: Path, fmt: str) -> None:
    """A training row's rejected answer taken from a held-out row is a leak, whatever the prompts."""
    rng = random.Random(11)
    records = pref_set()
    held_answer = _sentence(rng, 40)
    records[-1]["chosen"] = held_answer                     # validation: chosen answer
    records[2]["rejected"] = held_answer                    # train: the same text as its rejected answer
    records[-2]["rejected"] = records[4]["rejected"] + " Indeed."  # validation rejected ~ a train rejected side
    paths = FORMATS[fmt].writer(records, tmp_path / fmt)
    result = FORMATS[fmt].validator(paths, near_duplicates=True)
    found = {(p.rule, p.line): p.message for p in result.warnings if p.rule.startswith("leakage")}
    assert found[("leakage_exact", 3)] == "its chosen answer is in train (line 3)"
    assert ("leakage_near_duplicate", 2) in found and "rejected" in found[("leakage_near_duplicate", 2)]
    assert not any(line == 1 for _, line in found)  # the untouched held-out row is not flagged


@pytest.mark.parametrize("fmt", ["trl_sft", "axolotl", "openai_sft"])
def test_non_alternating_roles_are_a_warning_where_the_consumer_does_not_check(tmp_path: Path, fmt: str) -> None:
    """TRL and Axolotl do not check the order, but many chat templates raise on it (check 5)."""
    paths = FORMATS[fmt].writer(sft_set(), tmp_path / fmt)
    plant(train_file(paths), 3, lambda o: {"messages": [o["messages"][0], o["messages"][1], *o["messages"][1:]]})
    result = FORMATS[fmt].validator(paths)
    assert ("role_order", 3) in {(p.rule, p.line) for p in result.warnings} and result.errors == []


def test_split_names_are_renamed_and_must_be_valid(tmp_path: Path) -> None:
    paths = write_trl_sft(sft_set(), tmp_path / "r", split_names={"validation": "valid"})
    assert [p.name for p in paths[:2]] == ["train.jsonl", "valid.jsonl"]
    assert hf_split_of("data/valid.jsonl") == "validation" and hf_split_of("data/my_train_file.csv") == "train"
    assert hf_split_of("data/holdout.jsonl") is None
    with pytest.raises(ExportError, match="not a valid split name"):
        write_trl_sft(sft_set(), tmp_path / "bad", split_names={"validation": "../up"})


def test_writers_refuse_bad_records_and_foreign_folders(tmp_path: Path) -> None:
    bad = sft_set()
    bad[3]["messages"][0]["role"] = "narrator"
    bad[4]["messages"][1]["weight"] = 1
    with pytest.raises(ExportError, match=r"2 of 15 sft records.*'r003'.*narrator.*'r004'.*only assistant"):
        write_openai_sft(bad, tmp_path / "x")
    assert not (tmp_path / "x").exists()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match="not a BrightRun export"):
        write_openai_sft(sft_set(), foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"
    middle = sft_set([_msg("user", "a"), _msg("system", "b"), _msg("assistant", "c")])
    with pytest.raises(ExportError, match="'ref'.*system turn in the middle"):
        write_bedrock_haiku(middle, tmp_path / "b")
    first = write_openai_sft(sft_set(), tmp_path / "again")
    second = write_openai_sft(sft_set(n_val=0), tmp_path / "again")  # an export is replaced whole
    assert first[1].name == "validation.jsonl" and not first[1].exists() and second[0].exists()


# -- loading with Hugging Face datasets --------------------------------------------------------------------


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_exports_load_with_datasets(tmp_path: Path, fmt: str) -> None:
    datasets = pytest.importorskip("datasets")
    datasets.disable_progress_bars()
    spec = FORMATS[fmt]
    records = records_for(spec.kind)
    spec.writer(records, tmp_path / fmt)
    loaded = datasets.load_dataset(str(tmp_path / fmt), cache_dir=str(tmp_path / "cache"))
    counts = {s: sum(r["split"] == s for r in records) for s in ("train", "validation")}
    assert {name: split.num_rows for name, split in loaded.items()} == counts
    if fmt in ("openai_sft", "trl_sft", "hf_parquet"):
        assert loaded["train"][0]["messages"][2]["content"] == "Paris"


def test_split_files_load_by_name_without_the_card(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    datasets.disable_progress_bars()
    folder = tmp_path / "o"
    write_openai_sft(sft_set(), folder)
    files = {"train": str(folder / "data/train.jsonl"), "validation": str(folder / "data/validation.jsonl")}
    loaded = datasets.load_dataset("json", data_files=files, cache_dir=str(tmp_path / "c1"))
    assert loaded["validation"].num_rows == 3
    hf = tmp_path / "hf"
    write_hf_parquet(sft_set(), hf)
    (hf / "README.md").unlink()
    (hf / "manifest.json").unlink()
    inferred = datasets.load_dataset(str(hf), cache_dir=str(tmp_path / "c2"))  # split names from file names
    assert set(inferred) == {"train", "validation"} and inferred["train"].num_rows == 12


# -- canonical records from BrightRun data -----------------------------------------------------------------


def _enriched(scores=(8.0, 6.0, 9.0)) -> dict:
    turns = [_msg("user", "Hi, I am worried."), _msg("assistant", "Tell me more."), _msg("user", "Debts."),
             _msg("assistant", "Let us list them."), _msg("user", "Done."), _msg("assistant", "Good, next step.")]
    pairs = []
    for k, score in zip((2, 4, 6), scores, strict=True):
        pairs.append({"id": f"c1_turn{k}", "conversation_id": "c1", "turn_number": k,
                      "conversation_metadata": {"persona_archetype": "pragmatic_optimist",
                                                "emotional_arc_key": "worry_to_relief",
                                                "training_topic_key": "debt"},
                      "system_prompt": "You are Elena.", "conversation_history": turns[:k - 2],
                      "current_user_input": turns[k - 2]["content"], "target_response": turns[k - 1]["content"],
                      "training_metadata": {"quality_score": score, "template_key": "t", "template_version": "1",
                                            "is_scripted": True}})
    return {"dataset_metadata": {"dataset_name": "fp_conversation_c1"}, "consultant_profile": {},
            "training_pairs": pairs}


def test_sft_record_from_an_enriched_conversation() -> None:
    record = sft_records_from_enriched(_enriched())
    assert record["id"] == "c1" and record["split"] == split_of("c1")
    assert [(m["role"], m.get("weight")) for m in record["messages"]] == [
        ("system", None), ("user", None), ("assistant", 1), ("user", None), ("assistant", 1), ("user", None),
        ("assistant", 1)]
    assert record["messages"][0]["content"] == "You are Elena."
    assert record["metadata"]["pair_ids"] == ["c1_turn2", "c1_turn4", "c1_turn6"]
    picky = sft_records_from_enriched(_enriched(), min_quality=7.0, split="test")
    assert [m.get("weight") for m in picky["messages"] if m["role"] == "assistant"] == [1, 0, 1]
    assert picky["split"] == "test" and picky["metadata"]["pair_ids"] == ["c1_turn2", "c1_turn6"]
    trimmed = sft_records_from_enriched(_enriched(), targets={"c1_turn2"})
    assert len(trimmed["messages"]) == 3  # turns after the last target are dropped
    plain_record = sft_records_from_enriched(_enriched(), per_turn_weights=False)
    assert all("weight" not in m for m in plain_record["messages"])
    with pytest.raises(ExportError, match="no assistant turn left"):
        sft_records_from_enriched(_enriched(), min_quality=9.5)
    check_records([record, {**picky, "id": "c1-picky"}], "sft")


def test_demo_workspace_exports_validate(demo_copy: Workspace, tmp_path: Path) -> None:
    ids = demo_copy.sql("SELECT conversation_id FROM conversations WHERE enrichment_status = 'completed' "
                        "ORDER BY 1 LIMIT 40")["conversation_id"].to_list()
    records = [sft_records_from_enriched(enriched_conversation(demo_copy, c)) for c in ids]
    assert {r["split"] for r in records} >= {"train", "validation"}
    result = validate_openai_sft(write_openai_sft(records, tmp_path / "sft"))
    assert result.ok, result.summary()
    assert result.stats["splits"]["train"]["examples"] == sum(r["split"] == "train" for r in records)

    build_dataset(demo_copy, DatasetSpec(name="prefs", kind="preference"))
    prefs = preference_records_from_dataset(read_examples(demo_copy, "prefs"))
    assert prefs and all(p["prompt"][-1]["role"] == "user" for p in prefs)
    assert FORMATS["trl_dpo"].validator(FORMATS["trl_dpo"].writer(prefs, tmp_path / "dpo")).errors == []
    kto = kto_records_from_preference(prefs)
    assert [k["label"] for k in kto[:2]] == [True, False] and kto[0]["completion"] == prefs[0]["chosen"]
    build_dataset(demo_copy, DatasetSpec(name="sft", kind="sft"))
    sft = sft_records_from_dataset(read_examples(demo_copy, "sft"))
    assert FORMATS["bedrock"].validator(FORMATS["bedrock"].writer(sft, tmp_path / "b")).errors == []


def test_kto_from_thumbs_and_preference_from_non_pairs() -> None:
    items = [{"id": "a", "split": "train", "messages": SKY_SFT, "helpful": True},
             {"id": "b", "split": "train", "messages": SKY_SFT, "helpful": False},
             {"id": "c", "split": "train", "messages": SKY_SFT, "helpful": None}]
    kto = kto_records_from_thumbs(items)
    assert [(k["id"], k["label"], k["completion"]) for k in kto] == [("a", True, "It is blue."),
                                                                   ("b", False, "It is blue.")]
    with pytest.raises(ExportError, match="not a preference pair"):
        preference_records_from_dataset([{"id": "x", "messages": [], "split": "train"}])


# -- tokens and cost ---------------------------------------------------------------------------------------


def test_token_estimate_on_known_inputs() -> None:
    # "What" + "'s" + " the" + " capital" + " of" + " France" + "?" = 7 pieces of 1 token
    assert estimate_tokens("What's the capital of France?") == 7
    assert estimate_tokens("Paris") == 1
    assert estimate_tokens("Internationalization") == 3  # 1 + (20 - 7) / 8 = 2.625 -> 3
    assert estimate_tokens("") == 0
    assert estimate_tokens("日本") == 2  # non-Latin letters: 1 each


def test_message_tokens_follow_the_cookbook_formula() -> None:
    words = TokenCounter("words", True, lambda text: len(text.split()))
    messages = [_msg("user", "a b", name="ann"), _msg("assistant", "c", weight=1)]
    # 3 per conversation + (3 + "user" 1 + "a b" 2 + "ann" 1 + name 1) + (3 + "assistant" 1 + "c" 1); weight skipped
    assert message_tokens(messages, words) == 3 + 8 + 5


def test_split_statistics_by_hand() -> None:
    one = TokenCounter("one", True, lambda text: 1 if text else 0)
    records = [{"id": str(i), "split": "train", "messages": [_msg("user", "q"), _msg("assistant", "a")] * n}
               for i, n in enumerate((1, 2, 3, 4))]
    records.append({"id": "s", "split": "test", "messages": [_msg("system", "s"), _msg("user", "q"),
                                                             _msg("assistant", "a")]})
    stats = split_statistics(records, counter=one, context_limit=20)
    # a conversation of m messages: 3 + m * (3 + 1 + 1) -> 13, 23, 33, 43
    train = stats["train"]
    assert (train.examples, train.total_tokens, train.mean, train.p50, train.max) == (4, 112, 28.0, 28.0, 43)
    assert train.p95 == pytest.approx(41.5) and train.over_limit == 3 and train.assistant_tokens == 10
    assert (train.missing_system, train.missing_user, stats["test"].missing_system) == (4, 0, 0)
    assert quantile([1, 2, 3, 4], 0.95) == pytest.approx(3.85)
    prefs = split_statistics(pref_set(n_train=1, n_val=0), kind="preference", counter=one)
    assert prefs["train"].max == 3 + 2 * 5  # the longer of prompt+chosen and prompt+rejected


def test_counters() -> None:
    class FakeTokenizer:
        name_or_path = "fake/model"

        def encode(self, text: str) -> list[int]:
            return list(range(len(text)))
    counter = counter_for(tokenizer=FakeTokenizer())
    assert counter.exact and counter("abcd") == 4 and counter.name == "tokenizer:fake/model"
    assert counter_for("gpt-4o-mini", exact=False) is ESTIMATE
    assert counter_for("claude-3-haiku") is ESTIMATE
    assert encoding_for_model("ft:gpt-4o-mini-2024-07-18:org::abc") == "o200k_base"
    assert encoding_for_model("gpt-3.5-turbo-0125") == "cl100k_base" and encoding_for_model("llama-3") is None


def test_cookbook_default_epochs() -> None:
    assert default_epochs(5) == 20          # the cookbook's toy file: 5 examples -> 20 epochs
    assert default_epochs(1) == 25 and default_epochs(33) == 3 and default_epochs(34) == 3
    assert default_epochs(10_000) == 2 and default_epochs(20_000) == 1 and default_epochs(100) == 3


def test_costs_only_for_the_targets_that_train_each_format(tmp_path: Path) -> None:
    records = sft_set()
    openai = {"gpt-4o-mini-2024-07-18", "gpt-4o-2024-08-06", "gpt-3.5-turbo-0125", "gpt-4.1-2025-04-14",
              "gpt-4.1-mini-2025-04-14", "gpt-4.1-nano-2025-04-14"}
    # gpt-3.5-turbo is priced only when named (by_default: false)
    expected = {"openai_sft": openai - {"gpt-3.5-turbo-0125"}, "openai_dpo": {m for m in openai if m.startswith("gpt-4.1")},
                "bedrock_haiku": {"anthropic.claude-3-haiku-20240307-v1:0:200k"},
                "vertex": {"gemini-2.5-flash", "gemini-2.5-pro"}}
    for fmt, spec in FORMATS.items():
        recs = records if spec.kind == "sft" else pref_set() if spec.kind == "preference" else \
            kto_records_from_preference(pref_set())
        assert {c.model for c in estimate_all(recs, kind=spec.kind, fmt=fmt)} == expected.get(fmt, set()), fmt
    # a workspace table adds a Converse target, and an override keeps the shipped formats
    (tmp_path / "training_prices.yaml").write_text(yaml.safe_dump({"recorded": "2026-12-01", "models": {
        "amazon.nova-micro-v1:0": {"provider": "bedrock", "usd_per_million_training_tokens": 1.0,
                                   "formats": ["bedrock"]},
        "gpt-4o-2024-08-06": {"provider": "openai", "usd_per_million_training_tokens": 20.0},
        "gpt-3.5-turbo-0125": {"provider": "openai", "usd_per_million_training_tokens": 9.0}}}))
    prices = training_prices(tmp_path)
    assert prices.models_for("bedrock") == ["amazon.nova-micro-v1:0"]
    assert "gpt-4o-2024-08-06" in prices.models_for("openai_sft")
    assert prices.models_for("openai_sft", every=True) == [*prices.models_for("openai_sft")[:2], "gpt-3.5-turbo-0125",
                                                           *prices.models_for("openai_sft")[2:]]


def test_cost_estimates_on_known_inputs() -> None:
    toy = estimate_cost([1000, 1000, 1000, 1000, 306], "gpt-4o-mini-2024-07-18")
    assert (toy.billing_tokens, toy.epochs, toy.charged_tokens) == (4306, 20, 86120)  # the cookbook's toy figures
    assert toy.cost_usd == pytest.approx(86120 * 3.00 / 1_000_000) and toy.estimate and toy.epochs_rule == "cookbook"
    capped = estimate_cost([70_000] + [100] * 99, "gpt-4o-mini")
    assert capped.billing_tokens == 65_536 + 9_900 and capped.truncated_examples == 1 and capped.epochs == 3
    assert capped.model == "gpt-4o-mini" and capped.max_tokens_per_example == 65_536
    assert estimate_cost([100], "gpt-4o").usd_per_million_training_tokens == 25.00  # not gpt-4o-mini's price
    haiku = estimate_cost([1000] * 50, "anthropic.claude-3-haiku-20240307-v1:0:200k")
    assert (haiku.epochs, haiku.epochs_rule, haiku.cost_usd) == (2, "provider default", pytest.approx(0.4))
    unknown = estimate_cost([10], "my-llama", epochs=4)
    assert unknown.cost_usd is None and unknown.charged_tokens == 40 and "not in" in unknown.price_source
    words = TokenCounter("words", True, lambda text: len(text.split()))
    per_records = estimate_for_records(sft_set(SKY_SFT, n_train=2, n_val=1), "gpt-4.1-mini-2025-04-14", counter=words)
    assert per_records.examples == 2 and per_records.epochs == 25  # validation tokens are not billed
    records = sft_set(SKY_SFT, n_train=7, n_val=2)
    every = estimate_all(records)  # tokens counted once per tokenizer, the same figures as model by model
    assert [e.model for e in every] == list(training_prices().models)
    assert every == [estimate_for_records(records, e.model) for e in every]
    prices = training_prices()
    assert prices.recorded == "2026-11-21" and all(p.source for p in prices.models.values())


def test_a_workspace_price_table_overrides_a_model(tmp_path: Path) -> None:
    (tmp_path / "training_prices.yaml").write_text(
        "recorded: '2026-12-01'\nmodels:\n  gpt-4o-mini-2024-07-18: {provider: openai, "
        "usd_per_million_training_tokens: 1.0, max_tokens_per_example: 1000, source: test}\n")
    prices = training_prices(tmp_path)
    assert prices.get("gpt-4o-mini").usd_per_million_training_tokens == 1.0
    assert prices.get("gpt-4o-2024-08-06").usd_per_million_training_tokens == 25.0


def test_exports_round_trip_through_json(tmp_path: Path) -> None:
    """JSONL files are UTF-8 with one object per line, and the manifest maps each line to its record."""
    records = sft_set([_msg("user", "Ça coûte combien ? 日本"), _msg("assistant", "Beaucoup.")])
    paths = write_openai_sft(records, tmp_path / "u")
    raw = paths[0].read_bytes()
    assert "Ça coûte".encode() in raw and raw.count(b"\n") == 12
    manifest = orjson.loads((tmp_path / "u" / "manifest.json").read_bytes())
    assert manifest["format"] == "openai_sft" and manifest["files"][0]["ids"][:2] == ["ref", "r001"]
    shutil.rmtree(tmp_path / "u")


# -- an export validates the rows it wrote without reading its files back (issue 15 item 8) ----------------


def _problem_set(kind: str) -> list[dict]:
    """Records with duplicates and exact, prompt and near-duplicate leaks: the shared checks have something
    to find."""
    rng = random.Random(7)
    if kind == "sft":
        records = sft_set()
        records[2]["messages"] = records[1]["messages"]
        records[-1]["messages"] = records[3]["messages"]
        records[-2]["messages"] = [*records[4]["messages"][:2], _msg("assistant", "Another answer entirely.")]
        long_user, long_answer = _sentence(rng, 60), _sentence(rng, 60)
        records[5]["messages"] = [_msg("user", long_user), _msg("assistant", long_answer)]
        records[-3]["messages"] = [_msg("user", long_user + " Please?"), _msg("assistant", long_answer + " Thanks.")]
        return records
    records = pref_set()
    records[-1]["chosen"] = records[2]["rejected"] = _sentence(rng, 40)
    records[-2]["rejected"] = records[4]["rejected"] + " Indeed."
    if kind == "preference":
        return records
    kto = kto_records_from_preference(records)
    kto[-1]["prompt"] = kto[2]["prompt"]  # a held-out prompt in train
    kto[5] |= {k: kto[4][k] for k in ("prompt", "completion")}  # the same example twice in train
    return kto


JSONL_FORMATS = sorted(f for f in FORMATS if f != "hf_parquet")


@pytest.mark.parametrize("fmt", JSONL_FORMATS)
def test_rows_in_hand_validate_as_the_written_files_without_parsing_them(tmp_path: Path, fmt: str, monkeypatch) -> None:
    """Inside rows_in_hand each writer keeps the rows it wrote, which are exactly what its lines parse to,
    and the validator checks them without parsing the files: every problem, line, record id and statistic
    is the one a validation of the files on disk gives."""
    from brightrun.exports import common
    from brightrun.exports import files as files_module

    spec = FORMATS[fmt]
    kept: dict[str, list] = {}
    real_keep, real_parse = files_module.keep_rows, files_module._parse
    monkeypatch.setattr(common, "keep_rows", lambda path, rows: kept.setdefault(
        Path(path).name, list(rows)) and real_keep(path, rows))
    parsed: list[bytes] = []
    monkeypatch.setattr(files_module, "_parse", lambda report, where, raw: parsed.append(raw) or real_parse(
        report, where, raw))
    with files_module.rows_in_hand():
        paths = spec.writer(_problem_set(spec.kind), tmp_path / fmt)
        in_hand = spec.validator(paths, counter=ESTIMATE, near_duplicates=True)
    assert parsed == []
    data = [p for p in paths if p.suffix == ".jsonl"]
    assert sorted(kept) == sorted(p.name for p in data)
    for path in data:
        assert [orjson.loads(line) for line in path.read_bytes().splitlines()] == kept[path.name]
    from_disk = spec.validator(paths, counter=ESTIMATE, near_duplicates=True)
    assert len(parsed) == sum(len(kept[p.name]) for p in data)
    assert in_hand.model_dump() == from_disk.model_dump()
    assert in_hand.warnings, "the problem records give the shared checks something to find"


def test_rows_in_hand_read_a_file_changed_since_it_was_written(tmp_path: Path) -> None:
    """A file edited after the writer kept its rows (another size or time) is read from disk again."""
    from brightrun.exports.files import rows_in_hand

    with rows_in_hand():
        paths = write_openai_sft(sft_set(), tmp_path / "w")
        plant(train_file(paths), 2, b"not json")
        result = validate_openai_sft(paths)
    assert [(p.rule, p.line) for p in result.errors] == [("invalid_json", 2)]
    assert validate_openai_sft(paths).model_dump() == result.model_dump()
