"""`brightrun doctor`: can each provider be used? Its key, its models and, with --live, one tiny request."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from brightrun.cli.common import JsonOpt, WorkspaceOpt, console, open_workspace, out

STYLES = {"ok": "green", "failed": "red", "not_checked": "yellow"}


def doctor_command(
    provider: Annotated[list[str] | None, typer.Option(
        "--provider", "-p", help="scripted, anthropic or openai-compatible (repeat; default: every configured "
                                 "one: scripted, anthropic with a key, openai-compatible with OPENAI_BASE_URL, "
                                 "OPENAI_API_KEY or --base-url).")] = None,
    model: Annotated[str | None, typer.Option(help="The model to check (default: the provider's default).")] = None,
    base_url: Annotated[str | None, typer.Option(
        help="The base URL (applies to the --provider named; without one, to openai-compatible).")] = None,
    live: Annotated[bool, typer.Option(
        "--live", help="Also send one tiny structured request per provider; its estimated cost is shown first.")] = False,
    json_out: JsonOpt = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """Check each provider: the key is present, the models it can use (and whether --model is one), and with
    --live one tiny structured request: schema and model name accepted, answer parsed, tokens and cost.
    Exits 0 when every check that ran passed, 1 when one failed (a missing key included, for a provider
    named with --provider), 2 on a usage error. With a workspace the live probe is recorded in llm_calls and
    the workspace's prices.yaml is used. Keys are never shown."""
    from brightrun.doctor import run_doctor
    from brightrun.providers import PROVIDERS

    for name in provider or []:
        if name not in PROVIDERS:
            raise typer.BadParameter(f"unknown provider {name!r}. Fix: use one of {', '.join(PROVIDERS)}.",
                                     param_hint="--provider")
    ws = open_workspace(workspace) if workspace else None
    report = run_doctor(provider, model=model, base_url=base_url, live=live, ws=ws, announce=_announce,
                        trusted_base_url=True)  # a --base-url typed at the shell is the operator's
    if json_out:
        sys.stdout.write(report.model_dump_json() + "\n")
    else:
        _print(report)
    if report.exit_code:
        raise typer.Exit(report.exit_code)


def _announce(report, estimate) -> None:
    console.print(escape(f"Sending one probe to {report.provider} ({report.model}): {estimate.summary}."),
                  soft_wrap=True)


def _print(report) -> None:
    for provider in report.providers:
        where = f" at {provider.base_url}" if provider.base_url else ""
        table = Table(title=escape(f"{provider.provider}: {provider.model}{where}"), title_justify="left")
        table.add_column("check", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("message", overflow="fold")
        for check in provider.checks:
            style = STYLES[check.status]
            table.add_row(check.name, f"[{style}]{check.status.replace('_', ' ')}[/]", escape(check.message))
        out.print(table)
    for name, why in report.skipped.items():
        out.print(escape(f"skipped {name}: {why}"), soft_wrap=True)
    failed = sum(c.status == "failed" for p in report.providers for c in p.checks)
    out.print("[green]Every check that ran passed.[/]" if not failed else f"[red]{failed} check(s) failed.[/]")
