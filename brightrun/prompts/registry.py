"""The prompt registry: every template version (immutable, named by its content hash) with labels such as
`production` or `candidate`, its outcomes (conversations, tokens, cost, latency, quality, thumbs-up rate,
mean rating, edit rate, failure rate), and a side-by-side diff of two versions with their metrics."""

from __future__ import annotations

import difflib
import uuid
from dataclasses import dataclass

import polars as pl

from brightrun.errors import BrightRunError, check_name, id_pattern
from brightrun.stats.rates import rate_estimate
from brightrun.workspace import Workspace, utcnow

LABEL = id_pattern(40, first="a-z")
SUGGESTED_LABELS = ["production", "candidate", "baseline", "archived"]

# Each conversation's producing call: its tokens, cost and latency, kept on the conversation (CALLS_KEPT), or,
# where any conversation was written before they were, joined from llm_calls by call_id (CALLS_JOINED; at a
# million conversations, a join of a million rows to a million).
CALLS_KEPT = """
    SELECT template_key, template_version AS version,
           sum(input_tokens + output_tokens)::BIGINT AS tokens, sum(cost_usd) AS cost_usd,
           avg(latency_ms) AS mean_latency_ms
    FROM _t_conversations GROUP BY 1, 2"""
CALLS_JOINED = """
    SELECT c.template_key, c.template_version AS version,
           sum(l.input_tokens + l.output_tokens)::BIGINT AS tokens, sum(l.cost_usd) AS cost_usd,
           avg(l.latency_ms) AS mean_latency_ms
    FROM _t_conversations c JOIN llm_calls l ON l.call_id = c.call_id GROUP BY 1, 2"""
METRICS_SQL = """
WITH conv AS (
    SELECT c.template_key, c.template_version AS version, count(*) AS conversations,
           avg(q.quality_score) AS mean_quality, avg(q.arc_adherence) AS mean_arc_adherence,
           avg(c.is_scripted::INT) AS scripted_share
    FROM _t_conversations c LEFT JOIN _t_conversation_quality q USING (conversation_id) GROUP BY 1, 2),
calls AS ({calls}),
items AS (
    SELECT template_key, template_version AS version, count(*) AS items,
           count_if(status = 'failed')::BIGINT AS failed_items
    FROM batch_items GROUP BY 1, 2),
fb AS (
    SELECT p.template_key, p.template_version AS version, count(*) AS judgements,
           count(f.helpful)::BIGINT AS thumbs, coalesce(sum(f.helpful::INT), 0)::BIGINT AS thumbs_up,
           avg(f.rating) AS mean_rating, count(f.rating)::BIGINT AS ratings,
           avg((f.edited_response IS NOT NULL)::INT) AS edit_rate
    FROM feedback_latest f JOIN training_pairs p ON f.target_type = 'training_pair' AND p.pair_id = f.target_id
    WHERE f.source = 'review' GROUP BY 1, 2)
SELECT v.template_key, v.version, v.name, v.tier, v.is_current, v.first_used_at,
       coalesce(conv.conversations, 0) AS conversations, conv.scripted_share, calls.tokens, calls.cost_usd, calls.mean_latency_ms,
       conv.mean_quality, conv.mean_arc_adherence, fb.judgements, fb.thumbs, fb.thumbs_up,
       fb.thumbs_up::DOUBLE / nullif(fb.thumbs, 0) AS thumbs_up_rate, fb.mean_rating, fb.ratings, fb.edit_rate,
       items.items, items.failed_items, items.failed_items::DOUBLE / nullif(items.items, 0) AS failure_rate
FROM prompt_templates v
LEFT JOIN conv USING (template_key, version) LEFT JOIN calls USING (template_key, version)
LEFT JOIN items USING (template_key, version) LEFT JOIN fb USING (template_key, version)
"""


def set_label(ws: Workspace, template_key: str, version: str, label: str, *, by: str = "", note: str = "") -> None:
    """Point `label` of a template at one of its versions (a label names one version at a time; moving it
    keeps the history). The version must exist."""
    check_name(label, "label", LABEL, f"1 to 40 lower-case letters, digits, '-' or '_', starting with a letter "
               f"(e.g. {', '.join(SUGGESTED_LABELS[:2])})")
    known = ws.sql("SELECT 1 FROM prompt_templates WHERE template_key = ? AND version = ?", [template_key, version])
    if not known.height:
        raise BrightRunError(f"template {template_key!r} has no version {version!r}. Fix: pick one from "
                             "`brightrun prompts list`.")
    ws.append("template_labels", [{"label_id": uuid.uuid4().hex, "template_key": template_key, "label": label,
                                   "version": version, "set_by": by or None, "note": note or None,
                                   "set_at": utcnow()}])


def remove_label(ws: Workspace, template_key: str, label: str, *, by: str = "") -> None:
    """Take a label off whatever version of the template holds it."""
    ws.append("template_labels", [{"label_id": uuid.uuid4().hex, "template_key": template_key, "label": label,
                                   "version": None, "set_by": by or None, "note": "removed", "set_at": utcnow()}])


def labels(ws: Workspace) -> pl.DataFrame:
    """The current labels: template_key, label, version, set_by, set_at."""
    return ws.sql("SELECT template_key, label, version, set_by, set_at FROM template_labels_current "
                  "WHERE version IS NOT NULL ORDER BY template_key, label")


def label_history(ws: Workspace, template_key: str) -> pl.DataFrame:
    return ws.sql("SELECT label, version, set_by, note, set_at FROM template_labels WHERE template_key = ? "
                  "ORDER BY set_at DESC", [template_key])


def versions(ws: Workspace, template_key: str | None = None) -> pl.DataFrame:
    """Every template version with its labels and outcome metrics, newest first within each template; computed
    once per data version (`Workspace.memo`) and shared: never change the frame (polars frames are immutable)."""
    return ws.memo(("prompt versions", template_key), lambda: _versions(ws, template_key))


def _versions(ws: Workspace, template_key: str | None) -> pl.DataFrame:
    where, params = ("WHERE m.template_key = ?", [template_key]) if template_key else ("", [])
    legacy = ws.sql("SELECT count(*) AS n FROM _t_conversations WHERE latency_ms IS NULL").item()
    metrics = METRICS_SQL.format(calls=CALLS_JOINED if legacy else CALLS_KEPT)
    return ws.sql(f"""
        SELECT m.*, l.labels FROM ({metrics}) m
        LEFT JOIN (SELECT template_key, version, string_agg(label, ', ' ORDER BY label) AS labels
                   FROM template_labels_current WHERE version IS NOT NULL GROUP BY 1, 2) l
               USING (template_key, version)
        {where} ORDER BY m.template_key, m.first_used_at DESC NULLS FIRST, m.version""", params)


@dataclass(frozen=True)
class VersionDiff:
    template_key: str
    a: dict
    b: dict
    system_diff: list[str]
    body_diff: list[str]
    metrics: pl.DataFrame
    """One row per metric: name, value for a, value for b, and for the thumbs-up rate its Wilson interval."""

    def html(self, part: str = "body") -> str:
        """A side-by-side HTML table of the two versions' text (`part`: 'system_prompt' or 'body'), with its
        own stylesheet: added, changed and removed text highlighted, and difflib's navigation links (the
        stray 'f', 'n', 't' before the line numbers) hidden. difflib escapes the text itself."""
        table = difflib.HtmlDiff(wrapcolumn=70).make_table(
            self.a[part].splitlines(), self.b[part].splitlines(), f"{self.a['version']}", f"{self.b['version']}",
            context=False)
        return f"<style>{DIFF_CSS}</style>{table}"


DIFF_CSS = (
    "table.diff{font-family:ui-monospace,monospace;font-size:0.85rem;border-collapse:collapse;width:100%}"
    "table.diff td{padding:0 0.4em;vertical-align:top;white-space:pre-wrap;word-break:break-word}"
    "table.diff td.diff_next{display:none}"
    ".diff_header{color:#888;text-align:right;user-select:none}"
    "th.diff_header{background:#f0f2f6;text-align:left;padding:0.2em 0.4em}"
    ".diff_add{background:#c9f2d0}.diff_chg{background:#fbeaa0}.diff_sub{background:#ffd0d0}"
)
"""The prompt diff's stylesheet (difflib's make_table has none): green added, yellow changed, red removed."""


def _interval(row: dict) -> str:
    if not row.get("thumbs"):
        return "n/a"
    r = rate_estimate(int(row["thumbs_up"]), int(row["thumbs"]))
    return f"{r.rate:.1%} [{r.low:.1%}, {r.high:.1%}] of {r.n}"


def diff(ws: Workspace, template_key: str, version_a: str, version_b: str) -> VersionDiff:
    """Two versions of a template side by side: unified diffs of the system prompt and the body, and their
    metrics (thumbs-up rate with a 95% Wilson interval)."""
    text = ws.sql("SELECT version, system_prompt, body, model, temperature FROM prompt_templates "
                  "WHERE template_key = ? AND version IN (?, ?)", [template_key, version_a, version_b])
    found = {r["version"]: r for r in text.to_dicts()}
    for v in (version_a, version_b):
        if v not in found:
            raise BrightRunError(f"template {template_key!r} has no version {v!r}. Fix: pick one from "
                                 "`brightrun prompts list`.")
    a, b = found[version_a], found[version_b]
    metrics = {r["version"]: r for r in versions(ws, template_key).to_dicts()}
    names = ["conversations", "mean_quality", "mean_arc_adherence", "thumbs_up_rate", "mean_rating", "edit_rate",
             "failure_rate", "tokens", "cost_usd", "mean_latency_ms"]

    def show(value) -> str:
        return "n/a" if value is None else (f"{value:,.3f}" if isinstance(value, float) else f"{value:,}")

    rows = [{"metric": n, "a": show(metrics[version_a].get(n)), "b": show(metrics[version_b].get(n))} for n in names]
    rows.append({"metric": "thumbs_up (95% Wilson)", "a": _interval(metrics[version_a]),
                 "b": _interval(metrics[version_b])})

    def unified(part: str) -> list[str]:
        return list(difflib.unified_diff(a[part].splitlines(), b[part].splitlines(), version_a, version_b,
                                         lineterm=""))

    return VersionDiff(template_key, a, b, unified("system_prompt"), unified("body"), pl.DataFrame(rows))
