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
memory. Both files, the index of the JSONL's lines an export reads (pairs.parquet, pairs_index.py) and a
manifest.json are written into a temporary folder, synced, and renamed to
`<workspace>/training_files/<name>/v<N>/` in one step, so a reader sees both or neither. A version's
bytes depend only on what its version row stores and on the enriched records: rebuilding a past version
gives the same bytes, or a TrainingFileError saying what changed.

Reads `training_pairs` (every column but created_at) and the scaffolding's persona, arc and topic names.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from brightrun.training_files.build_pool import member_chunks
from brightrun.training_files.chunks import CHUNK, Buffers, RecordsHash, content_hash, iter_chunks
from brightrun.training_files.core import (
    TrainingFileError,
    Version,
    _lock,
    folder_of,
    get_version,
    records_changed,
)
from brightrun.training_files.pairs_index import NAME as INDEX_NAME
from brightrun.training_files.pairs_index import IndexWriter
from brightrun.training_files.writing import _JsonPieces, _Writer
from brightrun.workspace import Workspace
from brightrun.workspace.files import StreamFile, fsync_dir
from brightrun.workspace.recovery import recover_build_folder as recover_leftovers

FORMAT = "brightrun-lora"
JSON_OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
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


def iter_conversations(ws: Workspace, v: Version, chunk: int = CHUNK) -> Iterator[dict]:
    """The members of a version in order, each {conversation_id, split, conversation_metadata,
    training_pairs}: the conversations of its training JSON, without building the whole file."""
    for part in iter_chunks(ws, v.member_ids, v.splits, chunk, v.name):
        lines = bytes(part.jsonl).split(b"\n")
        at = 0
        for head, n in zip(part.heads, part.counts, strict=True):
            conversation = orjson.loads(head)
            conversation["training_pairs"] = [orjson.loads(line) for line in lines[at:at + n]]
            at += n
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


def _write_files(ws: Workspace, v: Version, folder: Path, workers: int = 1) -> tuple[str, str, str, int, str]:
    """training.json, training.jsonl and the index of its lines (pairs_index) of `v` into `folder`, synced;
    (the sha256 of the JSON's own bytes (_JsonPieces.frame), the JSONL's sha256, the records hash of the rows
    written, pairs, the index's sha256)."""
    json_out = StreamFile(folder / "training.json", hashed=False)
    jsonl_out = StreamFile(folder / "training.jsonl")
    index_out = IndexWriter(folder / INDEX_NAME)
    writer, done = _Writer(), False
    try:
        # the writer works on one chunk, one more may wait in its queue: three chunks are alive at once
        lines, json_pieces = Buffers(3), _JsonPieces()
        profile = orjson.dumps(ws.scaffolding.consultant.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
        writer.put([(json_out, [json_pieces.own(b'{"consultant_profile":' + profile + b',"conversations":[')])])
        pairs, records = 0, RecordsHash(ws)
        for part in member_chunks(ws, v.member_ids, v.splits, v.name, lines, workers, CHUNK):
            writer.put([(jsonl_out, [part.jsonl]), (json_out, json_pieces(part)), (index_out, [part.index])])
            records.add(part.rows, part.named)
            pairs += sum(part.counts)
        tail = b"\n],\"training_file\":" + orjson.dumps(header(ws, v, pairs), option=orjson.OPT_SORT_KEYS) + b"}\n"
        writer.put([(json_out, [json_pieces.own(tail)])])
        writer.close()
        done = True
        json_out.finish()
        index_sha = index_out.finish()
        return json_pieces.frame.hexdigest(), jsonl_out.finish(), records.hexdigest(), pairs, index_sha
    finally:
        if not done:
            try:
                writer.close()
            except BaseException:  # noqa: BLE001, S110 - the error already raised is the one to report
                pass
            json_out.close()
            jsonl_out.close()
            index_out.close()


def build_version(ws: Workspace, name: str, version: int | None = None, *, workers: int = 1) -> Built:
    """Write `training.json`, `training.jsonl` and `manifest.json` of a version (the latest by default)
    together; a past version is rebuilt byte for byte or refused with the reason. `workers` processes read
    and shape the chunks of members (build_pool.py): the same bytes for any number."""
    with _lock(ws, name):
        v = get_version(ws, name, version)
        target = folder_of(ws, name) / f"v{v.version}"
        target.parent.mkdir(parents=True, exist_ok=True)
        recover_leftovers(target.parent)
        ws.recover()
        tmp = target.parent / f".tmp-{uuid.uuid4().hex}-{target.name}"
        tmp.mkdir()
        try:
            try:
                json_sha, jsonl_sha, made, pairs, index_sha = _write_files(ws, v, tmp, workers)
            except TrainingFileError as exc:
                if "no training pairs" not in str(exc):
                    raise
                jsonl_sha = made = None  # a member lost its pairs: the records changed
            # core.records_hash of the rows written (a version made before it holds the JSONL's sha256)
            if v.records_hash not in (made, jsonl_sha):
                raise records_changed(name, v.version)
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
                "records_hash": v.records_hash, "training_json_frame_sha256": json_sha,
                "training_jsonl_sha256": jsonl_sha, "pairs_index_sha256": index_sha,
                "scaffolding_fingerprint": v.scaffolding_fingerprint,
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
