"""What the Training files page shows, shaped for display: the files and their versions, the filter a
user builds, a blocked addition's list, an export's files, problems, token statistics and costs.
No Streamlit here: the page draws, these functions compute (and are tested without a browser)."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import orjson
import polars as pl

from brightrun.training_files import FilterMatch, TrainingFileError, versions
from brightrun.training_files.core import LEFT_OUT
from brightrun.training_files.export import Exported
from brightrun.training_files.export import token_counts as counts_of
from brightrun.workspace import Workspace

FILTER_FIELDS = {"personas": "persona_key", "arcs": "arc_key", "topics": "topic_key", "templates": "template_key",
                 "tiers": "tier", "statuses": "enrichment_status"}
"""The page's filter widgets (brightrun.explore.browse.filter_options keys) -> training-file filter columns."""

MIME = {".jsonl": "application/jsonl", ".json": "application/json", ".parquet": "application/vnd.apache.parquet",
        ".md": "text/markdown", ".yaml": "application/yaml"}


def saved_filter(chosen: dict[str, list[str]], min_quality: float | None) -> dict[str, object]:
    """The filter a user picked ({widget: values}) as add_conversations' `saved_filter`."""
    conditions: dict[str, object] = {FILTER_FIELDS[k]: list(v) for k, v in chosen.items() if v}
    if min_quality:
        conditions["min_quality"] = float(min_quality)
    return conditions


def parse_ids(text: str) -> list[str]:
    """Conversation ids pasted one per line (or separated by commas or spaces), in order."""
    return [part for part in text.replace(",", " ").split() if part]


def files_table(ws: Workspace) -> pl.DataFrame:
    from brightrun.training_files import list_training_files

    frame = list_training_files(ws)
    return frame.select(
        "name", "description", pl.col("version").alias("latest version"), "conversations",
        pl.col("content_hash").str.slice(0, 12).alias("built (content hash)"), "created_at")


def versions_table(ws: Workspace, name: str) -> pl.DataFrame:
    rows = [{"version": v.version, "change": v.change, "conversations": len(v.member_ids),
             "train": v.splits.count("train"), "validation": v.splits.count("validation"),
             "test": v.splits.count("test"), "ratios": "/".join(map(str, v.split_ratios)),
             "built (content hash)": (v.content_hash or "")[:12], "created_at": v.created_at}
            for v in reversed(versions(ws, name))]
    return pl.DataFrame(rows)


def left_out_table(match: FilterMatch) -> pl.DataFrame:
    """What adding by a filter leaves out: every conversation id with its reason."""
    return pl.DataFrame({"conversation_id": list(match.left_out),
                         "left out": [LEFT_OUT[kind] for kind, _ in match.left_out.values()],
                         "reason": [why for _, why in match.left_out.values()]},
                        schema={"conversation_id": pl.String, "left out": pl.String, "reason": pl.String})


def problems_table(error: TrainingFileError) -> pl.DataFrame:
    """A blocked change's list: every conversation id with its reason."""
    return pl.DataFrame({"conversation_id": list(error.problems), "reason": list(error.problems.values())},
                        schema={"conversation_id": pl.String, "reason": pl.String})


def headline(error: TrainingFileError) -> str:
    """The first line of the error and its fix, without the per-id list the table shows."""
    lines = str(error).splitlines()
    fix = next((line for line in lines if line.startswith("Fix:")), "")
    return f"{lines[0]} {fix}".strip()


def contracts_state(ws: Workspace) -> tuple[bool, str]:
    """(exports allowed without a reason, what to tell the user)."""
    from brightrun.validation import latest_report

    report = latest_report(ws)
    if report is None:
        return False, ("The data contracts have not run on this workspace, so an export needs a reason (it is "
                       "recorded with the export). Run them on the Quality page or with `brightrun validate`.")
    if not report.success:
        return False, (f"The last data-contract run ({report.run_at:%Y-%m-%d %H:%M} UTC) failed, so an export "
                       "needs a reason (it is recorded with the export). See the Quality page for what failed.")
    return True, f"Data contracts passed on {report.run_at:%Y-%m-%d %H:%M} UTC: exports are allowed."


DEFAULT_FORMAT = "openai_sft"
"""The export format offered first: OpenAI's chat SFT JSONL, the one most trainers read."""


def format_options() -> dict[str, str]:
    """Format name -> label: the default (OpenAI chat SFT) first, then SFT, preference and KTO formats."""
    from brightrun.exports import FORMATS

    order = {"sft": 0, "preference": 1, "kto": 2}
    specs = sorted(FORMATS.values(), key=lambda s: (s.name != DEFAULT_FORMAT, order.get(s.kind, 3), s.name))
    return {s.name: f"{s.name} · {s.consumer} ({s.kind})" for s in specs}


def describe_format(name: str) -> str:
    from brightrun.exports import FORMATS

    spec = FORMATS[name]
    source = ("one multi-turn record per member conversation" if spec.kind == "sft" else
              "the review's preference pairs (edited or better-rated answers) of the member conversations")
    return f"{spec.description}. Takes {source}."


@dataclass(frozen=True)
class Download:
    label: str
    file_name: str
    data: bytes
    mime: str


def downloads(done: Exported) -> list[Download]:
    """Each file of an export (data files first), then the whole export as one zip."""
    files = {Path(p) for p in done.files} | {done.folder / "brightrun_export.json"}
    return folder_downloads(done.folder, f"{done.name}-v{done.version}-{done.format}.zip", files)


def folder_downloads(folder: Path, zip_name: str, files: set[Path] | None = None) -> list[Download]:
    """Each of `files` (default: every file of the export folder), data files first, then the whole folder as one
    zip named `zip_name`."""
    everything = sorted(p for p in folder.rglob("*") if p.is_file())
    shown = sorted((p for p in (everything if files is None else files) if p.is_file()),
                   key=lambda p: (p.suffix not in (".jsonl", ".parquet"), str(p)))
    out = [Download(str(p.relative_to(folder)), p.name, p.read_bytes(), MIME.get(p.suffix, "application/octet-stream"))
           for p in shown]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for p in everything:
            archive.write(p, p.relative_to(folder))
    out.append(Download("everything (zip)", zip_name, buffer.getvalue(), "application/zip"))
    return out


@dataclass(frozen=True)
class LastExport:
    """An export the app made earlier, read back from its folder (after a reload, the page has no result in memory)."""

    name: str
    version: int
    format: str
    folder: Path
    exported_at: str
    valid: bool
    errors: int
    forced: str | None

    def summary(self) -> str:
        state = "passed every check of its consumer" if self.valid else f"had {self.errors:,} problem(s) by its consumer's rules"
        forced = f"; exported without passing data contracts, reason: {self.forced}" if self.forced else ""
        return (f"Last export of v{self.version}: {self.format}, {self.exported_at[:16].replace('T', ' ')} UTC; it "
                f"{state}{forced}.")

    def downloads(self) -> list[Download]:
        return folder_downloads(self.folder, f"{self.name}-v{self.version}-{self.format}.zip")


def last_export(ws: Workspace, name: str, version: int) -> LastExport | None:
    """The newest export of this training-file version the app wrote (`exports/<name>/v<N>/<format>/`, by the time
    in its brightrun_export.json), or None. An export folder without a readable record is passed over."""
    from brightrun.exports import FORMATS
    from brightrun.training_files.export import export_folder

    found = []
    for fmt in FORMATS:
        folder = export_folder(ws, name, version, fmt)  # checks the name
        try:
            record = orjson.loads((folder / "brightrun_export.json").read_bytes())
        except (OSError, orjson.JSONDecodeError):
            continue
        if isinstance(record, dict) and isinstance(record.get("exported_at"), str):
            found.append(LastExport(name, version, fmt, folder, record["exported_at"], bool(record.get("valid")),
                                    int(record.get("errors") or 0), record.get("forced")))
    return max(found, key=lambda e: e.exported_at, default=None)


def problems_frame(done: Exported) -> pl.DataFrame:
    rows = [{"severity": severity, "file": Path(p.file).name, "line": p.line, "record": p.record_id, "rule": p.rule,
             "problem": p.message, "fix": p.fix}
            for severity, items in (("error", done.validation.errors), ("warning", done.validation.warnings))
            for p in items]
    return pl.DataFrame(rows, schema={"severity": pl.String, "file": pl.String, "line": pl.Int64,
                                      "record": pl.String, "rule": pl.String, "problem": pl.String,
                                      "fix": pl.String})


def token_table(done: Exported) -> pl.DataFrame:
    splits = (done.validation.stats or {}).get("splits") or {}
    keep = ("examples", "total_tokens", "mean", "p95", "max", "over_limit", "limit")
    return pl.DataFrame([{"split": s, **{k: stats.get(k) for k in keep}} for s, stats in splits.items()])


def token_counts(done: Exported) -> str:
    """"exact (tiktoken o200k_base)" or "estimated": how the export's tokens were counted."""
    return counts_of(done.validation)


def no_cost_note(done: Exported) -> str:
    from brightrun.training_files.export import no_cost_note as note

    return note(done.format)


def cost_table(done: Exported) -> pl.DataFrame:
    return pl.DataFrame([{"model": c.model, "provider": c.provider, "epochs": c.epochs, "epochs rule": c.epochs_rule,
                          "charged tokens": c.charged_tokens, "token counts": c.token_counts,
                          "truncated": c.truncated_examples,
                          "$ / M tokens": c.usd_per_million_training_tokens, "estimated $": c.cost_usd}
                         for c in done.costs])
