"""Training files: named, versioned sets of enriched conversations (design: "Training files and exports").

Rules:
- a name is unique (case-insensitively) and made of letters, digits, dashes, underscores and spaces;
  anything that could leave `<workspace>/training_files/` is refused.
- only conversations with enrichment_status = completed and an enriched record (training pairs) are
  added. Given by id, any ineligible, unknown or duplicate id blocks the whole operation, and the error
  lists every offending id with all its reasons: nothing is written unless everything is accepted. Given
  by a filter, the eligible non-members it matches are added and the rest is reported (already members,
  not enriched, failed), so a file can be topped up with the same filter.
- every change (create, add, remove, re-split) makes a new version. Its membership rows are written to
  `training_file_conversations` first, then the version row to `training_file_versions`: the version
  row is the commit point, so a crash in between leaves rows of a version that never existed (ignored).
- adding or removing members never moves a member that stays to another split (splits.py); only a
  re-split does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import orjson
import polars as pl

from brightrun.enrichment import ENRICHMENT_VERSION
from brightrun.errors import TrainingFileError, WorkspaceError
from brightrun.training_files.chunks import records_hash_of
from brightrun.training_files.splits import check_ratios, groups_of, split_members
from brightrun.workspace import Workspace, utcnow
from brightrun.workspace.files import safe_name
from brightrun.workspace.recovery import training_file_lock

DEFAULT_RATIOS = (80, 10, 10)
FOLDER = "training_files"
FILTER_COLUMNS = ("tier", "arc_key", "persona_key", "topic_key", "template_key", "provider", "model",
                  "is_scripted", "job_id", "enrichment_status")


@dataclass(frozen=True)
class Version:
    name: str
    version: int
    change: str
    member_ids: list[str]
    splits: list[str]
    split_ratios: tuple[int, int, int]
    split_salt: str
    records_hash: str
    content_hash: str | None
    scaffolding_fingerprint: str
    template_versions: list[str]
    enrichment_version: str
    created_at: object

    @property
    def split_of(self) -> dict[str, str]:
        return dict(zip(self.member_ids, self.splits, strict=True))


# -- names ------------------------------------------------------------------------------------------


def shown(text: str, limit: int = 60) -> str:
    """A user-given string as a message quotes it: repr, cut to `limit` characters with its length."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text):,} characters)"


def check_name(name: str) -> str:
    try:
        safe_name(name, "training file name")
    except WorkspaceError as exc:  # a refused name is quoted short, however long it is
        raise TrainingFileError(str(exc).replace(repr(name), shown(name))) from None
    return name


def folder_of(ws: Workspace, name: str) -> Path:
    """The folder of a training file; refuses any name that would leave `<workspace>/training_files/`."""
    check_name(name)
    base = (ws.root / FOLDER).resolve()
    path = (base / name).resolve()
    if path.parent != base:
        raise TrainingFileError(f"training file name {name!r} would leave {base}. Fix: use a plain name.")
    return path


def _lock(ws: Workspace, name: str):
    return ws.lock(training_file_lock(name), timeout=30)


# -- reading ----------------------------------------------------------------------------------------


def list_training_files(ws: Workspace) -> pl.DataFrame:
    return ws.sql(
        "SELECT f.name, f.description, f.created_at, v.version, len(v.member_ids) AS conversations, "
        "v.content_hash FROM training_files f LEFT JOIN (SELECT * FROM training_file_versions "
        "QUALIFY row_number() OVER (PARTITION BY name ORDER BY version DESC) = 1) v USING (name) "
        "ORDER BY f.name")


def _existing(ws: Workspace, name: str) -> str | None:
    return ws.scalar("SELECT name FROM training_files WHERE lower(name) = lower(?)", [name])


def versions(ws: Workspace, name: str) -> list[Version]:
    """Every version of a training file, oldest first."""
    _require(ws, name)
    frame = ws.sql("SELECT * FROM training_file_versions WHERE name = ? ORDER BY version", [name])
    return [_version(row) for row in frame.iter_rows(named=True)]


def get_version(ws: Workspace, name: str, version: int | None = None) -> Version:
    """One version (the latest when `version` is None)."""
    history = versions(ws, name)
    if not history:
        raise TrainingFileError(f"training file {name!r} has no version. Fix: create it again under a new name.")
    if version is None:
        return history[-1]
    for v in history:
        if v.version == version:
            return v
    raise TrainingFileError(f"training file {name!r} has no version {version} (it has 1..{history[-1].version}). "
                            f"Fix: pick one of `training_file_versions`.")


def members(ws: Workspace, name: str, version: int | None = None) -> list[str]:
    return get_version(ws, name, version).member_ids


def _version(row: dict) -> Version:
    return Version(
        name=row["name"], version=row["version"], change=row["change"], member_ids=list(row["member_ids"]),
        splits=list(row["splits"]), split_ratios=tuple(row["split_ratios"]), split_salt=row["split_salt"],
        records_hash=row["records_hash"], content_hash=row["content_hash"],
        scaffolding_fingerprint=row["scaffolding_fingerprint"],
        template_versions=orjson.loads(row["template_versions"]), enrichment_version=row["enrichment_version"],
        created_at=row["created_at"])


def _require(ws: Workspace, name: str) -> None:
    check_name(name)
    if ws.scalar("SELECT count(*) FROM training_files WHERE name = ?", [name]) == 0:
        known = ws.sql("SELECT name FROM training_files ORDER BY name")["name"].to_list()
        raise TrainingFileError(f"no training file named {name!r}. Fix: create it first"
                                f"{' or use one of ' + ', '.join(map(repr, known)) if known else ''}.")


def records_hash(ws: Workspace, ids: list[str], splits: list[str], name: str = "") -> str:
    """The records hash of a version with members `ids` and `splits` (chunks.RecordsHash: what a build reads;
    the build makes it again from the rows it serializes)."""
    return records_hash_of(ws, ids, splits)


def records_changed(name: str, version: int) -> TrainingFileError:
    """The refusal when a version's records can no longer be made (build, export)."""
    return TrainingFileError(
        f"training file {name!r} version {version} cannot be rebuilt byte for byte: the training pairs of its "
        f"conversations changed since it was made (re-enriched or deleted, or a persona, arc or topic renamed in "
        f"the scaffolding). Fix: build the current state as a new version (add or remove a conversation, or "
        f"re-split).")


# -- eligibility --------------------------------------------------------------------------------------


def _ineligible(ws: Workspace, ids: list[str]) -> dict[str, tuple[str, str]]:
    """{conversation_id: (kind, reason)} for every id that may not enter a training file; kind is one of
    LEFT_OUT's keys."""
    frame = ws.sql(
        "SELECT i.id, c.conversation_id IS NOT NULL AS known, c.enrichment_status, "
        "(SELECT count(*) FROM training_pairs p WHERE p.conversation_id = i.id) AS pairs "
        "FROM (SELECT unnest(?) AS id) i LEFT JOIN conversations c ON c.conversation_id = i.id", [ids])
    bad: dict[str, tuple[str, str]] = {}
    for row in frame.iter_rows(named=True):
        if not row["known"]:
            bad[row["id"]] = ("unknown", "no such conversation")
        elif row["enrichment_status"] != "completed":
            bad[row["id"]] = ("failed" if row["enrichment_status"] == "failed" else "not_enriched",
                              f"enrichment_status is {row['enrichment_status']!r}, not 'completed' "
                              f"(run `brightrun enrich`; see `enrichment_errors` if it failed)")
        elif not row["pairs"]:
            bad[row["id"]] = ("no_record", "enrichment_status is 'completed' but it has no enriched record (no "
                                           "training pairs); run `brightrun enrich --force`")
    return bad


def ineligible(ws: Workspace, ids: list[str]) -> dict[str, str]:
    """{conversation_id: reason} for every id that may not enter a training file."""
    return {cid: reason for cid, (_, reason) in _ineligible(ws, ids).items()}


LEFT_OUT = {"member": "already members", "not_enriched": "not enriched", "failed": "failed",
            "no_record": "no enriched record", "unknown": "unknown"}
"""Why a conversation a filter matches is left out, as the count labels say it."""


@dataclass(frozen=True)
class FilterMatch:
    """What adding by a filter does: the eligible non-members it adds, and every match it leaves out."""

    matched: int
    new: list[str]
    left_out: dict[str, tuple[str, str]]
    """{conversation_id: (kind, reason)}; kind is a key of LEFT_OUT."""

    def counts(self) -> dict[str, int]:
        """{label: conversations} of what is left out, in LEFT_OUT's order, zeros omitted."""
        kinds = [kind for kind, _ in self.left_out.values()]
        return {label: kinds.count(kind) for kind, label in LEFT_OUT.items() if kind in kinds}

    def label(self) -> str:
        """'37 new (84 already members, 2 not enriched)'."""
        rest = ", ".join(f"{n:,} {label}" for label, n in self.counts().items())
        return f"{len(self.new):,} new" + (f" ({rest})" if rest else "")


def match_filter(ws: Workspace, name: str, conditions: Mapping[str, object]) -> FilterMatch:
    """What adding the conversations matching `conditions` to training file `name` would add, and leave out
    and why (already members, not enriched, failed, no enriched record)."""
    matched = ids_from_filter(ws, conditions)
    have = set(get_version(ws, name).member_ids)
    left_out = {cid: ("member", f"already in training file {name!r}") for cid in matched if cid in have}
    left_out |= _ineligible(ws, [cid for cid in matched if cid not in have])
    return FilterMatch(len(matched), [cid for cid in matched if cid not in left_out], left_out)


def ids_from_filter(ws: Workspace, conditions: Mapping[str, object]) -> list[str]:
    """Conversation ids matching a saved filter: {column: value or list of values} over `conversations`,
    all conditions combined with AND; `min_quality` bounds quality_score from below."""
    where, params = [], []
    for column, value in conditions.items():
        if column == "min_quality":
            where.append("quality_score >= ?")
            params.append(float(value))
            continue
        if column not in FILTER_COLUMNS:
            raise TrainingFileError(f"filter column {column!r} is not allowed. Fix: use min_quality or one of "
                                    f"{', '.join(FILTER_COLUMNS)}.")
        values = list(value) if isinstance(value, list | tuple | set) else [value]
        where.append(f"{column} IN (SELECT unnest(?))")
        params.append(values)
    sql = "SELECT conversation_id FROM conversations"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return ws.sql(sql + " ORDER BY conversation_id", params)["conversation_id"].to_list()


# -- changes ----------------------------------------------------------------------------------------


def create_training_file(ws: Workspace, name: str, description: str = "") -> Version:
    """A new, empty training file (version 1)."""
    folder_of(ws, name)
    with _lock(ws, name):
        clash = _existing(ws, name)
        if clash is not None:
            raise TrainingFileError(f"a training file named {clash!r} already exists. Fix: choose another name.")
        # the version row first: a crash before the file row leaves no file, and creating it again
        # rewrites version 1 (same key)
        version = _commit(ws, name, "create", [], DEFAULT_RATIOS, "", None)
        ws.append("training_files", [{"name": name, "description": description or "", "created_at": utcnow()}])
        return version


def add_conversations(ws: Workspace, name: str, ids: Iterable[str] | None = None, *,
                      saved_filter: Mapping[str, object] | None = None, workers: int | None = 1) -> Version:
    """Add conversations by ids (all or none) and/or by a saved filter (its eligible non-members); returns
    the new version. add_matching also says what the filter left out."""
    return add_matching(ws, name, ids, saved_filter=saved_filter, workers=workers)[0]


def add_matching(ws: Workspace, name: str, ids: Iterable[str] | None = None, *,
                 saved_filter: Mapping[str, object] | None = None, workers: int | None = 1
                 ) -> tuple[Version, FilterMatch | None]:
    """Add conversations; (the new version, what the filter matched and left out, or None without a filter).

    Explicit ids are all or nothing: any ineligible, unknown, duplicate or repeated id blocks the whole
    operation, and the error lists every one with all its reasons. A filter adds the eligible
    non-members it matches and leaves out, with their reasons, the members and the ineligible ones; it is
    refused only when it would add nothing. `workers` processes search the near duplicates (None: the core count
    from 50,000 members, as the CLI; docs/scale.md)."""
    wanted = list(ids or [])
    if not wanted and saved_filter is None:
        raise TrainingFileError("no conversations to add. Fix: give conversation ids or a filter that matches some.")
    with _lock(ws, name):
        current = get_version(ws, name)
        _check_explicit(ws, name, wanted, set(current.member_ids))
        match = match_filter(ws, name, saved_filter) if saved_filter is not None else None
        explicit = set(wanted)
        extra = [cid for cid in match.new if cid not in explicit] if match else []
        if not wanted and not extra:
            assert match is not None
            if not match.matched:
                raise TrainingFileError("no conversations to add: the filter matches none. Fix: give conversation "
                                        "ids or a filter that matches some.")
            what = f"the filter matches {match.matched:,} conversation(s): " + ", ".join(
                f"{n:,} {label}" for label, n in match.counts().items())
            raise TrainingFileError(
                f"nothing was added to {name!r}: {what}.\nFix: widen the filter, or enrich the conversations "
                f"listed (`brightrun enrich`) and add again.", {cid: why for cid, (_, why) in match.left_out.items()})
        return _commit(ws, name, "add", current.member_ids + wanted + extra, current.split_ratios,
                       current.split_salt, current, workers), match


def _check_explicit(ws: Workspace, name: str, wanted: list[str], have: set[str]) -> None:
    """Refuse explicit ids unless every one may be added, listing each offending id with all its reasons."""
    reasons: dict[str, list[str]] = {cid: [why] for cid, why in ineligible(ws, sorted(set(wanted))).items()}
    ineligible_ids = set(reasons)
    seen: set[str] = set()
    duplicate_ids = set()
    for cid in wanted:
        why = (f"already in training file {name!r}" if cid in have and cid not in seen
               else "listed more than once" if cid in seen else None)
        if why and why not in reasons.setdefault(cid, []):
            reasons[cid].append(why)
            duplicate_ids.add(cid)
        seen.add(cid)
    reasons = {cid: why for cid, why in reasons.items() if why}
    if reasons:
        everything = {cid: "; ".join(why) for cid, why in sorted(reasons.items())}
        lines = "\n".join(f"  {cid}: {why}" for cid, why in everything.items())
        what = []
        if ineligible_ids:
            what.append(f"{len(ineligible_ids)} ineligible")
        if duplicate_ids:
            what.append(f"{len(duplicate_ids)} duplicate")
        raise TrainingFileError(
            f"nothing was added to {name!r}: {' and '.join(what)} conversation(s):\n{lines}\n"
            f"Fix: remove them from the list (or enrich them) and add again.", everything)


def remove_conversations(ws: Workspace, name: str, ids: Iterable[str]) -> Version:
    """Remove members, all or none (an id that is not a member blocks the operation)."""
    gone = list(ids)
    if not gone:
        raise TrainingFileError("no conversations to remove. Fix: give the ids of members.")
    with _lock(ws, name):
        current = get_version(ws, name)
        have = set(current.member_ids)
        missing = {cid: f"not a member of {name!r}" for cid in gone if cid not in have}
        if missing:
            lines = "\n".join(f"  {cid}: {why}" for cid, why in sorted(missing.items()))
            raise TrainingFileError(f"nothing was removed from {name!r}:\n{lines}\nFix: remove only members.",
                                    missing)
        drop = set(gone)
        return _commit(ws, name, "remove", [c for c in current.member_ids if c not in drop],
                       current.split_ratios, current.split_salt, current)


def assign_splits(ws: Workspace, name: str, ratios: tuple[int, int, int] = DEFAULT_RATIOS,
                  salt: str = "") -> Version:
    """Split the members by `ratios` (train, validation, test) with `salt`; a new version."""
    check_ratios(ratios)
    with _lock(ws, name):
        current = get_version(ws, name)
        return _commit(ws, name, "split", current.member_ids, tuple(ratios), salt, current)


def _commit(ws: Workspace, name: str, change: str, ids: list[str], ratios: tuple, salt: str,
            current: Version | None, workers: int | None = None) -> Version:
    ids = sorted(ids)
    now = utcnow()
    number = (current.version if current else 0) + 1
    info = ws.sql("SELECT conversation_id, tier, arc_key, template_key, template_version FROM conversations "
                  "WHERE conversation_id IN (SELECT unnest(?)) ORDER BY conversation_id", [ids])
    keep = current.split_of if current is not None and change in ("add", "remove") else None
    grow = change == "add" or not (current and current.member_ids)  # members only join: grow the groups
    known = (groups_of(ws, name, current.version) if current and current.member_ids else {}) if grow else None
    assignment, clusters = split_members(ws, info, ratios, salt, keep, known=known, workers=workers)
    enrichment = ws.sql("SELECT DISTINCT enrichment_version FROM training_pairs WHERE conversation_id IN "
                        "(SELECT unnest(?)) ORDER BY 1", [ids])["enrichment_version"].to_list()
    templates = sorted({f"{k}@{v}" for k, v in zip(info["template_key"].to_list(),
                                                   info["template_version"].to_list(), strict=True)})
    ws.append("training_file_conversations", [
        {"name": name, "version": number, "conversation_id": row["conversation_id"],
         "split": assignment[row["conversation_id"]], "tier": row["tier"], "arc_key": row["arc_key"],
         "cluster": clusters[row["conversation_id"]], "created_at": now}
        for row in info.iter_rows(named=True)])
    splits = [assignment[c] for c in ids]
    row = {"name": name, "version": number, "change": change, "member_ids": ids,
           "splits": splits, "split_ratios": list(ratios), "split_salt": salt,
           "records_hash": records_hash(ws, ids, splits, name), "content_hash": None,
           "scaffolding_fingerprint": ws.scaffolding.fingerprint,
           "template_versions": orjson.dumps(templates, option=orjson.OPT_SORT_KEYS).decode(),
           "enrichment_version": ",".join(enrichment) or ENRICHMENT_VERSION, "created_at": now}
    ws.append("training_file_versions", [row])
    return _version(row)


def split_counts(ws: Workspace, name: str, version: int | None = None) -> pl.DataFrame:
    """Conversations per split and tier x arc stratum of a version."""
    v = get_version(ws, name, version)
    return ws.sql("SELECT tier, arc_key, split, count(*) AS conversations FROM training_file_conversations "
                  "WHERE name = ? AND version = ? GROUP BY ALL ORDER BY ALL", [name, v.version])
