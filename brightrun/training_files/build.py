"""The full training JSON of a training file version and its JSONL, written together and always in agreement.

brightrun-lora format::

    {"consultant_profile": {...},
     "conversations": [{"conversation_id", "conversation_metadata", "split", "training_pairs": [...]}],
     "training_file": {name, description, version, created_at, ..., total_conversations,
                       total_training_pairs, splits}}

Keys are sorted at every level. The JSONL holds one training pair a line: exactly the JSON's training
pairs, in order. Both are made in one pass from the same bytes: the training pairs of a chunk of members
are read with one query, shaped into the nested record by polars expressions and serialized once with
`write_ndjson`; each line goes to the JSONL and, unchanged, into its conversation in the JSON. So they
cannot disagree, and a million training pairs are written at the speed of the serializer, in bounded
memory. Both files and a manifest.json are written into a temporary folder, synced, and renamed to
`<workspace>/training_files/<name>/v<N>/` in one step, so a reader sees both or neither. A version's
bytes depend only on what its version row stores and on the enriched records: rebuilding a past version
gives the same bytes, or a TrainingFileError saying what changed.

Reads `training_pairs` (every column but created_at) and the scaffolding's persona, arc and topic names.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import polars as pl

from brightrun import emotions
from brightrun.quality import scoring
from brightrun.training_files.core import (
    ROW_HASH,
    TrainingFileError,
    Version,
    _lock,
    folder_of,
    get_version,
)
from brightrun.workspace import Workspace
from brightrun.workspace.files import fsync_dir

FORMAT = "brightrun-lora"
JSON_OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
CHUNK = 4_000
"""Members read, shaped and written per step (bounds memory at any size)."""
SPLITS = ("train", "validation", "test")


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


# -- shaping -----------------------------------------------------------------------------------------


def _lookup(ws: Workspace) -> dict[str, dict[str, str]]:
    s = ws.scaffolding
    return {
        "client_persona": {k: p.name for k, p in s.personas.items()},
        "persona_archetype": {k: p.archetype for k, p in s.personas.items()},
        "client_background": {k: p.background for k, p in s.personas.items()},
        "emotional_arc": {k: a.name for k, a in s.arcs.items()},
        "training_topic": {k: t.name for k, t in s.topics.items()},
    }


def _shaped(frame: pl.DataFrame, lookup: dict[str, dict[str, str]]) -> pl.DataFrame:
    """One row per training pair with a single struct column `pair`, keys sorted at every level: the
    record enrichment.enriched_conversation gives, plus the pair's split."""
    keyed = {"client_persona": "persona_key", "persona_archetype": "persona_key", "client_background": "persona_key",
             "emotional_arc": "arc_key", "training_topic": "topic_key"}
    named = {field: pl.col(column).replace_strict(lookup[field], default=None, return_dtype=pl.String).alias(field)
             for field, column in keyed.items()}
    frame = frame.with_columns(*named.values())
    for field, column in keyed.items():
        missing = frame.filter(pl.col(field).is_null())[column].unique().to_list()
        if missing:
            raise TrainingFileError(f"the scaffolding has no {column.removesuffix('_key')} {missing[0]!r}, which "
                                    f"training pairs use. Fix: restore it in the scaffolding, or remove those "
                                    f"conversations from the training file.")
    metadata = pl.struct(
        pl.col("client_background"), pl.col("client_persona"), pl.col("emotional_arc"),
        pl.col("arc_key").alias("emotional_arc_key"), pl.col("persona_archetype"), pl.col("training_topic"),
        pl.col("topic_key").alias("training_topic_key")).alias("conversation_metadata")
    history = pl.col("conversation_history").list.eval(
        pl.struct(pl.element().struct.field("content"), pl.element().struct.field("role")))
    emotional = pl.struct(
        pl.col("detected_emotions"), pl.col("expected_stage_emotion"), pl.col("intensity"),
        pl.lit(emotions.METHOD).alias("method"), pl.col("primary_emotion"), pl.col("valence"),
    ).alias("emotional_context")
    training = pl.struct(
        pl.col("enrichment_version"), pl.col("history_turns"), pl.col("is_scripted"), pl.col("model"),
        pl.col("provider"), pl.col("quality_score"),
        pl.struct(*(pl.col(d) for d in sorted(scoring.DIMENSIONS))).alias("quality_scores"),
        pl.col("response_word_count"), pl.col("template_key"), pl.col("template_version"), pl.col("tier"),
        pl.col("user_input_word_count")).alias("training_metadata")
    pair = pl.struct(
        history.alias("conversation_history"), pl.col("conversation_id"), metadata, pl.col("current_user_input"),
        emotional, pl.col("pair_id").alias("id"), pl.col("split"), pl.col("system_prompt"),
        pl.col("target_response"), training, pl.col("turn_number")).alias("pair")
    return frame.select(pl.col("ord"), pl.col("conversation_id"), pl.col("split"), metadata, pair)


def _ndjson_lines(frame: pl.DataFrame) -> list[bytes]:
    if not frame.height:
        return []
    buffer = io.BytesIO()
    frame.write_ndjson(buffer)
    return buffer.getvalue().split(b"\n")[:-1]


@dataclass(frozen=True)
class Chunk:
    """The members of one step: per conversation its id, split, JSON head (everything but its training
    pairs, as bytes) and its training pairs' JSONL lines."""

    conversations: list[tuple[str, str, bytes, list[bytes]]]
    row_hashes: bytes
    """The chunk's part of the version's records hash (core.records_hash), in the same order."""


def iter_chunks(ws: Workspace, v: Version, chunk: int = CHUNK) -> Iterator[Chunk]:
    """The members of a version in order (sorted ids), `chunk` at a time, as serialized bytes."""
    lookup = _lookup(ws)
    for start in range(0, len(v.member_ids), chunk):
        ids, splits = v.member_ids[start:start + chunk], v.splits[start:start + chunk]
        frame = ws.sql(  # the BETWEEN lets DuckDB skip the row groups of other conversations
            f"SELECT m.ord, m.split, p.*, {ROW_HASH} AS row_hash FROM "
            "(SELECT unnest(?) AS conversation_id, unnest(?) AS split, generate_subscripts(?, 1) AS ord) m "
            "JOIN (SELECT * EXCLUDE (created_at) FROM training_pairs WHERE conversation_id BETWEEN ? AND ?) p "
            "USING (conversation_id) ORDER BY m.ord, p.turn_number", [ids, splits, ids, min(ids), max(ids)])
        counts = dict(frame.group_by("ord").len().iter_rows()) if frame.height else {}
        empty = [ids[o - 1] for o in range(1, len(ids) + 1) if o not in counts]
        if empty:
            raise TrainingFileError(f"conversation {empty[0]!r} of training file {v.name!r} has no training pairs "
                                    f"any more ({len(empty)} such). Fix: enrich it again, or remove it from the "
                                    f"training file.")
        row_hashes = ("\n".join(frame["row_hash"].to_list()) + "\n").encode() if frame.height else b""
        shaped = _shaped(frame, lookup)
        pair_lines = _ndjson_lines(shaped.select("pair").unnest("pair"))
        heads = _ndjson_lines(shaped.unique("ord", keep="first", maintain_order=True)
                              .select("conversation_id", "conversation_metadata", "split"))
        out, at = [], 0
        for o, (cid, split, head) in enumerate(zip(ids, splits, heads, strict=True), start=1):
            n = counts[o]
            out.append((cid, split, head, pair_lines[at:at + n]))
            at += n
        yield Chunk(out, row_hashes)


def iter_conversations(ws: Workspace, v: Version, chunk: int = CHUNK) -> Iterator[dict]:
    """The members of a version in order, each {conversation_id, split, conversation_metadata,
    training_pairs}: the conversations of its training JSON, without building the whole file."""
    for part in iter_chunks(ws, v, chunk):
        for _cid, _split, head, lines in part.conversations:
            conversation = orjson.loads(head)
            conversation["training_pairs"] = [orjson.loads(line) for line in lines]
            yield conversation


def header(ws: Workspace, v: Version, pairs: int) -> dict:
    description = ws.scalar("SELECT description FROM training_files WHERE name = ?", [v.name]) or ""
    counts = dict.fromkeys(SPLITS, 0)
    for split in v.splits:
        counts[split] += 1
    return {
        "format": FORMAT, "name": v.name, "description": description, "version": v.version,
        "change": v.change, "created_at": v.created_at.isoformat(), "vertical": ws.scaffolding.consultant.vertical,
        "enrichment_version": v.enrichment_version, "scaffolding_fingerprint": v.scaffolding_fingerprint,
        "template_versions": v.template_versions, "split_ratios": list(v.split_ratios),
        "split_salt": v.split_salt, "records_hash": v.records_hash,
        "total_conversations": len(v.member_ids), "total_training_pairs": pairs, "splits": counts,
    }


# -- writing -----------------------------------------------------------------------------------------


class _Out:
    """A file written in pieces, with its sha256."""

    def __init__(self, path: Path) -> None:
        self.handle = open(path, "wb")  # noqa: SIM115 (closed in finish)
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> None:
        self.handle.write(data)
        self.digest.update(data)

    def finish(self) -> str:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        return self.digest.hexdigest()


def _write_files(ws: Workspace, v: Version, folder: Path) -> tuple[str, str, int, str]:
    """training.json and training.jsonl of `v` into `folder`; (json sha256, jsonl sha256, pairs, the
    records hash of what was read)."""
    records = hashlib.sha256()
    json_out, jsonl_out = _Out(folder / "training.json"), _Out(folder / "training.jsonl")
    try:
        profile = orjson.dumps(ws.scaffolding.consultant.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
        json_out.write(b'{"consultant_profile":' + profile + b',"conversations":[')
        pairs, first = 0, True
        for part in iter_chunks(ws, v):
            records.update(part.row_hashes)
            pieces = []
            for _cid, _split, head, lines in part.conversations:
                pieces.append((b"\n" if first else b",\n") + head[:-1] + b',"training_pairs":['
                              + b",".join(lines) + b"]}")
                first = False
                pairs += len(lines)
                if lines:
                    jsonl_out.write(b"\n".join(lines) + b"\n")
            json_out.write(b"".join(pieces))
        json_out.write(b"\n],\"training_file\":" + orjson.dumps(header(ws, v, pairs), option=orjson.OPT_SORT_KEYS)
                       + b"}\n")
    finally:
        json_hash, jsonl_hash = json_out.finish(), jsonl_out.finish()
    return json_hash, jsonl_hash, pairs, records.hexdigest()


def content_hash(json_sha: str, jsonl_sha: str) -> str:
    return sha256(json_sha.encode() + b"\n" + jsonl_sha.encode())


def build_version(ws: Workspace, name: str, version: int | None = None) -> Built:
    """Write `training.json`, `training.jsonl` and `manifest.json` of a version (the latest by default)
    together; a past version is rebuilt byte for byte or refused with the reason."""
    with _lock(ws, name):
        v = get_version(ws, name, version)
        target = folder_of(ws, name) / f"v{v.version}"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".tmp-{uuid.uuid4().hex}-{target.name}"
        tmp.mkdir()
        try:
            try:
                json_sha, jsonl_sha, pairs, read_hash = _write_files(ws, v, tmp)
            except TrainingFileError as exc:
                if "no training pairs" not in str(exc):
                    raise
                read_hash = None  # a member lost its pairs: the records changed
            if read_hash != v.records_hash:
                raise TrainingFileError(
                    f"training file {name!r} version {v.version} cannot be rebuilt byte for byte: the enriched "
                    f"records of its conversations changed since it was made (re-enriched or deleted). Fix: "
                    f"build the current state as a new version (add or remove a conversation, or re-split).")
            digest = content_hash(json_sha, jsonl_sha)
            if v.content_hash is not None and digest != v.content_hash:
                raise TrainingFileError(
                    f"training file {name!r} version {v.version} cannot be rebuilt byte for byte: the build "
                    f"gives content hash {digest[:12]} but the version recorded {v.content_hash[:12]} (the "
                    f"consultant profile or the export code changed). Fix: restore the scaffolding, or make a "
                    f"new version.")
            manifest = {
                "name": v.name, "version": v.version, "change": v.change, "created_at": v.created_at.isoformat(),
                "members": [{"conversation_id": c, "split": s} for c, s in zip(v.member_ids, v.splits, strict=True)],
                "split_ratios": list(v.split_ratios), "split_salt": v.split_salt, "content_hash": digest,
                "records_hash": v.records_hash, "training_json_sha256": json_sha,
                "training_jsonl_sha256": jsonl_sha, "scaffolding_fingerprint": v.scaffolding_fingerprint,
                "template_versions": v.template_versions, "enrichment_version": v.enrichment_version,
                "training_pairs": pairs,
            }
            with open(tmp / "manifest.json", "wb") as handle:
                handle.write(orjson.dumps(manifest, option=JSON_OPTIONS) + b"\n")
                handle.flush()
                os.fsync(handle.fileno())
            fsync_dir(tmp)
            _replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if v.content_hash is None:
            row = ws.sql("SELECT * FROM training_file_versions WHERE name = ? AND version = ?", [name, v.version])
            ws.append("training_file_versions", [{**row.to_dicts()[0], "content_hash": digest}])
        return Built(name, v.version, target / "training.json", target / "training.jsonl",
                     target / "manifest.json", digest, len(v.member_ids), pairs)


def _replace(tmp: Path, target: Path) -> None:
    """Rename the finished folder `tmp` to `target` in one step (an older build moves aside first)."""
    old = None
    if target.exists():
        old = target.parent / f".old-{uuid.uuid4().hex}-{target.name}"
        os.replace(target, old)
    os.replace(tmp, target)
    fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def check_agreement(json_path: Path, jsonl_path: Path) -> list[str]:
    """Problems where the JSONL does not match the JSON's training pairs (empty when they agree)."""
    doc = orjson.loads(json_path.read_bytes())
    lines = jsonl_path.read_bytes().splitlines()
    pairs = [p for c in doc["conversations"] for p in c["training_pairs"]]
    problems = []
    if len(lines) != len(pairs):
        problems.append(f"the JSON has {len(pairs)} training pairs, the JSONL {len(lines)} lines")
    for n, (line, pair) in enumerate(zip(lines, pairs, strict=False), start=1):
        try:
            same = orjson.loads(line) == pair
        except orjson.JSONDecodeError:
            same = False
        if not same:
            problems.append(f"line {n} ({pair.get('id')}) differs from the JSON's training pair")
    if doc["training_file"]["total_training_pairs"] != len(pairs):
        problems.append("total_training_pairs does not count the training pairs")
    return problems
