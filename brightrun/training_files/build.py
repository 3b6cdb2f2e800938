"""The full training JSON of a training file version and its JSONL, written together and always in agreement.

brightrun-lora format::

    {"training_file": {name, description, version, created_at, ..., total_conversations,
                       total_training_pairs, splits},
     "consultant_profile": {...},
     "conversations": [{"conversation_id", "split", "conversation_metadata", "training_pairs": [...]}]}

The JSONL holds one training pair a line: exactly the JSON's training pairs, in order, each serialized
with orjson and sorted keys. Both files (and a manifest.json) are written into a temporary folder, synced,
and renamed to `<workspace>/training_files/<name>/v<N>/` in one step, so a reader sees both or neither.
A version's bytes depend only on what its version row stores and on the enriched records: rebuilding
a past version gives the same bytes, or a TrainingFileError saying what changed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson

from brightrun.enrichment import enriched_conversation
from brightrun.training_files.core import (
    TrainingFileError,
    Version,
    _lock,
    folder_of,
    get_version,
    records_hash,
)
from brightrun.workspace import Workspace
from brightrun.workspace.files import fsync_dir

FORMAT = "brightrun-lora"
JSON_OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS


@dataclass(frozen=True)
class Built:
    name: str
    version: int
    json_path: Path
    jsonl_path: Path
    manifest_path: Path
    content_hash: str
    conversations: int
    training_pairs: int


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def document(ws: Workspace, v: Version) -> dict:
    """The full training JSON of a version (a dict)."""
    description = ws.scalar("SELECT description FROM training_files WHERE name = ?", [v.name]) or ""
    conversations = []
    for cid, split in zip(v.member_ids, v.splits, strict=True):
        enriched = enriched_conversation(ws, cid)
        pairs = [{**pair, "split": split} for pair in enriched["training_pairs"]]
        conversations.append({
            "conversation_id": cid, "split": split,
            "conversation_metadata": pairs[0]["conversation_metadata"] if pairs else {},
            "training_pairs": pairs,
        })
    counts = {s: 0 for s in ("train", "validation", "test")}
    for split in v.splits:
        counts[split] += 1
    return {
        "training_file": {
            "format": FORMAT, "name": v.name, "description": description, "version": v.version,
            "change": v.change, "created_at": v.created_at.isoformat(), "vertical": ws.scaffolding.consultant.vertical,
            "enrichment_version": v.enrichment_version, "scaffolding_fingerprint": v.scaffolding_fingerprint,
            "template_versions": v.template_versions, "split_ratios": list(v.split_ratios),
            "split_salt": v.split_salt, "records_hash": v.records_hash,
            "total_conversations": len(conversations),
            "total_training_pairs": sum(len(c["training_pairs"]) for c in conversations), "splits": counts,
        },
        "consultant_profile": ws.scaffolding.consultant.model_dump(mode="json"),
        "conversations": conversations,
    }


def render(doc: dict) -> tuple[bytes, bytes]:
    """(JSON bytes, JSONL bytes) of a document: the JSONL lines are its training pairs, in order."""
    json_bytes = orjson.dumps(doc, option=JSON_OPTIONS) + b"\n"
    jsonl = b"".join(orjson.dumps(pair, option=orjson.OPT_SORT_KEYS) + b"\n"
                     for conversation in doc["conversations"] for pair in conversation["training_pairs"])
    return json_bytes, jsonl


def content_hash(json_bytes: bytes, jsonl_bytes: bytes) -> str:
    return sha256(sha256(json_bytes).encode() + b"\n" + sha256(jsonl_bytes).encode())


def build_version(ws: Workspace, name: str, version: int | None = None) -> Built:
    """Write `training.json`, `training.jsonl` and `manifest.json` of a version (the latest by default)
    together; a past version is rebuilt byte for byte or refused with the reason."""
    with _lock(ws, name):
        v = get_version(ws, name, version)
        now_hash = records_hash(ws, v.member_ids)
        if now_hash != v.records_hash:
            raise TrainingFileError(
                f"training file {name!r} version {v.version} cannot be rebuilt byte for byte: the enriched "
                f"records of its conversations changed since it was made (re-enriched or deleted). Fix: build "
                f"the current state as a new version (add or remove a conversation, or re-split).")
        json_bytes, jsonl_bytes = render(document(ws, v))
        digest = content_hash(json_bytes, jsonl_bytes)
        if v.content_hash is not None and digest != v.content_hash:
            raise TrainingFileError(
                f"training file {name!r} version {v.version} cannot be rebuilt byte for byte: the build gives "
                f"content hash {digest[:12]} but the version recorded {v.content_hash[:12]} (the consultant "
                f"profile or the enrichment code changed). Fix: restore the scaffolding, or make a new version.")
        manifest = {
            "name": v.name, "version": v.version, "change": v.change, "created_at": v.created_at.isoformat(),
            "members": [{"conversation_id": c, "split": s} for c, s in zip(v.member_ids, v.splits, strict=True)],
            "split_ratios": list(v.split_ratios), "split_salt": v.split_salt, "content_hash": digest,
            "records_hash": v.records_hash, "training_json_sha256": sha256(json_bytes),
            "training_jsonl_sha256": sha256(jsonl_bytes), "scaffolding_fingerprint": v.scaffolding_fingerprint,
            "template_versions": v.template_versions, "enrichment_version": v.enrichment_version,
        }
        target = folder_of(ws, name) / f"v{v.version}"
        _write_together(target, {"training.json": json_bytes, "training.jsonl": jsonl_bytes,
                                 "manifest.json": orjson.dumps(manifest, option=JSON_OPTIONS) + b"\n"})
        if v.content_hash is None:
            row = ws.sql("SELECT * FROM training_file_versions WHERE name = ? AND version = ?", [name, v.version])
            ws.append("training_file_versions", [{**row.to_dicts()[0], "content_hash": digest}])
        pairs = jsonl_bytes.count(b"\n")
        return Built(name, v.version, target / "training.json", target / "training.jsonl",
                     target / "manifest.json", digest, len(v.member_ids), pairs)


def _write_together(target: Path, files: dict[str, bytes]) -> None:
    """Write all files into a fresh folder, then rename it to `target` in one step."""
    if target.is_dir() and all((target / n).is_file() and (target / n).read_bytes() == b for n, b in files.items()):
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".tmp-{uuid.uuid4().hex}-{target.name}"
    tmp.mkdir()
    try:
        for file_name, data in files.items():
            with open(tmp / file_name, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        fsync_dir(tmp)
        old = None
        if target.exists():
            old = target.parent / f".old-{uuid.uuid4().hex}-{target.name}"
            os.replace(target, old)
        os.replace(tmp, target)
        fsync_dir(target.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_agreement(json_path: Path, jsonl_path: Path) -> list[str]:
    """Problems where the JSONL does not match the JSON's training pairs (empty when they agree)."""
    doc = orjson.loads(json_path.read_bytes())
    lines = jsonl_path.read_bytes().splitlines()
    pairs = [p for c in doc["conversations"] for p in c["training_pairs"]]
    problems = []
    if len(lines) != len(pairs):
        problems.append(f"the JSON has {len(pairs)} training pairs, the JSONL {len(lines)} lines")
    for n, (line, pair) in enumerate(zip(lines, pairs, strict=False), start=1):
        if line != orjson.dumps(pair, option=orjson.OPT_SORT_KEYS):
            problems.append(f"line {n} ({pair.get('id')}) differs from the JSON's training pair")
    if doc["training_file"]["total_training_pairs"] != len(pairs):
        problems.append("total_training_pairs does not count the training pairs")
    return problems
