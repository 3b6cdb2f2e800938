"""Prompt effectiveness: prompt features against outcomes, with simulated reviews whose dependence on a
feature is known by construction, and the prompt -> answer -> richness chain of the demo's app log."""

from __future__ import annotations

import math
import random
from pathlib import Path

import polars as pl
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from brightrun.demo import build_demo
from brightrun.errors import BrightRunError
from brightrun.feedback import record_feedback
from brightrun.prompts import effectiveness as eff
from brightrun.prompts.chain import LINKS
from brightrun.stats import ASSOCIATIONAL_LABEL
from brightrun.workspace import Workspace

REVIEWED = 200


@pytest.fixture(scope="module")
def reviewed_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 300-conversation demo with 200 reviewed pairs: the rating rises with the prompt's length (plus
    noise), the thumbs are up mostly for long responses, a few responses are edited."""
    path = tmp_path_factory.mktemp("effectiveness") / "ws"
    ws = Workspace.open(path)
    build_demo(ws, 300, seed=1)
    frame = eff.prompt_features(ws)
    rng = random.Random(5)
    low, high = frame["prompt_words"].min(), frame["prompt_words"].max()
    median_words = frame["response_words"].median()
    for i, row in enumerate(rng.sample(frame.to_dicts(), REVIEWED)):
        if i % 60 == 59:
            ws.compact(tables=["feedback"])  # one part per judgement: merge them now and then to stay fast
        rating = round(1 + 4 * (row["prompt_words"] - low) / (high - low) + rng.gauss(0, 0.8))
        long = row["response_words"] > median_words
        helpful = long if rng.random() < 0.8 else not long
        edit = "A shorter answer." if rng.random() < 0.15 else None
        record_feedback(ws, "training_pair", row["pair_id"], "ana", rating=min(5, max(1, rating)), helpful=helpful,
                        edited_response=edit)
    return path


@pytest.fixture
def reviewed(reviewed_path: Path) -> Workspace:
    return Workspace.open(reviewed_path)


def assert_associational(report) -> None:
    assert report.associational is True and report.label == ASSOCIATIONAL_LABEL
    for item in [*report.correlations, *([report.regression] if getattr(report, "regression", None) else [])]:
        assert item.associational is True and item.label == ASSOCIATIONAL_LABEL


def test_prompt_text_features_are_documented_counts() -> None:
    got = eff.prompt_text_features("Be warm and acknowledge the worry.", "Ask {{name}} what they feel? Then plan.")
    assert got["prompt_words"] == 13 and got["prompt_questions"] == 1
    assert (got["empathy_terms"], got["questions_terms"], got["action_terms"]) == (4, 1, 1)
    assert got["focus"] == "empathy" and (got["focus_empathy"], got["focus_questions"], got["focus_action"]) == (1, 0, 0)
    tie = eff.prompt_text_features("Ask a question.", "Make a plan, then act.")  # 2 question terms, 2 action
    assert tie["focus"] == "mixed" and tie["focus_questions"] == tie["focus_action"] == 0


def test_prompt_features_one_row_per_pair_with_template_features(reviewed: Workspace) -> None:
    frame = eff.prompt_features(reviewed)
    assert frame.height == reviewed.scalar("SELECT count(*) FROM training_pairs") == frame["pair_id"].n_unique()
    assert {*eff.FEATURES, "persona", "topic", "conversation_id", *eff.OUTCOMES} <= set(frame.columns)
    assert frame.select(eff.FEATURES).null_count().sum_horizontal().item() == 0
    per_template = frame.group_by("template_key").agg(pl.col("prompt_words").n_unique(), pl.col("focus").n_unique())
    assert per_template["prompt_words"].max() == per_template["focus"].max() == 1  # a property of the version
    assert set(frame["focus"]) <= {"empathy", "questions", "action", "mixed"} and frame["focus"].n_unique() > 1
    assert frame["rating"].is_not_null().sum() == REVIEWED and frame["edited"].drop_nulls().is_in([0, 1]).all()
    assert (frame["edge_case"] == (frame["tier"] == "edge_case").cast(pl.Int32)).all()


def test_rating_rises_with_prompt_length_and_the_regression_recovers_it(reviewed: Workspace) -> None:
    report = eff.effectiveness(reviewed, "rating")
    assert report.ok and report.n == REVIEWED and report.unit == "training pair"
    assert_associational(report)
    assert "version_rank" in report.dropped and "no variation" in report.dropped["version_rank"]
    words = next(c for c in report.correlations if c.feature == "prompt_words")
    assert words.estimate > 0.4 and words.low > 0 and words.p_adjusted < 1e-6
    frame = eff.prompt_features(reviewed).drop_nulls("rating")
    assert words.estimate == pytest.approx(sps.spearmanr(frame["prompt_words"], frame["rating"]).statistic)
    bh = multipletests([c.p_value for c in report.correlations], method="fdr_bh")[1]
    assert [c.p_adjusted for c in report.correlations] == pytest.approx(list(bh), rel=1e-12)
    assert report.table().columns == ["feature", "rho", "low", "high", "p_value", "p_adjusted", "n"]

    regression = report.regression
    assert regression.kind == "ols" and regression.cov_type == "cluster"
    assert "C(Q(\"persona\"))" in regression.formula and "C(Q(\"topic\"))" in regression.formula
    coefficient = next(c for c in regression.coefficients if c.term == "prompt_words")
    assert coefficient.estimate > 0 and coefficient.low > 0
    assert report.coefficients()["term"].to_list() == [c.term for c in regression.coefficients]

    kendall = eff.effectiveness(reviewed, "rating", method="kendall", features=["prompt_words"])
    assert kendall.table().columns[1] == "tau" and kendall.correlations[0].estimate > 0.3


def test_thumbs_follow_response_length_in_a_clustered_logit(reviewed: Workspace) -> None:
    report = eff.effectiveness(reviewed, "thumbs", features=["response_words", "prompt_words"])
    assert_associational(report)
    length = report.correlations[0]
    assert length.feature == "response_words" and length.estimate > 0.3 and length.p_adjusted < 1e-6
    regression = report.regression
    assert regression.kind == "logit" and regression.cov_type == "cluster"
    coefficient = regression.coefficients[0]
    assert coefficient.term == "response_words" and coefficient.estimate > 0 and coefficient.odds_ratio > 1
    assert coefficient.p_value < 0.01
    edited = eff.effectiveness(reviewed, "edited")
    assert edited.ok and (edited.regression is None or edited.regression.kind == "logit")
    quality = eff.effectiveness(reviewed, "response_words")
    assert quality.regression.formula.startswith('Q("log_response_words")')


def test_too_little_data_gives_a_report_that_says_so(reviewed: Workspace, ws: Workspace) -> None:
    empty = eff.effectiveness(ws, "rating")
    assert not empty.ok and empty.n == 0 and "at least 20" in empty.message and "Review page" in empty.message
    assert empty.correlations == [] and empty.regression is None and empty.associational
    frame = eff.prompt_features(reviewed)
    few = eff.effectiveness(reviewed, "rating", frame=frame.drop_nulls("rating").head(12))
    assert not few.ok and few.n == 12 and "12 training pair(s)" in few.message
    flat = eff.effectiveness(reviewed, "rating", frame=frame.with_columns(pl.col("rating").fill_null(4).clip(4, 4)))
    assert not flat.ok and "No variation" in flat.message
    constant = eff.effectiveness(reviewed, "rating", features=["version_rank"])
    assert not constant.ok and "No feature varies" in constant.message and "version_rank" in constant.dropped
    with pytest.raises(BrightRunError, match="unknown outcome 'stars'. Fix: use one of rating, thumbs"):
        eff.effectiveness(reviewed, "stars")
    with pytest.raises(BrightRunError, match="cannot be used against 'rating'. Fix"):
        eff.effectiveness(reviewed, "rating", features=["persona"])
    with pytest.raises(BrightRunError, match="'spearman' or 'kendall'"):
        eff.effectiveness(reviewed, "rating", method="pearson")


def test_app_log_chain_on_the_demo_log(reviewed: Workspace, ws: Workspace) -> None:
    chain = eff.app_log_chain(reviewed)
    assert chain.ok and chain.unit == "session" and chain.associational and chain.label == ASSOCIATIONAL_LABEL
    sessions = chain.sessions
    assert sessions.height >= 50 and sessions["session_id"].n_unique() == sessions.height
    assert (sessions["answer_words"] > 0).all() and (sessions["prompt_words"] > 0).all()
    assert sessions["later_words"].drop_nulls().len() >= 0.8 * sessions.height
    assert [(c.feature, c.outcome) for c in chain.correlations] == list(LINKS)
    for c in chain.correlations:
        assert all(math.isfinite(v) for v in (c.estimate, c.low, c.high, c.p_value, c.p_adjusted))
        assert c.low < c.estimate < c.high and c.associational
    bh = multipletests([c.p_value for c in chain.correlations], method="fdr_bh")[1]
    assert chain.table()["p_adjusted"].to_list() == pytest.approx(list(bh))
    first = sessions.drop_nulls(["prompt_words", "answer_words"])
    assert chain.correlations[0].estimate == pytest.approx(
        sps.spearmanr(first["prompt_words"], first["answer_words"]).statistic)
    # the first session's answers, counted by hand from its ideal-state inputs
    row = reviewed.sql("""SELECT request->>'$.prompt' AS p FROM llm_calls WHERE session_id = ?
                          AND action_type = 'ideal_state_generation'""", [sessions["session_id"][0]])
    answers = [len(line.split(":", 1)[1].split()) for p in row["p"] for line in p.splitlines() if line[:1] == "A"
               and line[1:2].isdigit()]
    per_step = sum(answers) / row.height
    assert sessions["answer_words"][0] == pytest.approx(per_step)

    none = eff.app_log_chain(ws)
    assert not none.ok and "No imported app logs" in none.message and none.correlations == []


def test_prompts_page_shows_the_effectiveness_section(reviewed_path: Path, monkeypatch) -> None:
    from streamlit.testing.v1 import AppTest

    root = Path(__file__).resolve().parent.parent
    monkeypatch.setenv("BRIGHTRUN_WORKSPACE", str(reviewed_path))
    monkeypatch.chdir(root)
    at = AppTest.from_file(str(root / "app.py"), default_timeout=120).run()
    at.switch_page("pages/views/prompts.py").run()
    assert not at.exception, at.exception
    assert any("Effectiveness" in h.value for h in at.subheader)
    assert any("Associational" in i.value and ASSOCIATIONAL_LABEL in i.value for i in at.info)
    at.selectbox(key="pr_eff_outcome").set_value("rating").run()
    assert not at.exception, at.exception
    frames = [d.value for d in at.dataframe]
    correlations = next(v for v in frames if "rho" in v.columns)
    expected = eff.effectiveness(Workspace.open(reviewed_path), "rating").table()
    assert correlations["feature"].tolist() == expected["feature"].to_list()
    assert correlations["rho"].tolist() == pytest.approx(expected["rho"].to_list())
    assert any("term" in v.columns and "prompt_words" in set(v["term"]) for v in frames)
    assert any("link" in v.columns and len(v) == 3 for v in frames)
    assert len(at.get("plotly_chart")) >= 1
    at.selectbox(key="pr_eff_outcome").set_value("edited").run()
    assert not at.exception, at.exception
