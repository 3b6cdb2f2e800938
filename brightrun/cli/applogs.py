"""`brightrun import-log`: import a production app's log (JSONL, CSV or Parquet)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer

from brightrun.cli.common import JsonOpt, WorkspaceOpt, console, open_workspace, out, progress_bar

SHOWN_ERRORS = 20


def say(text: str, **options) -> None:
    out.print(text, soft_wrap=True, **options)  # one line per fact, whatever the terminal's width


def import_log_command(
    file: Annotated[Path, typer.Argument(help="The log: .jsonl, .csv, .tsv or .parquet.")],
    workspace: WorkspaceOpt = None,
    map_: Annotated[list[str] | None, typer.Option(
        "--map", "-m", help="field=column, repeatable: which column holds a field (the rest are guessed from "
                            "common names). Fields: action_type, input, output (required), call_id, user_id, "
                            "session_id, category, model, input_tokens, output_tokens, latency_ms, helpful, "
                            "rating, feedback_text, created_at, feedback_at. `field=` leaves a field out.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Import an app's LLM-call log: good rows become llm_calls (and feedback), bad rows are reported by
    line; importing the same rows again adds nothing. Exits 1 only if no row could be imported.

    Lines are 1-based, as an editor shows them: JSONL counts every line (blank ones too); in a CSV the
    header is line 1, so the first data row is line 2; in Parquet the line is the row number. Personal
    data (e-mails, phones, card and account numbers, IPs, street addresses) is counted per column."""
    from brightrun.applogs import guess_mapping, import_log, inspect_log, parse_map_options

    overrides = parse_map_options(map_ or [])
    mapping = guess_mapping(inspect_log(file)[1], overrides)
    ws = open_workspace(workspace)
    with progress_bar() as progress:
        task = progress.add_task("importing", total=None, extra="")

        def on_progress(p) -> None:
            progress.update(task, completed=p.done, total=p.total,
                            extra=f"{p.rows:,} rows, {p.imported:,} good, {p.bad_rows:,} bad")

        result = import_log(ws, file, mapping, progress=on_progress)
    if json_out:
        sys.stdout.write(orjson.dumps(result.to_dict(errors=SHOWN_ERRORS), default=str).decode() + "\n")
    else:
        _report(result)
    if result.imported == 0:
        raise typer.Exit(1)


def _report(result) -> None:
    mapped = ", ".join(f"{f}<-{c}" for f, c in result.mapping.items())
    say(f"[bold]Imported[/] {Path(result.file).name} ({result.format}) as {result.import_id} in "
              f"{result.seconds:,.1f} s")
    say(f"  mapping: {mapped}")
    say(f"  rows {result.rows:,}: {result.imported:,} good ({result.new_calls:,} new calls, "
              f"{result.already_present:,} already present, {result.duplicates_in_file:,} repeated in the file), "
              f"{result.bad_rows:,} bad")
    say(f"  feedback: {result.feedback_rows:,} rows with feedback, {result.new_feedback:,} new, "
              f"{result.updated_feedback:,} updated")
    if result.nothing_new and result.imported:
        say("  [yellow]nothing new[/]: every good row was already imported.")
    if result.action_types:
        say("  action types: " + ", ".join(f"{k} {v:,}" for k, v in sorted(result.action_types.items())))
    if result.bad_rows:
        say(f"[bold red]Bad rows[/] ({result.bad_rows:,}, {result.error_count:,} problems; "
                  f"all in the import_errors view):")
        for error in result.errors[:SHOWN_ERRORS]:
            say(f"  {error}", markup=False, highlight=False)
        if result.error_count > SHOWN_ERRORS:
            say(f"  ... and {result.error_count - SHOWN_ERRORS:,} more: brightrun sql \"SELECT * FROM "
                      f"import_errors WHERE import_id = '{result.import_id}' ORDER BY line\"", markup=False)
    found = {c: {k: n for k, n in kinds.items() if n} for c, kinds in result.pii.items()}
    if any(found.values()):
        say("[bold]Personal data found[/] (redacted in anything built from this log unless turned off):")
        for column, kinds in found.items():
            if kinds:
                say(f"  {column}: " + ", ".join(f"{k} {n:,}" for k, n in kinds.items()))
    else:
        say("No personal data found in " + (", ".join(result.pii) or "the text columns") + ".")
    if result.imported == 0:
        console.print("[red]No row could be imported.[/] Fix the rows above (or the mapping, --map) and "
                      "import again.")
