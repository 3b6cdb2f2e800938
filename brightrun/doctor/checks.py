"""`brightrun doctor`: can each provider be used? Its key, the models the key may use and, when asked (`live`),
one tiny structured request through the provider's normal `complete` path.

Every provider gets a list of checks, each `ok`, `failed` or `not_checked`, whose message says what was
found, what could not be checked and why, and the fix. Keys are never printed or kept: every message goes
through `scrub`. A live probe is recorded in the workspace's `llm_calls` (action type `doctor_probe`) when a
workspace is given, so its cost shows with the rest of the spend.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from typing import Literal

import orjson
from pydantic import BaseModel, Field, computed_field

from brightrun import aio
from brightrun.doctor.messages import (
    KEY_VARIABLES,
    explain,
    is_alias_of,
    key_check,
    preview,
    resolved_base_url,
)
from brightrun.doctor.probe import (
    PROBE_ACTION,
    ProbeEstimate,
    default_model,
    estimate_probe,
    parse_probe,
    probe_request,
)
from brightrun.errors import BrightRunError, ProviderError
from brightrun.providers import PROVIDERS, get_provider
from brightrun.providers.base import Provider, ProviderRequest, ProviderResponse
from brightrun.providers.errors import scrub
from brightrun.providers.keys import key_may_go_to, resolve_key
from brightrun.providers.pricing import price_table
from brightrun.secrets import secret

TIMEOUT = 60.0
LIVE_CHECKS = ("request", "answer", "tokens and cost")

Status = Literal["ok", "failed", "not_checked"]


class Check(BaseModel):
    name: str
    status: Status
    message: str


class ProviderReport(BaseModel):
    provider: str
    model: str
    base_url: str | None = None
    live: bool = False
    checks: list[Check] = Field(default_factory=list)
    models: list[str] | None = Field(default=None, description="what the API listed, when it did")
    estimate: ProbeEstimate | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    call_id: str | None = Field(default=None, description="the probe's llm_calls row, when recorded")

    @computed_field
    @property
    def ok(self) -> bool:
        return not any(c.status == "failed" for c in self.checks)

    def rows(self) -> list[dict]:
        """The checks as table rows."""
        return [{"check": c.name, "status": c.status.replace("_", " "), "message": c.message} for c in self.checks]


class DoctorReport(BaseModel):
    providers: list[ProviderReport]
    skipped: dict[str, str] = Field(default_factory=dict, description="provider -> why it was not checked")

    @computed_field
    @property
    def exit_code(self) -> int:
        """0 when every check that ran passed, else 1."""
        return 0 if all(p.ok for p in self.providers) else 1


def configured_providers(base_url: str | None = None) -> tuple[list[str], dict[str, str]]:
    """(the providers set up here, {provider: why it is skipped}): scripted always; anthropic with a key;
    openai-compatible with OPENAI_BASE_URL, OPENAI_API_KEY or a base URL."""
    chosen, skipped = ["scripted"], {}
    if secret("ANTHROPIC_API_KEY"):
        chosen.append("anthropic")
    else:
        skipped["anthropic"] = "ANTHROPIC_API_KEY is not set (check it anyway with --provider anthropic)"
    if base_url or os.environ.get("OPENAI_BASE_URL") or secret("OPENAI_API_KEY"):
        chosen.append("openai-compatible")
    else:
        skipped["openai-compatible"] = ("neither OPENAI_BASE_URL nor OPENAI_API_KEY is set and no --base-url was "
                                        "given (check it anyway with --provider openai-compatible)")
    return chosen, skipped


class _Doctor:
    """One provider's checks, in order; every message is scrubbed of the key."""

    def __init__(self, report: ProviderReport, key: str | None, ws, announce) -> None:
        self.report, self.key, self.ws, self.announce = report, key, ws, announce
        self.blocker: str | None = None  # why sending a probe is pointless (the key or the server failed)

    def add(self, name: str, status: Status, message: str) -> None:
        self.report.checks.append(Check(name=name, status=status, message=scrub(message, [self.key])))

    def skip(self, names, why: str) -> None:
        for name in names:
            self.add(name, "not_checked", f"not checked: {why}")

    async def models(self, provider: Provider) -> None:
        model, url = self.report.model, self.report.base_url
        try:
            ids = await provider.list_models()
        except ProviderError as exc:
            quiet = exc.error_type == "not_found" and provider.name == "openai-compatible"
            self.add("models", "not_checked" if quiet else "failed",
                     f"could not list models: {explain(exc, 'models', provider.name, url, model)}")
            if exc.error_type in ("authentication", "permission", "connection_error"):
                self.blocker = f"listing models failed ({exc.error_type.replace('_', ' ')}); fix that first"
            self.skip(["model"], f"no model list to look {model} up in")
            return
        if ids is None:
            self.skip(["models", "model"], "this API does not list models")
            return
        self.report.models = ids
        self.add("models", "ok", f"{len(ids)} model(s) listed for this key: {preview(ids)}.")
        match = model if model in ids else next((m for m in ids if is_alias_of(model, m)), None)
        if match:
            self.add("model", "ok", f"{model} is among them" + (f" (as {match})." if match != model else "."))
        else:
            self.add("model", "failed", f"{model} is not among the {len(ids)} model(s) listed: it may be misspelt, "
                                        f"retired or not enabled for this key. Fix: pass --model with one of "
                                        f"{preview(ids)} (or pick it in the form).")

    async def probe(self, provider: Provider) -> None:
        estimate = estimate_probe(provider.name, self.report.model, self.ws)
        self.report.estimate = estimate
        if estimate.cost_usd is None:
            self.add("probe cost", "not_checked", f"{estimate.summary}. Fix: add its price to prices.yaml "
                                                  f"(the workspace's overrides the shipped one); local servers are free.")
        else:
            self.add("probe cost", "ok", f"estimated {estimate.summary}.")
        if self.blocker:
            self.skip(LIVE_CHECKS, f"no probe sent: {self.blocker}")
            return
        if self.announce:
            self.announce(self.report, estimate)
        request = probe_request(self.report.model)
        started = time.perf_counter()
        try:
            response = await provider.complete(request)
        except ProviderError as exc:
            self.add("request", "failed", "the probe was not accepted: "
                     + explain(exc, "probe", provider.name, self.report.base_url, self.report.model))
            self.skip(LIVE_CHECKS[1:], "no answer came back (a refused request is not billed)")
            self.record(provider, request, None, scrub(str(exc), [self.key]), started)
            return
        how = ("as structured output (output_config json_schema)" if provider.name == "anthropic"
               else "as response_format json_schema")
        answered = f" (the API answered as {response.model})" if response.model != request.model else ""
        self.add("request", "ok", f"accepted: model name {request.model} and the probe's output schema {how}; "
                                  f"answered in {response.latency_ms:,.0f} ms{answered}.")
        error = self.answer(provider, response)
        self.cost(response)
        self.record(provider, request, response, error, started)

    def answer(self, provider: Provider, response: ProviderResponse) -> str | None:
        try:
            parsed = parse_probe(response)
        except ValueError as exc:
            fix = ("the schema was sent as structured output, so this is unexpected: run again, and if it repeats "
                   "try another --model" if provider.name == "anthropic" else
                   "this server or model may ignore response_format json_schema; use one that supports structured "
                   "output (vLLM, llama.cpp and Ollama do with grammars), or expect correction retries")
            self.add("answer", "failed", f"the answer could not be used: {exc}; it was {response.text[:200]!r}. "
                                         f"Fix: {fix}.")
            return str(exc)
        self.add("answer", "ok", f"parsed and validated against the probe model: ok={str(parsed.ok).lower()}, "
                                 f"word={parsed.word!r}.")
        return None

    def cost(self, response: ProviderResponse) -> None:
        report = self.report
        report.input_tokens, report.output_tokens = response.input_tokens, response.output_tokens
        table = price_table(self.ws.root if self.ws is not None else None)
        tokens = f"{response.input_tokens:,} input + {response.output_tokens:,} output tokens"
        if not response.input_tokens and not response.output_tokens:
            tokens = "the server reported no token usage"
        where = (f" Recorded in llm_calls of {self.ws.root} (action type {PROBE_ACTION})." if self.ws is not None
                 else " Not recorded: no workspace given.")
        if table.knows(response.model):
            report.cost_usd = round(table.cost(response.model, response.input_tokens, response.output_tokens), 6)
            self.add("tokens and cost", "ok", f"{tokens}: ${report.cost_usd:.6f}.{where}")
        else:
            self.add("tokens and cost", "not_checked", f"{tokens}; cost unknown: {response.model} is not in the "
                                                       f"price table. Fix: add its price to prices.yaml.{where}")

    def record(self, provider: Provider, request: ProviderRequest, response: ProviderResponse | None,
               error: str | None, started: float) -> None:
        if self.ws is None:
            return
        from brightrun.models import LLMCall
        from brightrun.workspace import utcnow

        self.report.call_id = call_id = f"doctor-{uuid.uuid4().hex[:16]}"
        r = response
        self.ws.append_models("llm_calls", [LLMCall(
            call_id=call_id, action_type=PROBE_ACTION, provider=provider.name,
            model=r.model if r else request.model, request=orjson.dumps(request.for_log()).decode(),
            response=r.text if r else "", input_tokens=r.input_tokens if r else 0,
            output_tokens=r.output_tokens if r else 0, cost_usd=self.report.cost_usd or 0.0,
            latency_ms=r.latency_ms if r else (time.perf_counter() - started) * 1000,
            status="error" if error else "ok", error=error, created_at=utcnow())])


def _scripted(live: bool) -> ProviderReport:
    report = ProviderReport(provider="scripted", model="scripted-1", live=live)
    report.checks = [
        Check(name="key", status="ok", message="not needed: the scripted provider runs offline."),
        Check(name="models", status="ok", message="scripted-1, its only model: deterministic and free."),
    ]
    if live:
        report.checks.append(Check(name="request", status="ok", message="nothing to send: scripted answers are "
                                   "composed offline, cost nothing and are always available."))
    return report


async def check_provider(name: str, *, model: str | None = None, base_url: str | None = None, live: bool = False,
                         ws=None, announce: Callable[[ProviderReport, ProbeEstimate], None] | None = None,
                         api_key: str | None = None, trusted_base_url: bool = False) -> ProviderReport:
    """Check one provider. `announce(report, estimate)` is called just before a live probe is sent. `api_key`: a
    key typed with `base_url`; without it the server's key goes only where brightrun.providers.keys allows
    (`trusted_base_url`: the base URL comes from the operator, e.g. the command line)."""
    if name not in PROVIDERS:
        raise BrightRunError(f"unknown provider {name!r}. Fix: use one of {', '.join(PROVIDERS)}.")
    if name == "scripted":
        return _scripted(live)
    key = resolve_key(name, base_url, typed_key=api_key, trusted=trusted_base_url)
    withheld = not key and not key_may_go_to(name, base_url, trusted=trusted_base_url)
    url = resolved_base_url(name, base_url)
    report = ProviderReport(provider=name, model=model or default_model(name), base_url=scrub(url, [key]),
                            live=live)
    doctor = _Doctor(report, key, ws, announce)
    status, message, go_on = key_check(name, key, url, withheld=withheld)
    doctor.add("key", status, message)
    if not go_on:
        doctor.skip(["models", "model", *(["probe cost", *LIVE_CHECKS] if live else LIVE_CHECKS[:1])],
                    f"without {KEY_VARIABLES[name]} nothing can be asked of {url}")
        return report
    provider = get_provider(name, api_key=key, base_url=base_url or None, timeout=TIMEOUT)
    try:
        await doctor.models(provider)
        if live:
            await doctor.probe(provider)
        else:
            estimate = estimate_probe(name, report.model, ws)
            report.estimate = estimate
            doctor.skip(LIVE_CHECKS[:1], f"no request sent; --live (or the live check button) sends one tiny "
                                         f"structured request, {estimate.summary}")
    finally:
        await provider.aclose()
    return report


def run_doctor(providers: list[str] | None = None, *, model: str | None = None, base_url: str | None = None,
               live: bool = False, ws=None, announce=None, api_key: str | None = None,
               trusted_base_url: bool = False) -> DoctorReport:
    """Check `providers` (default: every configured one, saying which were skipped and why). `model` and
    `base_url` apply to the named providers; without names, `base_url` goes to openai-compatible only. The
    server's key goes to `base_url` only when `trusted_base_url` (the operator typed it) or the operator set it;
    otherwise only `api_key`, typed with it, does."""
    if providers:
        unknown = [p for p in providers if p not in PROVIDERS]
        if unknown:
            raise BrightRunError(f"unknown provider {unknown[0]!r}. Fix: use one of {', '.join(PROVIDERS)}.")
        chosen, skipped = list(dict.fromkeys(providers)), {}
    else:
        chosen, skipped = configured_providers(base_url)

    def url_for(name: str) -> str | None:
        return base_url if providers or name == "openai-compatible" else None

    reports = [aio.run(check_provider(name, model=model, base_url=url_for(name), live=live, ws=ws,
                                      announce=announce, api_key=api_key, trusted_base_url=trusted_base_url))
               for name in chosen]
    return DoctorReport(providers=reports, skipped=skipped)
