"""Building training datasets from feedback and imported app logs, written as JSONL per split with a
manifest that records every choice (kind, source, splits, PII redaction) and what was left out and why."""

from __future__ import annotations

import hashlib
import shutil
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal

import orjson
import polars as pl
from pydantic import BaseModel, Field, field_validator

from brightrun.datasets.rules import SPLITS, preference_pairs, sft_decision, split_of
from brightrun.errors import DatasetError
from brightrun.workspace import Workspace, utcnow
from brightrun.workspace.files import read_json, safe_name, write_json

Kind = Literal["sft", "preference", "app_steps"]


class DatasetSpec(BaseModel):
    name: str
    kind: Kind = "sft"
    source: Literal["all", "review", "import"] = Field(
        default="all", description="review: judgements of generated training pairs; import: imported app logs")
    action_types: list[str] = Field(default_factory=list, description="app_steps: only these steps (default all)")
    ratios: tuple[int, int, int] = (80, 10, 10)
    salt: str = Field(default="", description="changes the split assignment; keep it to reproduce a build")
    redact_pii: bool = Field(default=True, description="redact personal data in text from imported logs")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return safe_name(value, "dataset name")


class DatasetResult(BaseModel):
    spec: DatasetSpec
    path: str
    built_at: str
    examples: int
    counts: dict[str, dict[str, int]] = Field(description="part ('all' or an action type) -> split -> examples")
    mean_quality: dict[str, float | None] = Field(description="split -> mean quality score of its examples")
    excluded: dict[str, int] = Field(description="reason -> targets left out")
    redactions: dict[str, int] = Field(description="kind of personal data -> occurrences redacted")
    files: dict[str, str] = Field(description="file -> sha256")


def _messages(system: str | None, history: list[dict] | None, user: str) -> list[dict]:
    head = [{"role": "system", "content": system}] if system else []
    return [*head, *({"role": t["role"], "content": t["content"]} for t in (history or [])),
            {"role": "user", "content": user}]


def _prompt_of(request: str) -> str:
    try:
        return str(orjson.loads(request).get("prompt", ""))
    except (orjson.JSONDecodeError, AttributeError):
        return request


class _Redactor:
    def __init__(self, enabled: bool) -> None:
        self.enabled, self.counts = enabled, Counter()

    def __call__(self, text: str) -> str:
        if not self.enabled or not text:
            return text
        from brightrun.applogs.pii import redact_counted

        redacted, counts = redact_counted(text)
        self.counts.update({kind: n for kind, n in counts.items() if n})
        return redacted


def _anon(group: str) -> str:
    """An app user's or session's id as a dataset shows it: hashed (ids are often e-mail addresses)."""
    return "g-" + hashlib.sha256(group.encode()).hexdigest()[:16]


def _source_where(spec: DatasetSpec) -> str:
    return {"all": "TRUE", "review": "f.source = 'review'", "import": "f.source LIKE 'import:%'"}[spec.source]


def _judged(ws: Workspace, spec: DatasetSpec, target_type: str) -> pl.DataFrame:
    return ws.sql(f"""
        SELECT f.target_id, list(f.helpful ORDER BY f.reviewer) AS helpful, list(f.rating ORDER BY f.reviewer) AS rating,
               list(f.feedback_id ORDER BY f.reviewer) AS feedback_ids, list(f.reviewer ORDER BY f.reviewer) AS reviewers
        FROM feedback_latest f WHERE f.target_type = ? AND {_source_where(spec)} GROUP BY 1 ORDER BY 1""",
                  [target_type])


def _sft(ws: Workspace, spec: DatasetSpec, redact: _Redactor, excluded: Counter) -> list[dict]:
    out: list[dict] = []
    for target_type, sql in (
        ("training_pair", """SELECT pair_id AS id, conversation_id AS grp, system_prompt, conversation_history,
                                    current_user_input AS input, target_response AS output FROM training_pairs"""),
        ("llm_call", """SELECT call_id AS id, coalesce(session_id, user_id, call_id) AS grp, NULL AS system_prompt,
                               NULL AS conversation_history, request AS input, response AS output, action_type
                        FROM llm_calls WHERE status = 'ok'"""),
    ):
        judged = _judged(ws, spec, target_type)
        if judged.is_empty():
            continue
        records = ws.sql(f"SELECT * FROM ({sql}) WHERE id IN (SELECT target_id FROM feedback_latest "
                         f"WHERE target_type = ?)", [target_type])
        by_id = {r["id"]: r for r in records.to_dicts()}
        for row in judged.to_dicts():
            record = by_id.get(row["target_id"])
            if record is None:
                excluded["the judged record is no longer in the workspace"] += 1
                continue
            score, reason = sft_decision(zip(row["helpful"], row["rating"], strict=True))
            if score is None:
                excluded[reason] += 1
                continue
            imported = target_type == "llm_call"
            text_in = redact(_prompt_of(record["input"])) if imported else record["input"]
            text_out = redact(record["output"]) if imported else record["output"]
            out.append({
                "id": f"sft-{record['id']}", "group": _anon(record["grp"]) if imported else record["grp"],
                "quality_score": score,
                "messages": [*_messages(record["system_prompt"], record["conversation_history"], text_in),
                             {"role": "assistant", "content": text_out}],
                "source": {"type": target_type, "id": record["id"], "feedback_ids": row["feedback_ids"],
                           "reviewers": [redact(r) for r in row["reviewers"]] if imported else row["reviewers"],
                           **({"action_type": record["action_type"]} if imported else {})},
            })
    return out


SplitKey = Callable[[str], str | None]


def _preference(ws: Workspace, spec: DatasetSpec, redact: _Redactor, excluded: Counter,
                split_key: SplitKey | None = None) -> list[dict]:
    """Edits (the edit chosen over its original) and rated pairs (the better rated of two answers to one
    context). `split_key` maps a group (as the example's `group` shows it) to its split, or None when the
    group may not be used: both sides of every pair then come from usable groups of one split, so no pair
    carries text across splits (or from outside a training file). Default: the dataset's hash split.
    Every example lists the groups its texts come from in `groups`."""
    split_key = split_key or (lambda group: split_of(group, spec.ratios, spec.salt))
    out: list[dict] = []
    edits = ws.sql(f"""
        SELECT f.feedback_id, f.reviewer, f.target_type, f.target_id, f.edited_response, f.rating,
               coalesce(p.conversation_id, coalesce(c.session_id, c.user_id, c.call_id)) AS grp,
               p.system_prompt, p.conversation_history, coalesce(p.current_user_input, c.request) AS input,
               coalesce(p.target_response, c.response) AS original
        FROM feedback_latest f
        LEFT JOIN training_pairs p ON f.target_type = 'training_pair' AND p.pair_id = f.target_id
        LEFT JOIN llm_calls c ON f.target_type = 'llm_call' AND c.call_id = f.target_id
        WHERE f.edited_response IS NOT NULL AND {_source_where(spec)}
        ORDER BY f.target_id, f.reviewer""")
    for e in edits.to_dicts():
        if e["original"] is None:
            excluded["the edited record is no longer in the workspace"] += 1
            continue
        if e["edited_response"].strip() == e["original"].strip():
            excluded["the edit is identical to the original"] += 1
            continue
        imported = e["target_type"] == "llm_call"
        fix = redact if imported else (lambda t: t)
        group = _anon(e["grp"]) if imported else e["grp"]
        if split_key(group) is None:
            excluded["the edited record's conversation is not in the selection"] += 1
            continue
        out.append({"id": f"pref-edit-{e['feedback_id']}", "group": group, "groups": [group, group],
                    "quality_score": None,
                    "prompt": _messages(e["system_prompt"], e["conversation_history"],
                                        fix(_prompt_of(e["input"]) if imported else e["input"])),
                    "chosen": fix(e["edited_response"]), "rejected": fix(e["original"]),
                    "source": {"type": e["target_type"], "id": e["target_id"], "kind": "edit",
                               "feedback_ids": [e["feedback_id"]], "reviewers": [fix(e["reviewer"])]}})
    rated = ws.sql(f"""
        WITH r AS (SELECT f.target_type, f.target_id, avg(f.rating) AS rating, list(f.feedback_id) AS fids
                   FROM feedback_latest f WHERE f.rating IS NOT NULL AND {_source_where(spec)} GROUP BY 1, 2)
        SELECT r.*, md5(coalesce(p.system_prompt, '') || coalesce(p.conversation_history::VARCHAR, '')
                        || coalesce(p.current_user_input, c.action_type || ':' || c.request)) AS context,
               coalesce(p.conversation_id, coalesce(c.session_id, c.user_id, c.call_id)) AS grp,
               p.system_prompt, p.conversation_history, coalesce(p.current_user_input, c.request) AS input,
               coalesce(p.target_response, c.response) AS answer
        FROM r LEFT JOIN training_pairs p ON r.target_type = 'training_pair' AND p.pair_id = r.target_id
               LEFT JOIN llm_calls c ON r.target_type = 'llm_call' AND c.call_id = r.target_id
        WHERE coalesce(p.target_response, c.response) IS NOT NULL ORDER BY context, r.target_id""")
    contexts: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rated.to_dicts():
        row["group"] = _anon(row["grp"]) if row["target_type"] == "llm_call" else row["grp"]
        split = split_key(row["group"])
        if split is None:
            excluded["the rated record's conversation is not in the selection"] += 1
            continue
        contexts[row["context"], split].append(row)  # answers pair only within one split
    for rows in contexts.values():
        if len(rows) < 2:
            continue
        for i, j in preference_pairs([(r["answer"], r["rating"]) for r in rows]):
            a, b = rows[i], rows[j]
            imported = a["target_type"] == "llm_call"
            fix = redact if imported else (lambda t: t)
            out.append({"id": f"pref-rated-{a['target_id']}-{b['target_id']}",
                        "group": a["group"], "groups": [a["group"], b["group"]],
                        "quality_score": None, "rating_gap": round(a["rating"] - b["rating"], 3),
                        "prompt": _messages(a["system_prompt"], a["conversation_history"],
                                            fix(_prompt_of(a["input"]) if imported else a["input"])),
                        "chosen": fix(a["answer"]), "rejected": fix(b["answer"]),
                        "source": {"type": a["target_type"], "id": [a["target_id"], b["target_id"]],
                                   "kind": "ratings", "feedback_ids": a["fids"] + b["fids"]}})
    return out


def _app_steps(ws: Workspace, spec: DatasetSpec, redact: _Redactor, excluded: Counter) -> list[dict]:
    where = "AND c.action_type IN (SELECT unnest(?::VARCHAR[]))" if spec.action_types else ""
    calls = ws.sql(f"""
        SELECT c.call_id, c.action_type, c.category, c.model, c.request, c.response,
               coalesce(c.session_id, c.user_id, c.call_id) AS grp,
               list(f.helpful) FILTER (WHERE f.feedback_id IS NOT NULL) AS helpful,
               list(f.rating) FILTER (WHERE f.feedback_id IS NOT NULL) AS rating,
               list(f.feedback_id) FILTER (WHERE f.feedback_id IS NOT NULL) AS fids
        FROM llm_calls c LEFT JOIN feedback_latest f ON f.target_type = 'llm_call' AND f.target_id = c.call_id
        WHERE c.import_id IS NOT NULL AND c.status = 'ok' {where}
        GROUP BY ALL ORDER BY c.action_type, c.call_id""", [spec.action_types] if spec.action_types else None)
    out = []
    for c in calls.to_dicts():
        judgements = list(zip(c["helpful"] or [], c["rating"] or [], strict=True))
        if any(h is False or (r is not None and r <= 2) for h, r in judgements):
            excluded["negative feedback (thumbs down or rating 1-2)"] += 1
            continue
        score = sft_decision(judgements)[0] if judgements else None
        out.append({"id": f"step-{c['call_id']}", "group": _anon(c["grp"]), "action_type": c["action_type"],
                    "quality_score": score, "input": redact(_prompt_of(c["request"])), "output": redact(c["response"]),
                    "category": c["category"], "model": c["model"],
                    "source": {"type": "llm_call", "id": c["call_id"], "feedback_ids": c["fids"] or []}})
    return out


BUILDERS: dict[str, Callable[[Workspace, DatasetSpec, _Redactor, Counter], list[dict]]] = {
    "sft": _sft, "preference": _preference, "app_steps": _app_steps}


def preference_examples(ws: Workspace, source: Literal["all", "review", "import"] = "review", *,
                        split_of_group: Mapping[str, str] | None = None) -> list[dict]:
    """The preference examples a `kind="preference"` dataset would hold (an edited answer chosen over its
    original; the better rated of two answers to one context), without writing a dataset. Examples from
    reviewed training pairs have their conversation id as `group`. With `split_of_group` ({group: split},
    e.g. a training file version's members) only those groups' texts are used, each pair's two sides from
    one split, which each example carries as `split`."""
    key = split_of_group.get if split_of_group is not None else None
    examples = _preference(ws, DatasetSpec(name="preference", kind="preference", source=source), _Redactor(True),
                           Counter(), key)
    if split_of_group is not None:
        for e in examples:
            e["split"] = split_of_group[e["group"]]
    return examples


def datasets_dir(ws: Workspace) -> Path:
    return ws.root / "datasets"


def build_dataset(ws: Workspace, spec: DatasetSpec) -> DatasetResult:
    """Build (or rebuild) a dataset: every example with its split, quality score and source (record and
    feedback ids), written to datasets/<name>/ as JSONL per split (app_steps: per action type and split)
    with manifest.json. The folder is replaced whole, never left half-written."""
    excluded: Counter = Counter()
    redact = _Redactor(spec.redact_pii)
    examples = BUILDERS[spec.kind](ws, spec, redact, excluded)
    if not examples:
        reasons = "; ".join(f"{n} {r}" for r, n in excluded.most_common()) or "no feedback matches"
        raise DatasetError(f"dataset {spec.name!r} would be empty ({reasons}). Fix: review some conversations "
                           "on the Review page, import an app log with feedback, or choose another kind or source.")
    files: dict[str, list[bytes]] = defaultdict(list)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(SPLITS, 0))
    scores: dict[str, list[float]] = defaultdict(list)
    for ex in examples:
        ex["split"] = split_of(ex["group"], spec.ratios, spec.salt)
        part = ex["action_type"] if spec.kind == "app_steps" else "all"
        counts[part][ex["split"]] += 1
        if ex.get("quality_score") is not None:
            scores[ex["split"]].append(ex["quality_score"])
        prefix = f"{safe_name(part, 'action type')}/" if spec.kind == "app_steps" else ""
        files[f"{prefix}{ex['split']}.jsonl"].append(orjson.dumps(ex) + b"\n")
    root = datasets_dir(ws)
    staging = root / f".{spec.name}-{uuid.uuid4().hex}"
    digests = {}
    for name, lines in sorted(files.items()):
        path = staging / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = b"".join(lines)
        path.write_bytes(data)
        digests[name] = hashlib.sha256(data).hexdigest()
    result = DatasetResult(
        spec=spec, path=str(root / spec.name), built_at=utcnow().isoformat(), examples=len(examples),
        counts=dict(counts), excluded=dict(excluded), redactions=dict(redact.counts), files=digests,
        mean_quality={s: round(sum(v) / len(v), 3) if (v := scores.get(s)) else None for s in SPLITS})
    write_json(staging / "manifest.json", result.model_dump(mode="json"))
    target = root / spec.name
    old = root / f".{spec.name}-old-{uuid.uuid4().hex}"
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return result


def list_datasets(ws: Workspace) -> list[DatasetResult]:
    """Every built dataset's manifest, newest first."""
    root = datasets_dir(ws)
    found = [DatasetResult.model_validate(read_json(p)) for p in root.glob("*/manifest.json")
             if not p.parent.name.startswith(".")] if root.exists() else []
    return sorted(found, key=lambda r: r.built_at, reverse=True)


def read_examples(ws: Workspace, name: str, split: str | None = None) -> list[dict]:
    """The examples of a built dataset (all splits, or one)."""
    folder = datasets_dir(ws) / safe_name(name, "dataset name")
    if not (folder / "manifest.json").exists():
        raise DatasetError(f"no dataset {name!r}. Fix: build it with `brightrun datasets build {name}`.")
    pattern = f"**/{split}.jsonl" if split else "**/*.jsonl"
    return [orjson.loads(line) for p in sorted(folder.glob(pattern)) for line in p.read_bytes().splitlines()]
