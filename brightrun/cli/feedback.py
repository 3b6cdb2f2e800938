"""`brightrun feedback export` and `brightrun datasets build|list|show`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer

from brightrun.cli.common import JsonOpt, WorkspaceOpt, console, open_workspace, out

feedback_app = typer.Typer(help="Human feedback: export every judgement, or only the current ones.",
                           no_args_is_help=True)
datasets_app = typer.Typer(help="Training datasets from feedback and imported app logs.", no_args_is_help=True)


@feedback_app.command("export")
def export(
    file: Annotated[Path, typer.Argument(help="Where to write: .jsonl, .csv or .parquet.")],
    workspace: WorkspaceOpt = None,
    latest: Annotated[bool, typer.Option("--latest", help="Only each reviewer's current judgement of each "
                                                          "target (default: the whole history).")] = False,
    source: Annotated[str | None, typer.Option(help="Only 'review' (the app) or 'import' (app logs).")] = None,
) -> None:
    """Export feedback with each target's original response beside any edit."""
    from brightrun.feedback import export_feedback

    ws = open_workspace(workspace)
    rows = export_feedback(ws, file, latest_only=latest, source=source)
    console.print(f"Wrote {rows:,} judgement(s) to {file}.")


@datasets_app.command("build")
def build(
    name: Annotated[str, typer.Argument(help="The dataset's name (its folder under datasets/).")],
    workspace: WorkspaceOpt = None,
    kind: Annotated[str, typer.Option(help="sft (positive feedback), preference (edits and differently rated "
                                           "answers) or app_steps (input -> output per imported step).")] = "sft",
    source: Annotated[str, typer.Option(help="all, review (generated conversations) or import (app logs).")] = "all",
    action_type: Annotated[list[str] | None, typer.Option(help="app_steps: only this step (repeat).")] = None,
    split: Annotated[tuple[int, int, int], typer.Option(help="Train, validation and test shares.")] = (80, 10, 10),
    salt: Annotated[str, typer.Option(help="Changes which groups land in which split.")] = "",
    redact_pii: Annotated[bool, typer.Option("--redact-pii/--keep-pii", help="Redact e-mails, phones, card and "
                                             "account numbers, IPs and addresses in text from app logs "
                                             "(recorded in the manifest).")] = True,
    json_out: JsonOpt = False,
) -> None:
    """Build a dataset: splits by a hash of each conversation or session, every example traceable to its
    record and feedback. Rebuilding with the same options gives the same files."""
    from brightrun.datasets import DatasetSpec, build_dataset

    ws = open_workspace(workspace)
    spec = DatasetSpec(name=name, kind=kind, source=source, action_types=action_type or [], ratios=split,
                       salt=salt, redact_pii=redact_pii)
    result = build_dataset(ws, spec)
    if json_out:
        sys.stdout.write(result.model_dump_json() + "\n")
        return
    console.print(f"Built [bold]{name}[/] ({kind}) in {result.path}: {result.examples:,} example(s).")
    for part, splits in sorted(result.counts.items()):
        label = "" if part == "all" else f"{part}: "
        out.print(f"  {label}" + ", ".join(f"{s} {n:,}" for s, n in splits.items()), markup=False, soft_wrap=True)
    quality = ", ".join(f"{s} {q:.2f}" for s, q in result.mean_quality.items() if q is not None)
    if quality:
        out.print(f"  mean quality: {quality}", markup=False, soft_wrap=True)
    for reason, n in result.excluded.items():
        out.print(f"  left out: {n:,} ({reason})", markup=False, soft_wrap=True)
    if result.redactions:
        out.print("  redacted: " + ", ".join(f"{k} {n:,}" for k, n in sorted(result.redactions.items())), markup=False, soft_wrap=True)
    elif not redact_pii:
        out.print("  personal data NOT redacted (--keep-pii; recorded in the manifest)", markup=False, soft_wrap=True)


@datasets_app.command("list")
def list_command(workspace: WorkspaceOpt = None, json_out: JsonOpt = False) -> None:
    """The built datasets, newest first."""
    from brightrun.datasets import list_datasets

    found = list_datasets(open_workspace(workspace, create=False))
    if json_out:
        sys.stdout.write(orjson.dumps([d.model_dump(mode="json") for d in found]).decode() + "\n")
        return
    if not found:
        console.print("No datasets yet. Build one with `brightrun datasets build NAME`.")
    for d in found:
        splits = {s: sum(p.get(s, 0) for p in d.counts.values()) for s in ("train", "validation", "test")}
        out.print(f"{d.spec.name}: {d.spec.kind}, {d.examples:,} examples ({', '.join(f'{k} {v:,}' for k, v in splits.items())}), "
                  f"PII {'redacted' if d.spec.redact_pii else 'kept'}, built {d.built_at[:16]}", markup=False, soft_wrap=True)
