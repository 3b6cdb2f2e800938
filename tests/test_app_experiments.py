"""AppTest of the Experiments page: define an experiment through the form, generate its arms (scripted), read
the winner, the forest plot and the per-stratum tables, move it through its statuses, see the Simpson warning
of a confounded review, and size an experiment with the calculator."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from test_experiments import KEY, add_guided_version, run_confounded_mix, simulate_reviews

from brightrun.experiments import load_experiment
from brightrun.stats.power import sample_size_rates
from brightrun.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent
PAGE = "pages/views/experiments.py"


@pytest.fixture
def two_versions(ws: Workspace) -> tuple[Workspace, str, str]:
    """An empty workspace whose template KEY has two recorded versions (the second adds GUIDED)."""
    return (ws, *add_guided_version(ws))


@pytest.fixture
def open_page(monkeypatch):
    def opener(ws: Workspace) -> AppTest:
        monkeypatch.setenv("BRIGHTRUN_WORKSPACE", str(ws.root))
        monkeypatch.chdir(ROOT)
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
        at.switch_page(PAGE).run()
        assert not at.exception, at.exception
        return at
    return opener


def forest_points(at: AppTest) -> list[tuple[str, str]]:
    chart = next(c for c in at.get("plotly_chart") if c.proto.id.endswith("ex_forest"))
    spec = json.loads(chart.proto.spec)
    return [(trace["name"], arm) for trace in spec["data"] for arm in trace["y"]]


def tables(at: AppTest, *columns: str) -> list:
    """The dataframes shown (pandas), in page order, that have every one of `columns` (a read-only
    st.dataframe carries no key in AppTest)."""
    return [d.value for d in at.dataframe if set(columns) <= set(d.value.columns)]


def p_value(shown: str) -> float:
    """A p-value as the page shows it ("< 0.0001" or two significant figures), back as a number."""
    return 0.0 if shown.startswith("<") else float(shown)


def texts(elements) -> str:
    return "\n".join(e.value for e in elements)


def open_tab(at: AppTest, label: str) -> AppTest:
    at.session_state["ex_tab"] = label  # only the open tab runs
    return at.run()


def fill_the_form(at: AppTest, old: str, new: str, experiment_id: str) -> AppTest:
    """On the New experiment tab: control on the old version, the variant on the new one."""
    at.selectbox(key="ex_new_template").set_value(KEY).run()
    control_box = at.selectbox(key=f"ex_new_arm_version_{KEY}_0")
    assert len(control_box.options) == 2 and {o.split(" · ")[0] for o in control_box.options} == {old, new}
    control_box.set_value(old)
    at.selectbox(key=f"ex_new_arm_version_{KEY}_1").set_value(new)
    at.text_input(key="ex_new_id").input(experiment_id)
    return at


def test_the_first_run_draws_the_experiments_tab_alone(ws: Workspace, open_page) -> None:
    """The page budget: the New experiment form and the calculator wait until their tab is opened."""
    at = open_page(ws)
    assert "No experiments yet" in texts(at.info)
    assert not at.get("selectbox") and not at.get("number_input") and not at.metric
    assert open_tab(at, "Calculator").metric and not at.get("selectbox")
    assert open_tab(at, "New experiment").selectbox(key="ex_new_template") and not at.metric


def test_create_run_read_and_complete_an_experiment(two_versions, open_page) -> None:
    ws, old, new = two_versions
    at = open_page(ws)
    assert "No experiments yet" in texts(at.info)

    # Define it through the form: control on the old version, the variant on the new one.
    fill_the_form(open_tab(at, "New experiment"), old, new, "guided")
    at.text_input(key="ex_new_name").input("Guided prompt")
    at.text_area(key="ex_new_hypothesis").input("Mirroring and one concrete action raise the thumbs-up rate")
    at.text_input(key="ex_new_arm_name_1").input("guided")
    assert at.multiselect(key="ex_new_guardrails").value == ["failed"]
    at.number_input(key="ex_new_per_arm").set_value(5)
    at.number_input(key="ex_new_seed").set_value(3)
    at.button(key="ex_new_submit").click().run()
    assert not at.exception, at.exception
    assert not at.error, texts(at.error)
    exp = load_experiment(ws, "guided")
    assert exp.status == "draft" and exp.name == "Guided prompt" and exp.per_arm == 5 and exp.seed == 3
    assert (exp.control.template_version, exp.variants[0].template_version) == (old, new)
    assert exp.guardrails == ["failed"] and exp.success_metric == "thumbs_up"
    assert at.selectbox(key="ex_open").value == "guided"  # the new experiment opens
    assert list(tables(at, "id", "success metric")[0]["status"]) == ["draft"]
    assert "No arm has been generated yet" in texts(at.info)
    assert not [b for b in at.button if b.key and b.key.startswith("ex_status_")]  # a draft only generates

    # A second definition with the same id is refused in place: the form keeps what was typed.
    fill_the_form(open_tab(at, "New experiment"), old, new, "guided")
    at.button(key="ex_new_submit").click().run()
    assert "already exists" in texts(at.error)
    assert at.session_state["ex_tab"] == "New experiment" and at.text_input(key="ex_new_id").value == "guided"
    open_tab(at, "Experiments")

    # Generate the arms with the scripted provider (and enrich), then simulate a reviewer.
    assert at.selectbox(key="ex_provider").value == "scripted"
    at.button(key="ex_run").click().run()
    assert not at.exception, at.exception
    assert load_experiment(ws, "guided").status == "running"
    assert all(e.value.startswith("**Simulated data: no decision.**") for e in at.error), texts(at.error)
    arms = {r["arm"]: r for r in tables(at, "planned", "reviewed")[0].to_dict("records")}
    assert arms["control"]["scripted_share"] == arms["guided"]["scripted_share"] == 1.0
    assert arms["control"]["conversations"] == arms["guided"]["conversations"] == 4 * 8 * 5
    assert "ex_run" not in [b.key for b in at.button]  # every arm is generated
    assert "Simulated data: scripted (simulated) conversations per arm: control 100%, guided 100%" in texts(at.warning)
    assert any(w.value.startswith("thumbs_up: fewer than 2 measured") for w in at.warning)
    assert sorted(forest_points(at)) == [("failed", "guided")]
    simulate_reviews(ws, seed=2)
    at.run()
    assert not at.exception, at.exception
    # the scripted arms are simulated data: the statistics favour guided, the page decides nothing
    assert not at.success and "Simulated data: no decision." in texts(at.error)
    assert sorted(forest_points(at)) == [("failed", "guided"), ("thumbs_up", "guided")]  # variants x metrics
    results = tables(at, "abs lift [CI]")[0]
    assert list(results["metric"]) == ["thumbs_up", "failed"] and list(results["role"]) == ["success", "guardrail"]
    main = results.iloc[0]
    shown_p = [main[c] for c in ("p", "adjusted p", "always-valid p", "always-valid adjusted p")]
    assert all(re.fullmatch(r"< 0\.0001|0\.\d+|1", p) for p in shown_p), shown_p  # as people write them
    assert main["n"] == 160 and p_value(main["adjusted p"]) < 0.05 and main["P(beat control)"] > 0.95
    assert "pts [" in main["abs lift [CI]"] and main["test"] and main["verdict"] == "better"
    assert p_value(main["always-valid p"]) >= p_value(main["p"]) and main["always-valid interval"].endswith(" pts]")
    assert any("valid only at the planned size (160 conversations per arm)" in c.value for c in at.caption)
    assert any("No sample ratio mismatch" in c.value for c in at.caption)
    persona = tables(at, "persona", "difference [CI]")[0]
    assert len(persona) == 4 and "difference [CI]" in persona.columns
    assert "David Chen - The Pragmatic Optimist" in set(persona["persona"])
    assert len(tables(at, "topic", "difference [CI]")[0]) == 8
    pooled = tables(at, "naive (pooled)")[0]
    assert list(pooled.columns) == ["estimate", "naive (pooled)", "Mantel-Haenszel"]
    assert any("Review page" in c.value for c in at.caption)

    # Statuses: running -> paused -> running -> completed, one button each, as the transitions allow.
    at.button(key="ex_status_paused").click().run()
    assert load_experiment(ws, "guided").status == "paused"
    assert {b.key for b in at.button if b.key and b.key.startswith("ex_status_")} == {
        "ex_status_running", "ex_status_completed"}
    at.button(key="ex_status_running").click().run()
    assert load_experiment(ws, "guided").status == "running"
    at.button(key="ex_status_completed").click().run()
    assert not at.exception, at.exception
    assert load_experiment(ws, "guided").status == "completed"
    assert not [b for b in at.button if b.key and (b.key.startswith("ex_status_") or b.key == "ex_run")]
    assert list(tables(at, "id", "success metric")[0]["status"]) == ["completed"]
    assert "Simulated data: no decision." in texts(at.error)  # the results stay


def test_a_confounded_review_shows_the_simpson_warning(two_versions, open_page) -> None:
    """The setup of test_experiments' confounding test: the variant's reviewed conversations are mostly a
    hard-to-please persona's. The page shows the warning and the naive and Mantel-Haenszel estimates."""
    ws, old, new = two_versions
    run_confounded_mix(ws, old, new)

    at = open_page(ws)
    assert at.selectbox(key="ex_open").value == "mix"
    warnings = [w.value for w in at.warning]
    assert any("by persona" in w and "Simpson" in w for w in warnings), warnings
    pooled = tables(at, "naive (pooled)")[0].set_index("estimate")
    naive, mh = pooled.loc["difference", "naive (pooled)"], pooled.loc["difference", "Mantel-Haenszel"]
    assert naive.startswith("-") and mh.startswith("+")  # worse pooled, better within each persona
    assert any("see the warning above" in m.value for m in at.markdown)
    assert any("chi-square balance test of the persona mix between the arms p = " in c.value for c in at.caption)
    assert sorted(forest_points(at)) == [("thumbs_up", "variant")]


def test_the_calculator_gives_the_reference_sample_size(ws: Workspace, open_page) -> None:
    at = open_tab(open_page(ws), "Calculator")
    at.number_input(key="ex_calc_p0").set_value(0.60)
    at.number_input(key="ex_calc_p1").set_value(0.65)
    at.number_input(key="ex_calc_alpha").set_value(0.05)
    at.number_input(key="ex_calc_power").set_value(0.80).run()
    expected = sample_size_rates(0.60, 0.65, alpha=0.05, power=0.8)
    assert expected.n_control == 1471  # statistics.md F6: n = 1,470.09, rounded up to whole conversations
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Conversations per arm (rates)"] == "1,471" and metrics["Both arms"] == "2,942"
    at.number_input(key="ex_calc_mde_n").set_value(1471).run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Smallest detectable rate"] == "65.0%" and metrics["Minimum detectable lift"] == "+5.0 pts"
    at.number_input(key="ex_calc_d").set_value(0.5).run()
    assert {m.label: m.value for m in at.metric}["Conversations per arm (means)"] == "64"  # F6: 63.77 (t test)
    at.radio(key="ex_calc_test").set_value("z").run()
    assert {m.label: m.value for m in at.metric}["Conversations per arm (means)"] == "63"  # F6: 62.79 (z test)
    at.radio(key="ex_calc_mean_mode").set_value("difference and SD").run()
    at.number_input(key="ex_calc_diff").set_value(0.5)
    at.number_input(key="ex_calc_sd").set_value(2.0).run()
    assert not at.exception, at.exception
    assert {m.label: m.value for m in at.metric}["Conversations per arm (means)"] == "252"  # d = 0.25, z test
    at.number_input(key="ex_calc_p1").set_value(0.60).run()
    assert "rates are equal" in texts(at.error)
    assert any("statsmodels" in c.value for c in at.caption)
