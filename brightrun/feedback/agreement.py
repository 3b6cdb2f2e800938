"""Agreement between reviewers (statsmodels): percent agreement, Cohen's kappa for two reviewers,
Fleiss' kappa for more, quadratic-weighted kappa for 1-5 ratings, and the list of disagreements.

Only current judgements from the review flow count (imported app feedback has one judge per call).
Thumbs: items judged by every reviewer compared. Ratings: the same, on the 1-5 scale."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import polars as pl
from statsmodels.stats.inter_rater import cohens_kappa, fleiss_kappa

from brightrun.workspace import Workspace


def _finite(value: float) -> float | None:
    return None if value is None or math.isnan(value) or math.isinf(value) else float(value)


def cohen(a: list, b: list, categories: list, weights: str | None = None) -> float | None:
    """Cohen's kappa of two raters over the same items (weights None, 'linear' or 'quadratic')."""
    index = {c: i for i, c in enumerate(categories)}
    table = np.zeros((len(categories), len(categories)))
    for x, y in zip(a, b, strict=True):
        table[index[x], index[y]] += 1
    if table.sum() == 0:
        return None
    if weights is None:
        result = cohens_kappa(table, return_results=False)
    else:
        result = cohens_kappa(table, wt=weights, return_results=False)
    return _finite(result)


def fleiss(counts: list[list[int]]) -> float | None:
    """Fleiss' kappa from an items x categories matrix of how many raters chose each category."""
    matrix = np.asarray(counts, dtype=float)
    if matrix.size == 0 or matrix.shape[0] < 2:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        return _finite(fleiss_kappa(matrix, method="fleiss"))


def percent_agreement(rows: list[list]) -> float | None:
    """Mean over items of the share of rater pairs that agree (two raters: the share of items agreed on)."""
    shares = []
    for values in rows:
        pairs = list(combinations(values, 2))
        if pairs:
            shares.append(sum(x == y for x, y in pairs) / len(pairs))
    return sum(shares) / len(shares) if shares else None


@dataclass
class Agreement:
    reviewers: list[str]
    thumbs_items: int = 0
    thumbs_percent: float | None = None
    cohen_kappa: float | None = None
    fleiss_kappa: float | None = None
    rating_items: int = 0
    rating_percent: float | None = None
    weighted_kappa: float | None = None
    """Quadratic-weighted kappa of the ratings; with more than two reviewers, the mean over pairs."""
    pairwise: list[dict] = field(default_factory=list)

    def pairwise_table(self) -> pl.DataFrame:
        """One row per pair of reviewers: items compared, thumbs agreement, Cohen's and weighted kappa."""
        return pl.DataFrame(self.pairwise, schema={
            "reviewer_a": pl.String, "reviewer_b": pl.String, "thumbs_items": pl.Int64,
            "thumbs_agreement": pl.Float64, "cohen_kappa": pl.Float64, "rating_items": pl.Int64,
            "weighted_kappa": pl.Float64})


def _wide(ws: Workspace, column: str, reviewers: list[str]) -> pl.DataFrame:
    """One row per training pair judged (on `column`) by every reviewer given; one column per reviewer."""
    frame = ws.sql(f"""
        SELECT target_id, reviewer, {column} AS value FROM feedback_latest
        WHERE target_type = 'training_pair' AND source = 'review' AND {column} IS NOT NULL
          AND reviewer IN ({', '.join('?' * len(reviewers))})""", reviewers)
    if frame.is_empty():
        return pl.DataFrame({"target_id": []}, schema={"target_id": pl.String})
    wide = frame.pivot(on="reviewer", index="target_id", values="value")
    present = [r for r in reviewers if r in wide.columns]
    if len(present) < len(reviewers):
        return wide.clear()
    return wide.drop_nulls(subset=reviewers).select("target_id", *reviewers)


def agreement(ws: Workspace, reviewers: list[str] | None = None) -> Agreement:
    """Agreement among `reviewers` (default: everyone who reviewed) on the pairs they all judged."""
    if reviewers is None:
        reviewers = ws.sql("SELECT DISTINCT reviewer FROM feedback_latest WHERE source = 'review' "
                           "AND target_type = 'training_pair' ORDER BY 1")["reviewer"].to_list()
    result = Agreement(reviewers=list(reviewers))
    if len(reviewers) < 2:
        return result
    thumbs = _wide(ws, "helpful", reviewers)
    ratings = _wide(ws, "rating", reviewers)
    result.thumbs_items, result.rating_items = thumbs.height, ratings.height
    if thumbs.height:
        rows = thumbs.select(reviewers).rows()
        result.thumbs_percent = percent_agreement([list(r) for r in rows])
        if len(reviewers) == 2:
            result.cohen_kappa = cohen(thumbs[reviewers[0]].to_list(), thumbs[reviewers[1]].to_list(), [False, True])
        else:
            result.fleiss_kappa = fleiss([[sum(v is False for v in r), sum(v is True for v in r)] for r in rows])
    if ratings.height:
        result.rating_percent = percent_agreement([list(r) for r in ratings.select(reviewers).rows()])
    kappas = []
    for a, b in combinations(reviewers, 2):
        pair_thumbs, pair_ratings = _wide(ws, "helpful", [a, b]), _wide(ws, "rating", [a, b])
        weighted = (cohen(pair_ratings[a].to_list(), pair_ratings[b].to_list(), [1, 2, 3, 4, 5], "quadratic")
                    if pair_ratings.height else None)
        if weighted is not None:
            kappas.append(weighted)
        result.pairwise.append({
            "reviewer_a": a, "reviewer_b": b, "thumbs_items": pair_thumbs.height,
            "thumbs_agreement": percent_agreement([list(r) for r in pair_thumbs.select(a, b).rows()]),
            "cohen_kappa": cohen(pair_thumbs[a].to_list(), pair_thumbs[b].to_list(), [False, True])
            if pair_thumbs.height else None,
            "rating_items": pair_ratings.height, "weighted_kappa": weighted})
    result.weighted_kappa = sum(kappas) / len(kappas) if kappas else None
    return result


def disagreements(ws: Workspace, reviewers: list[str] | None = None, *, rating_gap: int = 2) -> pl.DataFrame:
    """Training pairs where current judgements conflict: a thumbs up and a thumbs down, or ratings at least
    `rating_gap` apart. One row per pair with every reviewer's thumbs and rating."""
    who = f"AND reviewer IN ({', '.join('?' * len(reviewers))})" if reviewers else ""
    return ws.sql(f"""
        SELECT target_id AS pair_id, any_value(conversation_id) AS conversation_id,
               count(*) AS reviewers,
               string_agg(reviewer || ': ' || CASE WHEN helpful THEN 'up' WHEN NOT helpful THEN 'down' ELSE '-' END
                          || ' / ' || coalesce(rating::VARCHAR, '-'), '; ' ORDER BY reviewer) AS judgements,
               count_if(helpful) > 0 AND count_if(NOT helpful) > 0 AS thumbs_conflict,
               max(rating) - min(rating) AS rating_spread
        FROM feedback_latest
        WHERE target_type = 'training_pair' AND source = 'review' {who}
        GROUP BY 1
        HAVING count(DISTINCT reviewer) > 1
           AND ((count_if(helpful) > 0 AND count_if(NOT helpful) > 0) OR max(rating) - min(rating) >= ?)
        ORDER BY rating_spread DESC NULLS LAST, pair_id""", [*(reviewers or []), rating_gap])
