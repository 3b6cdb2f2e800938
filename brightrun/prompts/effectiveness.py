"""Prompt effectiveness: how features of the prompt that produced a training pair go with its outcomes.

Unit of analysis: the **template version**. Reviews, the heuristic quality score and the response length
are recorded per training pair, but the prompt features belong to the template version of the pair's
conversation: every pair of one version shares them, and pairs of one version also share whatever else
that version brings (its topic mix, the provider's reaction to its wording). Counting pairs as independent
makes ordinary version-to-version variation look like a feature effect (with 12 versions and 4,000 pairs,
some feature came out "significant" in nearly every simulation without any feature effect). So:

- the effective n is the number of template versions with the outcome (`effective_n`); with fewer than
  `MIN_VERSIONS` (8) no inference is possible, and the report gives descriptives only (`versions`: one row
  per version with its pairs, raw and adjusted mean outcome and features) with a message saying so;
- rank correlations (Spearman or Kendall) are computed across versions, between each feature and the
  version's mean outcome, with Benjamini-Hochberg adjusted p-values;
- the regression is two-stage: (1) each version's mean outcome adjusted for the persona and topic mix of
  its pairs (OLS of the outcome on version and control indicators, `brightrun.stats.correlate.unit_means`);
  (2) OLS of those adjusted means on the features, one row per version, classical errors with the t
  distribution on versions - features - 1 degrees of freedom. For 0/1 outcomes the means are shares and
  the coefficients changes in the share (a linear probability model). Fitted only when at least 2 residual
  degrees of freedom remain; features beyond that are left out (named in the notes).
A feature that varies within a version (e.g. `response_words`) enters as its mean per version: the result
is a between-version association.

Prompt features (of the template version: system prompt + body, as stored, each `{{placeholder}}` one word):
- `prompt_words`: words, split on whitespace.
- `prompt_questions`: question marks, i.e. the questions the prompt itself asks or quotes.
- focus: which of three keyword families (`FOCUS_KEYWORDS`) occurs most often: `empathy` (feel, worry,
  acknowledge, validate, reassure, calm...), `questions` (ask, question, clarify, uncover...) or `action`
  (plan, step, option, propose, prioritize...); `mixed` when two families tie for the most. The features
  are 0/1 indicators `focus_empathy`, `focus_questions`, `focus_action` (`mixed` is none of them).
- `edge_case`: 1 for the edge-case tier, 0 for the template tier.
- `version_rank`: 1 for a template's first version, 2 for the next (by first use).
Controls: `persona`, `topic`. Outcomes: `rating` (mean of the current review ratings, 1-5), `thumbs` (1 when
most current thumbs are up, 0 when most are down, missing on a tie), `edited` (1 when any reviewer's current
judgement edits the response), `quality` (heuristic quality score), `response_words`.

Pairs made by the scripted provider are simulated: `scripted_share` says how many there are, and the page
names them. Nothing here is randomized: every result is associational.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import polars as pl

from brightrun.errors import BrightRunError
from brightrun.prompts.chain import ChainReport, app_log_chain
from brightrun.stats._common import ASSOCIATIONAL_LABEL, StatsError
from brightrun.stats.correlate import Correlation, Regression, correlate_features, regress, unit_means
from brightrun.workspace import Workspace

__all__ = ["ASSOCIATIONAL_LABEL", "FEATURES", "MIN_VERSIONS", "OUTCOMES", "ChainReport", "EffectivenessReport", "app_log_chain", "effectiveness",
           "prompt_features", "prompt_text_features"]

FOCUS_KEYWORDS = {
    "empathy": r"\b(warm\w*|empath\w*|feel\w*|fear\w*|worr\w*|anxi\w*|acknowledg\w*|validat\w*|reassur\w*|"
               r"listen\w*|patien\w*|emotion\w*|gentl\w*|calm\w*|understandabl\w*|sympath\w*)",
    "questions": r"\b(ask\w*|question\w*|clarif\w*|curious|explor\w*|find out|uncover\w*)",
    "action": r"\b(plan\w*|steps?|action\w*|options?|propos\w*|concrete|prioriti\w*|to-do|next|quick win|"
              r"recommend\w*|decid\w*|act)\b",
}
FOCUS_LEVELS = ("empathy", "questions", "action")
FEATURES = ("prompt_words", "prompt_questions", "focus_empathy", "focus_questions", "focus_action", "edge_case",
            "version_rank")
OUTCOMES = {  # name -> (description, regression kind)
    "rating": ("mean current review rating (1-5)", "ols"),
    "thumbs": ("thumbs up (1) or down (0), majority of current reviews", "logit"),
    "edited": ("response edited by a reviewer (1) or not (0)", "logit"),
    "quality": ("heuristic quality score", "ols"),
    "response_words": ("response length in words", "ols"),
}
MIN_ROWS = 20
MIN_VERSIONS = 8
"""Fewer template versions with the outcome than this: no inference (descriptives only)."""

PAIRS_SQL = """
WITH fb AS (
    SELECT target_id AS pair_id, avg(rating) AS rating, avg(helpful::INT) AS up_share,
           max((edited_response IS NOT NULL)::INT) AS edited, count(*) AS judgements
    FROM feedback_latest WHERE target_type = 'training_pair' AND source = 'review' GROUP BY 1)
SELECT {ids} p.persona_key AS persona, p.topic_key AS topic, p.template_key,
       p.template_version, p.tier, (p.tier = 'edge_case')::INT AS edge_case, fb.rating,
       CASE WHEN fb.up_share > 0.5 THEN 1 WHEN fb.up_share < 0.5 THEN 0 END AS thumbs, fb.edited,
       coalesce(fb.judgements, 0) AS judgements, p.quality_score AS quality, p.response_word_count AS response_words,
       p.is_scripted
FROM training_pairs p LEFT JOIN fb USING (pair_id) {order}
"""
VERSIONS_SQL = """
SELECT template_key, version AS template_version, system_prompt, body,
       row_number() OVER (PARTITION BY template_key ORDER BY first_used_at NULLS LAST, version) AS version_rank
FROM prompt_templates
"""


def prompt_text_features(system_prompt: str | None, body: str | None) -> dict:
    """Words, question marks, keyword counts per focus family and the focus of one prompt (see module doc)."""
    text = f"{system_prompt or ''}\n{body or ''}"
    counts = {k: len(re.findall(pattern, text, re.IGNORECASE)) for k, pattern in FOCUS_KEYWORDS.items()}
    top = max(counts.values())
    leaders = [k for k in FOCUS_LEVELS if counts[k] == top]
    focus = leaders[0] if top and len(leaders) == 1 else "mixed"
    return {"prompt_words": len(text.split()), "prompt_questions": text.count("?"), "focus": focus,
            **{f"focus_{k}": int(focus == k) for k in FOCUS_LEVELS}, **{f"{k}_terms": v for k, v in counts.items()}}


def prompt_features(ws: Workspace, *, ids: bool = True) -> pl.DataFrame:
    """One row per training pair: ids, controls (persona, topic), the prompt features of the template
    version that produced it, and the outcomes (missing where a pair has no review). Without `ids`, the rows
    come without `pair_id` and `conversation_id`, in no set order: what `effectiveness` reads, and at 5M pairs
    the two id columns and the sort by id were half of the read."""
    pairs = ws.sql(PAIRS_SQL.format(ids="p.pair_id, p.conversation_id," if ids else "",
                                    order="ORDER BY p.pair_id" if ids else ""))
    frame = pairs.join(_version_features(ws), on=["template_key", "template_version"], how="left")
    outcome_columns = ["rating", "thumbs", "edited", "judgements", "quality", "response_words", "is_scripted"]
    return frame.select(*(["pair_id", "conversation_id"] if ids else []), "persona", "topic", "template_key",
                        "template_version", "tier", "focus", *FEATURES, *[f"{k}_terms" for k in FOCUS_LEVELS], *outcome_columns)


def _version_features(ws: Workspace) -> pl.DataFrame:
    """One row per template version: its rank among its template's versions and its prompt text features."""
    versions = ws.sql(VERSIONS_SQL)
    text = [prompt_text_features(r["system_prompt"], r["body"]) for r in versions.to_dicts()]
    schema = {"prompt_words": pl.Int64, "prompt_questions": pl.Int64, "focus": pl.String,
              **{f"focus_{k}": pl.Int64 for k in FOCUS_LEVELS}, **{f"{k}_terms": pl.Int64 for k in FOCUS_LEVELS}}
    return pl.concat([versions.select("template_key", "template_version", "version_rank"),
                      pl.DataFrame(text, schema=schema)], how="horizontal")


def prompt_feature_cells(ws: Workspace, outcome: str) -> pl.DataFrame:
    """`prompt_features(ws)` summed up for one outcome, in SQL: one row per (persona, topic, template version,
    scripted or not) with how many pairs have the outcome (`_n`), its sum (in the outcome's column), smallest and
    largest (`_min`, `_max`), and the version's prompt features. What `effectiveness` reads from a workspace: at 5M
    pairs, thousands of rows instead of every pair (most of the Prompts page's first load)."""
    if outcome not in OUTCOMES:
        raise BrightRunError(f"unknown outcome {outcome!r}. Fix: use one of {', '.join(OUTCOMES)}.")
    cells = ws.sql(f"""
        SELECT persona, topic, template_key, template_version, tier, edge_case, is_scripted,
               count({outcome}) AS _n, sum({outcome}) AS {outcome}, min({outcome}) AS _min, max({outcome}) AS _max
        FROM ({PAIRS_SQL.format(ids="", order="")}) WHERE {outcome} IS NOT NULL GROUP BY ALL""")
    return cells.join(_version_features(ws), on=["template_key", "template_version"], how="left")


@dataclass(frozen=True)
class EffectivenessReport:
    """Correlations of each feature with one outcome across template versions and a version-level regression
    on persona- and topic-adjusted means. `n` (= `effective_n`) counts template versions, `pairs` the
    training pairs behind them. `message` is set, and the correlations and regression empty, when no
    inference is possible (too few pairs or versions, no variation); `versions` then still holds the
    descriptives when there are any."""

    outcome: str
    outcome_label: str
    method: str
    unit: str
    n: int
    features: list[str]
    pairs: int = 0
    min_versions: int = MIN_VERSIONS
    versions: pl.DataFrame = field(default_factory=pl.DataFrame)
    scripted_share: float | None = None
    correlations: list[Correlation] = field(default_factory=list)
    regression: Regression | None = None
    message: str | None = None
    dropped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    associational: bool = True
    label: str = ASSOCIATIONAL_LABEL

    @property
    def ok(self) -> bool:
        return self.message is None

    @property
    def effective_n(self) -> int:
        return self.n

    def table(self) -> pl.DataFrame:
        """feature, rho (or tau), low, high, p_value, p_adjusted (Benjamini-Hochberg), n."""
        name = "rho" if self.method == "spearman" else "tau"
        return pl.DataFrame([{"feature": c.feature, name: c.estimate, "low": c.low, "high": c.high,
                              "p_value": c.p_value, "p_adjusted": c.p_adjusted, "n": c.n} for c in self.correlations],
                            schema={"feature": pl.String, name: pl.Float64, "low": pl.Float64, "high": pl.Float64,
                                    "p_value": pl.Float64, "p_adjusted": pl.Float64, "n": pl.Int64})

    def coefficients(self) -> pl.DataFrame:
        """term, estimate, se, low, high, p_value, p_adjusted, odds_ratio (logit) of the regression."""
        schema = {"term": pl.String, "estimate": pl.Float64, "se": pl.Float64, "low": pl.Float64,
                  "high": pl.Float64, "p_value": pl.Float64, "p_adjusted": pl.Float64, "odds_ratio": pl.Float64}
        rows = [] if self.regression is None else [
            {"term": c.term, "estimate": c.estimate, "se": c.se, "low": c.low, "high": c.high, "p_value": c.p_value,
             "p_adjusted": c.p_adjusted, "odds_ratio": c.odds_ratio} for c in self.regression.coefficients]
        return pl.DataFrame(rows, schema=schema)


def _independent(frame: pl.DataFrame, features: list[str], controls: Sequence[str]) -> tuple[list[str], list[str]]:
    """Keep the features (in order) that add rank to intercept + control dummies; name the others."""
    base = [np.ones(frame.height)]
    for control in controls:
        dummies = frame.select(pl.col(control).cast(pl.String)).to_dummies(drop_first=True)
        base += [dummies[c].to_numpy().astype(float) for c in dummies.columns]
    matrix = np.column_stack(base)
    rank = np.linalg.matrix_rank(matrix)
    kept, redundant = [], []
    for feature in features:
        trial = np.column_stack([matrix, frame[feature].cast(pl.Float64).to_numpy()])
        if np.linalg.matrix_rank(trial) > rank:
            matrix, rank = trial, rank + 1
            kept.append(feature)
        else:
            redundant.append(feature)
    return kept, redundant


def _regression(versions: pl.DataFrame, used: list[str], alpha: float, notes: list[str]) -> Regression | None:
    """Stage 2: OLS of the versions' adjusted means on the features (classical errors, t distribution)."""
    features = list(used)
    focus = [f for f in features if f.startswith("focus_") and f[6:] in FOCUS_LEVELS]
    if len(focus) == len(FOCUS_LEVELS) and (versions.select(focus).sum_horizontal() == 1).all():
        reference = max(focus, key=lambda f: (int(versions[f].sum()), f))  # the indicators sum to 1: drop one
        features.remove(reference)
        notes.append(f"regression: {reference} is the reference level of the focus indicators")
    features, redundant = _independent(versions, features, ())
    if redundant:
        notes.append(f"regression: {', '.join(redundant)} left out (a combination of the other features across "
                     "these versions)")
    room = versions.height - 3  # keep at least 2 residual degrees of freedom beside the intercept
    if len(features) > room:
        notes.append(f"regression: {', '.join(features[room:])} left out: {versions.height} versions leave room "
                     f"for {max(room, 0)} feature(s)")
        features = features[:max(room, 0)]
    if not features:
        notes.append("regression not fitted: no feature is left once redundant ones are removed")
        return None
    try:
        return regress(versions, "adjusted", features, controls=(), kind="ols", alpha=alpha, robust=False)
    except StatsError as exc:
        notes.append(f"regression not fitted: {exc}")
        return None


def _version_table(rows: pl.DataFrame, outcome: str, features: list[str], notes: list[str],
                   count: str | None = None) -> pl.DataFrame:
    """One row per template version: pairs, raw and adjusted mean outcome, scripted share, feature means.
    With `count`, the rows are cells of `prompt_feature_cells` (the features are the version's own, so each
    cell holds them as they are)."""
    keyed = rows.with_columns(pl.concat_str("template_key", "template_version", separator=" @ ").alias("version"))
    means, control_notes = unit_means(keyed, outcome, "version", count=count)
    notes += [f"adjusted means: {n}" for n in control_notes]
    scripted = pl.col("is_scripted").cast(pl.Float64)
    weight = pl.lit(1, pl.Int64) if count is None else pl.col(count)
    per_version = keyed.group_by("version").agg(
        pl.col("template_key").first(), pl.col("template_version").first(),
        ((scripted * weight).sum() / weight.filter(scripted.is_not_null()).sum()).alias("scripted_share"),
        *((pl.col(f).cast(pl.Float64).mean() if count is None else pl.col(f).cast(pl.Float64).first())
          for f in features))
    return (per_version.join(means, on="version").rename({"n": "pairs"})
            .select("template_key", "template_version", "pairs", "mean", "adjusted", "scripted_share", *features)
            .sort("template_key", "template_version"))


def effectiveness(ws: Workspace | None, outcome: str, *, features: Sequence[str] | None = None,
                  method: str = "spearman", alpha: float = 0.05,
                  frame: pl.DataFrame | None = None) -> EffectivenessReport:
    """Rank correlations of each prompt feature with `outcome` across template versions (intervals,
    BH-adjusted p-values) and a version-level regression on persona- and topic-adjusted means (module doc).

    `features`: columns of `prompt_features(ws)` (default `FEATURES`; any numeric column such as
    `response_words` may be given; it is averaged per version). `frame`: a `prompt_features` frame already
    at hand (else it is read from `ws`). Too little data (fewer than 20 pairs or 8 template versions with the
    outcome, an outcome or every feature without variation) gives a report whose `message` says so and
    whose `versions` holds the descriptives; an unknown outcome, feature or method raises BrightRunError.
    Read from `ws`, the report is computed once per data version (`Workspace.memo`) and shared: never change it."""
    if frame is None and ws is not None:
        key = ("effectiveness", outcome, None if features is None else tuple(features), method, alpha)
        return ws.memo(key, lambda: _effectiveness(ws, outcome, features, method, alpha, None))
    return _effectiveness(ws, outcome, features, method, alpha, frame)


def _effectiveness(ws: Workspace | None, outcome: str, features: Sequence[str] | None, method: str, alpha: float,
                   frame: pl.DataFrame | None) -> EffectivenessReport:
    if outcome not in OUTCOMES:
        raise BrightRunError(f"unknown outcome {outcome!r}. Fix: use one of {', '.join(OUTCOMES)}.")
    if method not in ("spearman", "kendall"):
        raise BrightRunError(f"unknown correlation method {method!r}. Fix: use 'spearman' or 'kendall'.")
    features = list(FEATURES if features is None else features)
    # From a workspace, with the prompts' own features only (constant within a version): cells summed in SQL.
    count = "_n" if frame is None and set(features) <= set(FEATURES) else None
    data = frame if frame is not None else (prompt_feature_cells(ws, outcome) if count
                                            else prompt_features(ws, ids=False))
    bad = [f for f in features if f not in data.columns or f == outcome or not data[f].dtype.is_numeric()]
    if bad or not features:
        numeric = [c for c in data.columns if data[c].dtype.is_numeric() and c != outcome]
        raise BrightRunError(f"feature(s) {bad or '(none)'} cannot be used against {outcome!r}. Fix: pick numeric "
                             f"columns other than the outcome: {', '.join(numeric)}.")
    description = OUTCOMES[outcome][0]
    rows = data.filter(pl.col(outcome).is_not_null())
    if "is_scripted" not in rows.columns:
        rows = rows.with_columns(pl.lit(None, pl.Boolean).alias("is_scripted"))
    notes: list[str] = []
    versions = _version_table(rows, outcome, features, notes, count) if rows.height else pl.DataFrame()
    pairs = int(rows[count].sum()) if count else rows.height
    scripted = rows["is_scripted"].cast(pl.Float64).mean() if rows.height and not count else None
    if rows.height and count:
        known = rows.filter(pl.col("is_scripted").is_not_null())
        scripted = float((known["is_scripted"].cast(pl.Float64) * known[count]).sum() / known[count].sum()) \
            if known.height else None
    report = {"outcome": outcome, "outcome_label": description, "method": method, "unit": "template version",
              "n": versions.height, "pairs": pairs, "features": features, "versions": versions,
              "scripted_share": scripted, "notes": notes}
    where = "review more pairs on the Review page" if outcome in ("rating", "thumbs", "edited") else \
        "generate and enrich more conversations"
    if pairs < MIN_ROWS:
        return EffectivenessReport(**report, message=(
            f"Too little data: {pairs} training pair(s) have a {description}; at least {MIN_ROWS} are "
            f"needed. Fix: {where}."))
    lowest = rows["_min"].min() if count else rows[outcome][0]
    if (rows["_max"].max() == lowest) if count else rows[outcome].n_unique() < 2:
        return EffectivenessReport(**report, message=(
            f"No variation: every one of the {pairs} pairs has the same {description} "
            f"({lowest}), so nothing can go with it. Collect more varied outcomes."))
    if versions.height < MIN_VERSIONS:
        return EffectivenessReport(**report, message=(
            f"No inference possible yet: prompt features vary only between template versions, and "
            f"{versions.height} version(s) have a {description} (effective n = {versions.height}; at least "
            f"{MIN_VERSIONS} are needed). Below: descriptives only, one row per version. Fix: make more template "
            "versions (edit the templates' YAML), generate with them and "
            f"{'review their pairs' if outcome in ('rating', 'thumbs', 'edited') else 'enrich them'}."))
    dropped = {f: f"no variation (every version has {versions[f].drop_nulls()[0] if versions[f].drop_nulls().len() else 'none'})"
               for f in features if versions[f].drop_nulls().n_unique() < 2}
    used = [f for f in features if f not in dropped]
    notes += [f"{f} left out: {why}" for f, why in dropped.items()]
    if not used:
        return EffectivenessReport(**report, message=(
            "No feature varies across these template versions: " + "; ".join(notes) + ". Generate with more "
            "templates or template versions to compare prompts."), dropped=dropped)
    within = [f for f in used if f not in FEATURES]
    if within:
        notes.append(f"{', '.join(within)}: averaged per template version (a between-version association)")
    correlations = correlate_features(versions, used, "mean", method=method, adjust="bh", alpha=alpha)
    correlations = [replace(c, outcome=outcome) for c in correlations]
    regression = _regression(versions, used, alpha, notes)
    return EffectivenessReport(**report, correlations=correlations, regression=regression, dropped=dropped)
