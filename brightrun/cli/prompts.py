"""`brightrun prompts list|label|unlabel|diff`: the prompt registry."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from brightrun.cli.common import JsonOpt, WorkspaceOpt, console, open_workspace, out, print_frame

prompts_app = typer.Typer(help="Prompt template versions: labels, outcomes, diffs.", no_args_is_help=True)


@prompts_app.command("list")
def list_versions(
    template: Annotated[str | None, typer.Argument(help="One template key (default: all).")] = None,
    workspace: WorkspaceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Every template version with its labels and outcomes (conversations, quality, thumbs-up rate, mean
    rating, edit rate, failure rate, tokens, cost)."""
    from brightrun.prompts import versions

    frame = versions(open_workspace(workspace, create=False), template)
    columns = ["template_key", "version", "labels", "is_current", "conversations", "scripted_share", "mean_quality", "thumbs_up_rate",
               "mean_rating", "edit_rate", "failure_rate", "tokens", "cost_usd"]
    print_frame(frame if json_out else frame.select(columns), json_out)


@prompts_app.command("label")
def label(
    template: Annotated[str, typer.Argument(help="The template key.")],
    version: Annotated[str, typer.Argument(help="The version (content hash) to label.")],
    name: Annotated[str, typer.Argument(help="The label, e.g. production or candidate.")],
    workspace: WorkspaceOpt = None,
    by: Annotated[str, typer.Option(help="Who sets it (kept in the history).")] = "",
    note: Annotated[str, typer.Option(help="Why (kept in the history).")] = "",
) -> None:
    """Point a label at a version; the label leaves the version that held it."""
    from brightrun.prompts import set_label

    set_label(open_workspace(workspace), template, version, name, by=by, note=note)
    console.print(f"{template}: {name} -> {version}")


@prompts_app.command("unlabel")
def unlabel(
    template: Annotated[str, typer.Argument(help="The template key.")],
    name: Annotated[str, typer.Argument(help="The label to remove.")],
    workspace: WorkspaceOpt = None,
) -> None:
    """Remove a label from a template."""
    from brightrun.prompts import remove_label

    remove_label(open_workspace(workspace), template, name)
    console.print(f"{template}: {name} removed")


@prompts_app.command("diff")
def diff_command(
    template: Annotated[str, typer.Argument(help="The template key.")],
    version_a: Annotated[str, typer.Argument(help="The first version.")],
    version_b: Annotated[str, typer.Argument(help="The second version.")],
    workspace: WorkspaceOpt = None,
) -> None:
    """The two versions' text as a unified diff, and their metrics side by side."""
    from brightrun.prompts import diff

    d = diff(open_workspace(workspace, create=False), template, version_a, version_b)
    for title, lines in (("system prompt", d.system_diff), ("body", d.body_diff)):
        out.print(f"--- {title}: " + ("no change" if not lines else f"{len(lines)} diff line(s)"), markup=False)
        if lines:
            sys.stdout.write("\n".join(lines) + "\n")
    print_frame(d.metrics, False)
