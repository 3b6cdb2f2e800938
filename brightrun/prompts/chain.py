"""The chain in imported app logs: the app's prompt to the user -> the user's answer -> richness later on.

In a multi-step app the user's answers to one step's prompts travel in a later step's input. In the
demo's life-vision coaching log (brightrun.applogs.demo_log) the `ideal_state_generation` step carries
them as `Q1: <question the app asked>` / `A1: <the user's answer>` lines; the steps after it
(`blueprint_generation`, `scene_generation`, `master_assembly`, `final_assembly`) write the plan, the
scenes and the vision documents. Other steps hold no user answers in this form and are not used.

The chain computed here, with the **session** as the unit (docs/experiments.md; one row per session
that has at least one step with answer lines):
- `prompt_words`: words of the questions put to the user (`Q<n>:` lines, without the label), per answering
  step, averaged over the session's answering steps. When a step has answers but no question lines, the
  rest of its input (everything but the answers) is taken as the prompt.
- `answer_words`: words of the user's answers (`A<n>:` lines, without the label), per answering step,
  averaged over the session.
- `later_words`, `later_distinct`: words and distinct words (lower-cased) per output of the later steps
  that come after the session's first answering step, averaged over those outputs (missing when the
  session stopped before any).
Links: prompt_words -> answer_words, answer_words -> later_words, answer_words -> later_distinct: Spearman's
rho with Fisher-z intervals, p-values adjusted across the three links with Benjamini-Hochberg. Sessions of
one user are treated as independent. Nothing is randomized: every link is associational.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import polars as pl

from brightrun.stats._common import ASSOCIATIONAL_LABEL
from brightrun.stats.correlate import Correlation, spearman
from brightrun.stats.multiple import adjust_pvalues
from brightrun.workspace import Workspace

LATER_STEPS = ("blueprint_generation", "scene_generation", "master_assembly", "final_assembly")
ANSWER_LINE = r"(?m)^[ \t]*A\d+[ \t]*:[^\n]*"
QUESTION_LINE = r"(?m)^[ \t]*Q\d+[ \t]*:[^\n]*"
LABEL = r"^[ \t]*[QA]\d+[ \t]*:"
LINKS = (("prompt_words", "answer_words"), ("answer_words", "later_words"), ("answer_words", "later_distinct"))
MIN_SESSIONS = 10

CALLS_SQL = """
SELECT session_id, user_id, action_type, created_at, source_line,
       CASE WHEN json_valid(request) THEN coalesce(request->>'$.prompt', request) ELSE request END AS input,
       response
FROM llm_calls
WHERE import_id IS NOT NULL AND session_id IS NOT NULL AND coalesce(status, 'ok') = 'ok'
ORDER BY session_id, created_at, source_line
"""


@dataclass(frozen=True)
class ChainReport:
    """Per-session chain values and the Spearman correlation of each link; `message` when there is too
    little to correlate."""

    sessions: pl.DataFrame
    correlations: list[Correlation] = field(default_factory=list)
    message: str | None = None
    unit: str = "session"
    associational: bool = True
    label: str = ASSOCIATIONAL_LABEL

    @property
    def ok(self) -> bool:
        return self.message is None

    def table(self) -> pl.DataFrame:
        """link, rho, low, high, p_value, p_adjusted (Benjamini-Hochberg across the links), n."""
        return pl.DataFrame([{"link": f"{c.feature} -> {c.outcome}", "rho": c.estimate, "low": c.low,
                              "high": c.high, "p_value": c.p_value, "p_adjusted": c.p_adjusted, "n": c.n}
                             for c in self.correlations],
                            schema={"link": pl.String, "rho": pl.Float64, "low": pl.Float64, "high": pl.Float64,
                                    "p_value": pl.Float64, "p_adjusted": pl.Float64, "n": pl.Int64})


def _lines_text(column: str, pattern: str) -> pl.Expr:
    return (pl.col(column).str.extract_all(pattern).list.eval(pl.element().str.replace(LABEL, ""))
            .list.join(" "))


def _words(expr: pl.Expr) -> pl.Expr:
    return expr.fill_null("").str.count_matches(r"\S+")


def chain_sessions(ws: Workspace) -> pl.DataFrame:
    """One row per session with answer lines: session_id, user_id, answering_steps, prompt_words,
    answer_words, later_steps, later_words, later_distinct (see the module doc)."""
    calls = ws.sql(CALLS_SQL).with_columns(
        _lines_text("input", ANSWER_LINE).alias("answers"), _lines_text("input", QUESTION_LINE).alias("questions"))
    calls = calls.with_columns(_words(pl.col("answers")).alias("answer_words"),
                               _words(pl.col("questions")).alias("question_words"))
    answering = calls.filter(pl.col("answer_words") > 0).with_columns(
        pl.when(pl.col("question_words") > 0).then(pl.col("question_words"))
        .otherwise(_words(pl.col("input").str.replace_all(ANSWER_LINE, ""))).alias("prompt_words"))
    first = answering.group_by("session_id").agg(
        pl.col("user_id").first(), pl.len().alias("answering_steps"),
        pl.col("prompt_words").mean(), pl.col("answer_words").mean(),
        pl.col("created_at").min().alias("first_answer_at"))
    later = (calls.filter(pl.col("action_type").is_in(LATER_STEPS))
             .join(first.select("session_id", "first_answer_at"), on="session_id")
             .filter(pl.col("created_at") > pl.col("first_answer_at"))
             .with_columns(_words(pl.col("response")).alias("words"),
                           pl.col("response").fill_null("").str.to_lowercase().str.extract_all(r"[\w']+")
                           .list.n_unique().alias("distinct"))
             .group_by("session_id").agg(pl.len().alias("later_steps"), pl.col("words").mean().alias("later_words"),
                                         pl.col("distinct").mean().cast(pl.Float64).alias("later_distinct")))
    return (first.join(later, on="session_id", how="left")
            .with_columns(pl.col("later_steps").fill_null(0))
            .select("session_id", "user_id", "answering_steps", pl.col("prompt_words").cast(pl.Float64),
                    pl.col("answer_words").cast(pl.Float64), "later_steps", "later_words", "later_distinct")
            .sort("session_id"))


def app_log_chain(ws: Workspace, *, alpha: float = 0.05) -> ChainReport:
    """Spearman correlations along prompt -> answer length -> later-step richness in imported app logs."""
    if not ws.scalar("SELECT count(*) FROM llm_calls WHERE import_id IS NOT NULL AND session_id IS NOT NULL"):
        return ChainReport(chain_sessions(ws).clear(), message=(
            "No imported app logs with sessions. Fix: import a log with a session column on the App logs page "
            "(or `brightrun applogs import`)."))
    sessions = chain_sessions(ws)
    if sessions.height < MIN_SESSIONS:
        return ChainReport(sessions, message=(
            f"Too little data: {sessions.height} session(s) carry user answers (input lines 'A1: ...'); at least "
            f"{MIN_SESSIONS} are needed. Fix: import more of the app's log."))
    found = [spearman(sessions[x].to_list(), sessions[y].to_list(), alpha=alpha, feature=x, outcome=y)
             for x, y in LINKS]
    adjusted = adjust_pvalues([c.p_value for c in found], method="bh", alpha=alpha)
    found = [replace(c, p_adjusted=a, adjust_method=adjusted.method)
             for c, a in zip(found, adjusted.adjusted, strict=True)]
    return ChainReport(sessions, found)
