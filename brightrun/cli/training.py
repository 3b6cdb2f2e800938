"""`brightrun training-file create|add|remove|split|show|build|export|validate`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer

from brightrun.cli.common import JsonOpt, WorkersOpt, WorkspaceOpt, console, open_workspace, out, print_frame

training_app = typer.Typer(help="Training files: versioned sets of enriched conversations, split without leaks, "
                                "exported to every fine-tuning stack.", no_args_is_help=True)
NameArg = Annotated[str, typer.Argument(help="The training file's name.")]
VersionOpt = Annotated[int | None, typer.Option(help="A past version (default: the latest).")]


@training_app.command("create")
def create(name: NameArg, workspace: WorkspaceOpt = None,
           description: Annotated[str, typer.Option(help="What it is for.")] = "") -> None:
    """Create an empty training file (version 1)."""
    from brightrun.training_files import create_training_file

    create_training_file(open_workspace(workspace), name, description)
    console.print(f"Created training file [bold]{name}[/].")


@training_app.command("add")
def add(
    name: NameArg,
    workspace: WorkspaceOpt = None,
    conversation: Annotated[list[str] | None, typer.Option("--id", help="A conversation id (repeat).")] = None,
    ids_file: Annotated[Path | None, typer.Option(help="A file with one conversation id per line.")] = None,
    persona: Annotated[list[str] | None, typer.Option(help="Filter: persona key (repeat).")] = None,
    arc: Annotated[list[str] | None, typer.Option(help="Filter: arc key (repeat).")] = None,
    topic: Annotated[list[str] | None, typer.Option(help="Filter: topic key (repeat).")] = None,
    tier: Annotated[list[str] | None, typer.Option(help="Filter: tier (repeat).")] = None,
    enrichment_status: Annotated[list[str] | None, typer.Option(
        help="Filter: enrichment status (repeat): completed, not_started, enrichment_in_progress, failed.")] = None,
    min_quality: Annotated[float | None, typer.Option(help="Filter: quality score at least this.")] = None,
    workers: WorkersOpt = None,
) -> None:
    """Add conversations by id (all or nothing: any ineligible or duplicate id blocks the whole addition,
    and every one is listed with its reason) or by a filter (its eligible non-members are added; what it
    leaves out, already members or not enriched, is listed with the reason)."""
    from brightrun.training_files import add_matching
    from brightrun.workspace.pool import check_workers

    if workers is not None:
        check_workers(workers)
    ids = list(conversation or [])
    if ids_file:
        ids += [line.strip() for line in ids_file.read_text().splitlines() if line.strip()]
    conditions = {k: v for k, v in {"persona_key": persona, "arc_key": arc, "topic_key": topic, "tier": tier,
                                    "enrichment_status": enrichment_status, "min_quality": min_quality}.items() if v}
    if not ids and not conditions:
        raise typer.BadParameter("give conversation ids (--id, --ids-file) or a filter (--persona, --arc, ...)")
    with console.status(f"adding to {name}: checking the conversations, finding their near duplicates among the "
                        "members, splitting"):
        v, match = add_matching(open_workspace(workspace), name, ids or None, saved_filter=conditions or None,
                                workers=workers)
    if match is not None:
        console.print(f"Filter: added {match.label()}.")
        for cid, (_, why) in list(match.left_out.items())[:20]:
            out.print(f"  left out {cid}: {why}", markup=False, soft_wrap=True)
        if len(match.left_out) > 20:
            out.print(f"  ... and {len(match.left_out) - 20:,} more left out", markup=False)
    console.print(f"{name} is now version {v.version}: {len(v.member_ids):,} conversation(s).")


@training_app.command("remove")
def remove(name: NameArg, conversation: Annotated[list[str], typer.Option("--id", help="A member (repeat).")],
           workspace: WorkspaceOpt = None) -> None:
    """Remove members (all or nothing)."""
    from brightrun.training_files import remove_conversations

    v = remove_conversations(open_workspace(workspace), name, conversation)
    console.print(f"{name} is now version {v.version}: {len(v.member_ids):,} conversation(s).")


@training_app.command("split")
def split(name: NameArg, workspace: WorkspaceOpt = None,
          ratios: Annotated[tuple[int, int, int], typer.Option(help="Train, validation, test.")] = (80, 10, 10),
          salt: Annotated[str, typer.Option(help="Changes the assignment.")] = "") -> None:
    """Split again (grouped by near-duplicate cluster, stratified by tier and arc): a new version."""
    from brightrun.training_files import assign_splits

    v = assign_splits(open_workspace(workspace), name, ratios, salt)
    counts = {s: v.splits.count(s) for s in ("train", "validation", "test")}
    console.print(f"{name} version {v.version}: " + ", ".join(f"{s} {n:,}" for s, n in counts.items()))


@training_app.command("show")
def show(name: NameArg, workspace: WorkspaceOpt = None, version: VersionOpt = None, json_out: JsonOpt = False) -> None:
    """Its versions, the chosen version's splits by tier and arc, and the leakage report."""
    import polars as pl

    from brightrun.training_files import split_counts, stored_leakage_report, versions

    ws = open_workspace(workspace, create=False)
    history = pl.DataFrame([{"version": v.version, "change": v.change, "conversations": len(v.member_ids),
                             "content_hash": v.content_hash, "created_at": str(v.created_at)}
                            for v in versions(ws, name)])
    leaks = stored_leakage_report(ws, name, version)
    if json_out:
        sys.stdout.write(orjson.dumps({"versions": history.to_dicts(), "splits": split_counts(ws, name, version).to_dicts(),
                                       "leaks": leaks.to_dicts()}, default=str).decode() + "\n")
        return
    print_frame(history, False)
    print_frame(split_counts(ws, name, version), False)
    out.print(f"Leakage: {leaks.height} near-duplicate pair(s) across splits.", markup=False)


@training_app.command("build")
def build(name: NameArg, workspace: WorkspaceOpt = None, version: VersionOpt = None,
          workers: WorkersOpt = None) -> None:
    """Write the full training JSON and its JSONL together (a past version rebuilds byte for byte)."""
    from brightrun.training_files import build_version
    from brightrun.workspace.pool import check_workers

    workers = check_workers(workers)
    with console.status(f"building {name}: writing the training JSON and JSONL"):
        built = build_version(open_workspace(workspace), name, version, workers=workers)
    console.print(f"Wrote {built.json_path} and {built.jsonl_path} (content {built.content_hash[:12]}).")


@training_app.command("export")
def export(
    name: NameArg,
    fmt: Annotated[str, typer.Argument(help="openai_sft, bedrock, trl_sft, axolotl, sharegpt, alpaca, "
                                            "llama_factory, hf_parquet, vertex; preference: openai_dpo, "
                                            "trl_dpo, llama_factory_preference; trl_kto, llama_factory_kto")],
    folder: Annotated[Path, typer.Argument(help="Where to write the export.")],
    workspace: WorkspaceOpt = None,
    version: VersionOpt = None,
    force: Annotated[str | None, typer.Option("--force", help="Export although the data contracts failed; "
                                                              "the reason is recorded.")] = None,
    price: Annotated[list[str] | None, typer.Option(
        "--price", help="A target model to estimate the cost for (repeat for more; default: the format's targets "
                        "priced by default, which leave out gpt-3.5-turbo-0125).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Export a version, validate it by its consumer's rules, and estimate tokens and cost; exit 1 when any
    rule of the consumer fails. Preference and KTO formats take the review's preference pairs (edits,
    ratings) whose both answers belong to member conversations of one split."""
    from brightrun.training_files.export import export_version, no_cost_note, token_counts

    with console.status(f"exporting {name} as {fmt}") as status:
        done = export_version(open_workspace(workspace), name, fmt, folder, version=version, force_reason=force,
                             models=price or None, progress=status.update)
    if json_out:
        sys.stdout.write(orjson.dumps({"files": [str(p) for p in done.files], "valid": done.validation.ok,
                                       "errors": [e.model_dump() for e in done.validation.errors[:50]],
                                       "token_counts": token_counts(done.validation),
                                       "costs": [c.model_dump() for c in done.costs]}, default=str).decode() + "\n")
        if not done.validation.ok:
            raise typer.Exit(1)
        return
    console.print(f"Exported {name} v{done.version} as {fmt} to {folder}: {len(done.files)} file(s); "
                  + ("[green]valid[/]" if done.validation.ok else f"[red]{len(done.validation.errors)} problem(s)[/]"))
    for problem in done.validation.errors[:20]:
        out.print(f"  {problem}", markup=False, soft_wrap=True)
    out.print(f"  token counts: {token_counts(done.validation)}", markup=False, soft_wrap=True)
    priced = [c for c in done.costs if c.cost_usd is not None]
    if not done.costs:
        out.print(f"  {no_cost_note(fmt)}", markup=False)
    for c in priced:
        out.print(f"  {c.model}: {c.epochs} epoch(s), {c.charged_tokens:,} charged tokens ({c.token_counts}), "
                  f"about ${c.cost_usd:,.2f}", markup=False, soft_wrap=True)
    if not done.validation.ok:  # written, but the consumer would refuse or skip records: not done
        out.print(f"error: the export breaks {len(done.validation.errors)} rule(s) of its consumer. Fix: correct "
                  "what is listed above and export again.", markup=False)
        raise typer.Exit(1)


@training_app.command("validate")
def validate(fmt: Annotated[str, typer.Argument(help="The export's format.")],
             folder: Annotated[Path, typer.Argument(help="The export folder (or files).")],
             json_out: JsonOpt = False) -> None:
    """Check an export folder by its consumer's rules; exit 1 on any error."""
    from brightrun.exports import FORMATS

    if fmt not in FORMATS:
        raise typer.BadParameter(f"unknown format {fmt!r}; use one of {', '.join(sorted(FORMATS))}")
    result = FORMATS[fmt].validator(folder)
    if json_out:
        sys.stdout.write(result.model_dump_json() + "\n")
    else:
        out.print(f"{fmt}: {'valid' if result.ok else f'{len(result.errors)} problem(s)'}, "
                  f"{len(result.warnings)} warning(s)", markup=False)
        for problem in [*result.errors, *result.warnings][:30]:
            out.print(f"  {problem}", markup=False, soft_wrap=True)
    if not result.ok:
        raise typer.Exit(1)
