"""The canonical records every exporter reads, and how BrightRun's data becomes them.

SFT record (one whole conversation):
    {"id": str, "split": str,
     "messages": [{"role": "system" | "user" | "assistant", "content": str, "weight": 0 | 1 (optional,
                   assistant turns only: 1 = a training target, 0 = context only)}, ...],
     "metadata": {...}}
Preference record: {"id", "split", "prompt": [messages ending with a user turn], "chosen": str,
                    "rejected": str, "metadata"}
KTO record (unpaired preference): {"id", "split", "prompt": [messages], "completion": str,
                                   "label": bool (True = desirable), "metadata"}

Writers check the structure of what they are given (`check_records`) and raise `ExportError` naming every
bad record before anything is written; what a consumer would reject in well-formed records (empty text,
roles out of order, too many tokens) is the validators' business, so that a report can show it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from brightrun.datasets.rules import split_of
from brightrun.exports.base import ExportError, Kind

ROLES = ("system", "user", "assistant")
_ROLE_SET = frozenset(ROLES)
_REQUIRED = {"sft": ("id", "split", "messages"), "preference": ("id", "split", "prompt", "chosen", "rejected"),
             "kto": ("id", "split", "prompt", "completion", "label")}


def _message_problem(m: Any, where: str) -> str | None:
    if not isinstance(m, dict):
        return f"{where} is not an object with role and content"
    if m.get("role") not in ROLES:
        return f"{where} has role {m.get('role')!r}; canonical roles are {', '.join(ROLES)}"
    if not isinstance(m.get("content"), str):
        return f"{where} content is {type(m.get('content')).__name__}, not text"
    if "weight" in m:
        if m["role"] != "assistant":
            return f"{where} is a {m['role']} turn with a weight; only assistant turns carry weights"
        if m["weight"] not in (0, 1) or isinstance(m["weight"], bool):
            return f"{where} weight is {m['weight']!r}; weights are 0 or 1"
    return None


def record_problem(record: Any, kind: Kind) -> str | None:
    """Why one canonical record cannot be exported (None when its structure is sound)."""
    if type(record) is not dict:
        return f"the record is a {type(record).__name__}, not a dict"
    missing = [k for k in _REQUIRED[kind] if k not in record]
    if missing:
        return f"missing {', '.join(missing)} (a {kind} record has {', '.join(_REQUIRED[kind])})"
    if not isinstance(record["split"], str) or not record["split"]:
        return f"split is {record['split']!r}; it must be a split name such as 'train'"
    turns = record["messages"] if kind == "sft" else record["prompt"]
    if not isinstance(turns, list) or not turns:
        return f"{'messages' if kind == 'sft' else 'prompt'} must be a non-empty list of messages"
    for i, m in enumerate(turns):  # the fast test first: this runs for every message of every export
        if type(m) is not dict or m.get("role") not in _ROLE_SET or type(m.get("content")) is not str or (
                "weight" in m and (m["role"] != "assistant" or m["weight"] not in (0, 1)
                                   or isinstance(m["weight"], bool))):
            return _message_problem(m, f"message {i + 1}")
    for key in {"preference": ("chosen", "rejected"), "kto": ("completion",), "sft": ()}[kind]:
        if not isinstance(record[key], str):
            return f"{key} is {type(record[key]).__name__}, not text"
    if kind == "kto" and not isinstance(record["label"], bool):
        return f"label is {record['label']!r}; it must be true (desirable) or false (undesirable)"
    return None


def check_records(records: Iterable[dict], kind: Kind) -> list[dict]:
    """The records as a list, or ExportError listing every structurally bad one (and repeated ids)."""
    records = list(records)
    if not records:
        raise ExportError(f"no {kind} records to export. Fix: choose a training file version or dataset "
                          f"that has {kind} examples.")
    bad, seen = [], set()
    for n, record in enumerate(records, start=1):
        rid = record.get("id") if isinstance(record, dict) else None
        problem = record_problem(record, kind)
        if problem is None and rid in seen:
            problem = "its id is used by an earlier record"
        seen.add(rid)
        if problem:
            bad.append(f"record {n} ({rid!r}): {problem}")
    if bad:
        more = f" (and {len(bad) - 20} more)" if len(bad) > 20 else ""
        raise ExportError(f"{len(bad)} of {len(records)} {kind} records cannot be exported{more}: "
                          + "; ".join(bad[:20]) + ". Fix: correct or drop those records and export again.")
    return records


# -- from BrightRun data --------------------------------------------------------------------------


def sft_records_from_enriched(enriched: dict, per_turn_weights: bool = True, *, split: str | None = None,
                              targets: Collection[str] | None = None,
                              min_quality: float | None = None) -> dict:
    """One brightrun-lora enriched conversation (design: training_pairs[] with system_prompt,
    conversation_history, current_user_input, target_response) as one multi-turn SFT record.

    The conversation is rebuilt from its latest pair (history + user input + target response). An
    assistant turn is a training target when the conversation has a pair for it that is in `targets`
    (pair ids; default all) and has a quality score of at least `min_quality` (default: no minimum).
    With per_turn_weights every assistant turn carries weight 1 (target) or 0 (context only); turns after
    the last target are dropped. Without it no weights are written (every assistant turn is trained).
    The split defaults to the conversation's hash split (brightrun.datasets.rules.split_of), as datasets
    are split, so no conversation straddles two splits."""
    pairs = sorted(enriched.get("training_pairs") or [], key=lambda p: p["turn_number"])
    if not pairs:
        raise ExportError("the enriched conversation has no training pairs. Fix: run `brightrun enrich` and "
                          "export conversations whose enrichment_status is completed.")
    last = pairs[-1]
    cid = last["conversation_id"]
    turns = [{"role": t["role"], "content": t["content"]} for t in last["conversation_history"]]
    turns += [{"role": "user", "content": last["current_user_input"]},
              {"role": "assistant", "content": last["target_response"]}]
    by_turn = {p["turn_number"]: p for p in pairs}
    weights: list[int | None] = []
    for number, turn in enumerate(turns, start=1):
        if turn["role"] != "assistant":
            weights.append(None)
            continue
        pair = by_turn.get(number)
        score = pair["training_metadata"].get("quality_score") if pair else None
        is_target = pair is not None and (targets is None or pair["id"] in targets) and (
            min_quality is None or (score is not None and score >= min_quality))
        if pair is not None:
            turn["content"] = pair["target_response"]
        weights.append(1 if is_target else 0)
    if 1 not in weights:
        raise ExportError(f"conversation {cid!r} has no assistant turn left to train on (targets or "
                          f"min_quality excluded them all). Fix: loosen the selection or leave it out.")
    end = max(i for i, w in enumerate(weights) if w == 1) + 1
    system = last.get("system_prompt")
    messages = [{"role": "system", "content": system}] if system else []
    for turn, weight in zip(turns[:end], weights[:end], strict=True):
        messages.append({**turn, "weight": weight} if per_turn_weights and weight is not None else turn)
    meta = last.get("conversation_metadata") or {}
    train_meta = last.get("training_metadata") or {}
    return {
        "id": cid, "split": split or split_of(cid), "messages": messages,
        "metadata": {
            "conversation_id": cid, "dataset_name": (enriched.get("dataset_metadata") or {}).get("dataset_name"),
            "pair_ids": [p["id"] for p in pairs if weights[p["turn_number"] - 1] == 1],
            "quality_scores": {p["id"]: p["training_metadata"].get("quality_score") for p in pairs},
            "persona": meta.get("persona_archetype"), "emotional_arc": meta.get("emotional_arc_key"),
            "training_topic": meta.get("training_topic_key"), "template_key": train_meta.get("template_key"),
            "template_version": train_meta.get("template_version"), "is_scripted": train_meta.get("is_scripted"),
        },
    }


def _meta(example: dict, *skip: str) -> dict:
    return {k: v for k, v in example.items() if k not in ("id", "split", *skip)}


def sft_records_from_dataset(examples: Iterable[dict]) -> list[dict]:
    """The datasets builder's SFT examples ({"id","group","quality_score","messages","split","source"})
    as canonical SFT records (single target: the last assistant turn)."""
    return [{"id": e["id"], "split": e["split"],
             "messages": [{"role": m["role"], "content": m["content"]} for m in e["messages"]],
             "metadata": _meta(e, "messages")} for e in examples]


def preference_records_from_dataset(examples: Iterable[dict]) -> list[dict]:
    """The datasets builder's preference examples ({"id","group","prompt","chosen","rejected","split",
    "source", ...}: an edit chosen over its original, or the better rated of two answers) as canonical
    preference records. Examples that are not preference pairs raise ExportError."""
    out = []
    for e in examples:
        if not all(k in e for k in ("prompt", "chosen", "rejected", "split")):
            raise ExportError(f"example {e.get('id')!r} is not a preference pair (prompt, chosen, rejected, split). "
                              "Fix: build the dataset with kind 'preference'.")
        out.append({"id": e["id"], "split": e["split"],
                    "prompt": [{"role": m["role"], "content": m["content"]} for m in e["prompt"]],
                    "chosen": e["chosen"], "rejected": e["rejected"],
                    "metadata": _meta(e, "prompt", "chosen", "rejected")})
    return out


def kto_records_from_preference(records: Iterable[dict]) -> list[dict]:
    """Unpaired (KTO) records from preference records: each chosen answer labelled true, each rejected one
    false, both with the pair's prompt and split (ids get the suffixes ':chosen' and ':rejected')."""
    out = []
    for r in records:
        for side, label in (("chosen", True), ("rejected", False)):
            out.append({"id": f"{r['id']}:{side}", "split": r["split"], "prompt": r["prompt"],
                        "completion": r[side], "label": label,
                        "metadata": {**(r.get("metadata") or {}), "pair_id": r["id"], "side": side}})
    return out


def kto_records_from_thumbs(items: Iterable[dict]) -> list[dict]:
    """Unpaired (KTO) records from judged answers: items are SFT-shaped ({"id","split","messages"} ending
    with the judged assistant turn) plus "helpful" (thumbs up True, down False; None is skipped)."""
    out = []
    for item in items:
        if item.get("helpful") is None:
            continue
        messages = item["messages"]
        if not messages or messages[-1]["role"] != "assistant":
            raise ExportError(f"item {item.get('id')!r} does not end with the judged assistant turn. "
                              "Fix: pass the conversation up to and including the judged answer.")
        out.append({"id": item["id"], "split": item["split"],
                    "prompt": [{"role": m["role"], "content": m["content"]} for m in messages[:-1]],
                    "completion": messages[-1]["content"], "label": bool(item["helpful"]),
                    "metadata": _meta(item, "messages", "helpful")})
    return out


def sequences(record: dict, kind: Kind) -> list[list[dict]]:
    """The token sequences a trainer sees for one canonical record: SFT one conversation; preference the
    prompt with the chosen and with the rejected answer; KTO the prompt with its completion."""
    if kind == "sft":
        return [record["messages"]]
    if kind == "preference":
        return [[*record["prompt"], {"role": "assistant", "content": record[side]}] for side in ("chosen", "rejected")]
    return [[*record["prompt"], {"role": "assistant", "content": record["completion"]}]]
