"""AppTest of the Training files page: create, add by filter (eligible non-members, the rest listed) and by
id (ineligible and duplicate selections blocked with their list, nothing added), remove, split with the leakage report, build, and export gated by
the data contracts with downloads, token statistics and costs."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from streamlit.testing.v1 import AppTest

import brightrun.training_files as tf
from brightrun.workspace import Workspace, utcnow

ROOT = Path(__file__).resolve().parent.parent
PAGE = "pages/views/training_files.py"


def open_page(workspace: Path, monkeypatch, **params: str) -> AppTest:
    """The page, opened on an address with these query parameters if any (a reload, or a shared link)."""
    monkeypatch.setenv("BRIGHTRUN_WORKSPACE", str(workspace))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.run()
    for key, value in params.items():
        at.query_params[key] = value
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def create(at: AppTest, name: str) -> AppTest:
    at.text_input[0].input(name)  # the form's Name field comes first
    at.button[0].click().run()     # the form's submit button
    assert not at.exception, at.exception
    return at


def table(at: AppTest, *columns: str):
    """The first table on the page that has these columns (read-only tables have no key in AppTest)."""
    for frame in at.dataframe:
        if set(columns) <= set(frame.value.columns):
            return frame.value
    raise AssertionError(f"no table with columns {columns}: {[list(f.value.columns) for f in at.dataframe]}")


def open_tab(at: AppTest, label: str) -> AppTest:
    """Click a tab, as the browser does: only the open tab's content runs."""
    at.session_state["tf_tab"] = label
    at.run()
    assert not at.exception, at.exception
    return at


def blocked_list(at: AppTest):
    """The list of a refused change (exactly these two columns: the filter's left-out list has a third)."""
    (frame,) = [f.value for f in at.dataframe if list(f.value.columns) == ["conversation_id", "reason"]]
    return frame


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


@pytest.fixture
def made(demo_copy: Workspace, monkeypatch) -> tuple[Workspace, AppTest]:
    at = open_page(demo_copy.root, monkeypatch)
    assert any("No training file yet" in i.value for i in at.info)
    return demo_copy, create(at, "coaching-v1")


def test_create_then_add_by_filter(made) -> None:
    ws, at = made
    assert at.selectbox(key="training_file").value == "coaching-v1"
    assert tf.get_version(ws, "coaching-v1").version == 1
    persona = ws.scalar("SELECT persona_key FROM conversations ORDER BY conversation_id LIMIT 1")
    at.multiselect(key="add_personas").set_value([persona]).run()
    want = tf.ids_from_filter(ws, {"persona_key": [persona]})
    assert any(f"{len(want):,} conversation(s) match" in c.value for c in at.caption)
    at.button(key="add_filter").click().run()
    assert not errors(at), errors(at)
    assert any("is now version 2" in s.value for s in at.success)
    assert sorted(tf.members(ws, "coaching-v1")) == sorted(want)
    assert at.metric[1].value == str(len(want))
    # the versions tab lists both versions, newest first
    assert not [f for f in at.dataframe if "change" in f.value.columns]  # only the open tab runs
    assert table(open_tab(at, "Versions"), "version", "change")["version"].to_list() == [2, 1]
    # what was picked in a tab is there again when it reopens
    assert open_tab(at, "Add").multiselect(key="add_personas").value == [persona]


def test_ineligible_selection_is_blocked_with_its_list_and_nothing_is_added(made) -> None:
    ws, at = made
    ids = ws.sql("SELECT conversation_id FROM conversations ORDER BY conversation_id LIMIT 3")["conversation_id"]
    for cid in ids[:2]:
        ws.append("conversation_status", [{"conversation_id": cid, "status": "not_started",
                                           "enrichment_version": "2", "updated_at": utcnow()}])
    at.text_area(key="add_ids").input("\n".join(ids.to_list())).run()
    at.button(key="add_by_id").click().run()
    assert any("nothing was added" in e and "2 ineligible" in e for e in errors(at)), errors(at)
    listed = blocked_list(at)
    assert sorted(listed["conversation_id"].to_list()) == sorted(ids[:2].to_list())
    assert all("not_started" in r for r in listed["reason"].to_list())
    assert tf.members(ws, "coaching-v1") == []  # the eligible third was not added either

    # by filter on the enrichment status: the same list
    at.multiselect(key="add_statuses").set_value(["not_started"]).run()
    at.button(key="add_filter").click().run()
    assert sorted(blocked_list(at)["conversation_id"].to_list()) == sorted(ids[:2].to_list())
    assert tf.get_version(ws, "coaching-v1").version == 1

    # a duplicate blocks too, naming it
    at.text_area(key="add_ids").input(ids[2]).run()
    at.button(key="add_by_id").click().run()
    assert not errors(at)
    assert at.text_area(key="add_ids").value == ""  # cleared after it went through
    at.text_area(key="add_ids").input(ids[2]).run()
    at.button(key="add_by_id").click().run()
    listed = blocked_list(at)
    assert listed["conversation_id"].to_list() == [ids[2]]
    assert "already in training file" in listed["reason"][0]
    assert tf.members(ws, "coaching-v1") == [ids[2]]


def test_the_filter_button_tops_up_and_says_what_it_leaves_out(made) -> None:
    ws, at = made
    persona = ws.scalar("SELECT persona_key FROM conversations ORDER BY conversation_id LIMIT 1")
    matched = tf.ids_from_filter(ws, {"persona_key": [persona]})
    tf.add_conversations(ws, "coaching-v1", matched[:5])
    for cid in matched[5:7]:
        ws.append("conversation_status", [{"conversation_id": cid, "status": "not_started",
                                           "enrichment_version": "2", "updated_at": utcnow()}])
    at.multiselect(key="add_personas").set_value([persona]).run()
    new = len(matched) - 7
    assert at.button(key="add_filter").label == f"Add {new} new (5 already members, 2 not enriched)"
    assert not [d for d in at.dataframe if "reason" in d.value.columns]  # drawn when its expander opens
    at.session_state["add_left_out_open"] = True
    at.run()
    left = table(at, "conversation_id", "left out", "reason")
    assert sorted(left["conversation_id"].to_list()) == sorted(matched[:7])
    at.button(key="add_filter").click().run()
    assert not errors(at), errors(at)
    assert any(f"Added {new} new (5 already members, 2 not enriched)" in s.value for s in at.success)
    assert sorted(tf.members(ws, "coaching-v1")) == sorted(matched[:5] + matched[7:])


def test_unsafe_and_taken_names_are_refused(made) -> None:
    ws, at = made
    create(at, "../escape")
    assert any("not allowed" in e for e in errors(at)), errors(at)
    create(at, "COACHING-v1")
    assert any("already exists" in e for e in errors(at)), errors(at)
    assert ws.sql("SELECT name FROM training_files")["name"].to_list() == ["coaching-v1"]


def test_remove_split_and_build(made) -> None:
    ws, at = made
    ids = ws.sql("SELECT conversation_id FROM conversations ORDER BY conversation_id LIMIT 20")["conversation_id"]
    tf.add_conversations(ws, "coaching-v1", ids.to_list())
    open_tab(at, "Remove")
    at.multiselect(key="remove_ids").set_value([ids[0]]).run()
    at.button(key="remove").click().run()
    assert ids[0] not in tf.members(ws, "coaching-v1")
    assert any("is now version 3" in s.value for s in at.success)

    open_tab(at, "Split")
    at.number_input(key="ratio_Train").set_value(60).run()
    at.number_input(key="ratio_Validation").set_value(20).run()
    at.number_input(key="ratio_Test").set_value(20).run()
    at.button(key="split").click().run()
    v = tf.get_version(ws, "coaching-v1")
    assert v.version == 4 and v.split_ratios == (60, 20, 20)
    assert any("no exact or near-duplicate conversations across splits" in s.value for s in at.success)
    assert table(at, "tier", "arc_key", "split")["conversations"].sum() == 19

    open_tab(at, "Build").button(key="build").click().run()
    assert not at.exception, at.exception
    built = next(s.value for s in at.success if "training pairs (content hash" in s.value)
    pairs = ws.scalar("SELECT count(*) FROM training_pairs WHERE conversation_id IN (SELECT unnest(?))",
                      [v.member_ids])
    assert f"19 conversations, {pairs:,} training pairs" in built
    assert tf.get_version(ws, "coaching-v1").content_hash is not None
    assert [b.label for b in at.get("download_button")] == ["training.json", "training.jsonl"]


def test_export_is_gated_by_the_contracts_and_offers_the_files(made) -> None:
    ws, at = made
    ids = ws.sql("SELECT conversation_id FROM conversations ORDER BY conversation_id LIMIT 30")["conversation_id"]
    tf.add_conversations(ws, "coaching-v1", ids.to_list())
    open_tab(at, "Export")
    assert any("have not run on this workspace" in w.value for w in at.warning)
    at.selectbox(key="export_format").set_value("openai_sft").run()
    at.button(key="export").click().run()
    assert any("export blocked" in e for e in errors(at)), errors(at)
    assert not (ws.root / "exports" / "coaching-v1" / "v2" / "openai_sft" / "brightrun_export.json").exists()

    at.text_input(key="export_reason").input("dry run of the loader")  # a form: sent with Export
    at.button(key="export").click().run()
    assert not errors(at), errors(at)
    assert any("passes every check of its consumer" in s.value for s in at.success)
    folder = ws.root / "exports" / "coaching-v1" / "v2" / "openai_sft"
    record = orjson.loads((folder / "brightrun_export.json").read_bytes())
    assert record["forced"] == "dry run of the loader" and record["valid"] is True
    labels = [b.label for b in at.get("download_button")]
    assert sorted(labels) == ["Download README.md", "Download brightrun_export.json", "Download data/test.jsonl",
                              "Download data/train.jsonl", "Download data/validation.jsonl",
                              "Download everything (zip)"]
    tokens = table(at, "split", "examples", "total_tokens")
    assert tokens["examples"].sum() == 30
    costs = table(at, "model", "estimated $")
    assert "gpt-4o-mini-2024-07-18" in costs["model"].to_list()
    assert (costs["estimated $"].dropna() > 0).all()
    # OpenAI targets are counted exactly, and the page says so (issue 15 item 6)
    assert any(m.value == "**Tokens per split** (exact (tiktoken o200k_base))" for m in at.markdown)
    labels = dict(table(at, "model", "token counts")[["model", "token counts"]].itertuples(index=False))
    assert labels["gpt-4o-mini-2024-07-18"] == "exact (tiktoken o200k_base)"
    assert "gpt-3.5-turbo-0125" not in labels  # priced only when named: its cl100k_base would double the counting


@pytest.fixture
def two_files(demo_copy: Workspace) -> Workspace:
    ids = demo_copy.sql("SELECT conversation_id FROM conversations ORDER BY conversation_id LIMIT 20")["conversation_id"]
    for name in ("alpha", "beta"):
        tf.create_training_file(demo_copy, name)
        tf.add_conversations(demo_copy, name, ids.to_list())
    return demo_copy


def test_the_open_file_and_tab_come_from_the_address(two_files: Workspace, monkeypatch) -> None:
    at = open_page(two_files.root, monkeypatch, training_file="beta", tf_tab="Versions")
    assert at.selectbox(key="training_file").value == "beta"
    assert at.session_state["tf_tab"] == "Versions"
    assert at.query_params["training_file"] == "beta"
    assert table(at, "version", "change")["version"].to_list() == [2, 1]  # the open tab ran; the others did not
    assert not {"add_filter", "remove", "split", "build"} & {b.key for b in at.button}


def test_the_last_export_is_offered_again_after_a_reload(two_files: Workspace, monkeypatch) -> None:
    from brightrun.training_files.export import export_folder, export_version

    version = tf.get_version(two_files, "beta").version
    export_version(two_files, "beta", "openai_sft", export_folder(two_files, "beta", version, "openai_sft"),
                   force_reason="a dry run")
    at = open_page(two_files.root, monkeypatch, training_file="beta", tf_tab="Export")
    labels = [b.label for b in at.get("download_button")]
    assert {"Download data/train.jsonl", "Download brightrun_export.json", "Download everything (zip)"} <= set(labels)
    shown = " ".join(i.value.replace("\\", "") for i in at.info)
    assert f"Last export of v{version}: openai_sft" in shown and "reason: a dry run" in shown
    other = open_page(two_files.root, monkeypatch, training_file="alpha", tf_tab="Export")
    assert not other.get("download_button")  # alpha has no export: nothing offered


def tabs_place(at: AppTest) -> int:
    """Where the tabs sit among the page's top-level elements."""
    (place,) = [i for i, node in at.main.children.items() if getattr(node, "type", None) == "tab_container"]
    return place


def test_the_tabs_keep_their_place_when_a_change_message_comes_and_goes(made) -> None:
    """A change's message shows on one run only. If the tabs moved up a place on the next run (a tab switch's, say),
    the browser drew them anew and a field typed into meanwhile, the export reason, lost its text."""
    ws, at = made
    at.button(key="add_filter").click().run()
    assert any("is now version 2" in s.value for s in at.success)
    with_message = tabs_place(at)
    at.run()
    assert not any("is now version 2" in s.value for s in at.success)
    assert tabs_place(at) == with_message


def test_the_tabs_keep_their_place_when_the_enrich_panel_comes_and_goes(demo_copy: Workspace, monkeypatch) -> None:
    tf.create_training_file(demo_copy, "coaching-v1")
    pending = demo_copy.sql("SELECT conversation_id FROM conversations ORDER BY conversation_id LIMIT 2")
    status = [{"conversation_id": cid, "status": "not_started", "enrichment_version": "2", "updated_at": utcnow()}
              for cid in pending["conversation_id"]]
    demo_copy.append("conversation_status", status)
    at = open_page(demo_copy.root, monkeypatch)
    assert at.button(key="tf_enrich").label == "Enrich 2 pending"
    with_panel = tabs_place(at)
    demo_copy.append("conversation_status", [dict(row, status="completed", updated_at=utcnow()) for row in status])
    at.run()
    assert "tf_enrich" not in [b.key for b in at.button]
    assert tabs_place(at) == with_panel


def test_the_export_reason_goes_with_export_as_one_form(made) -> None:
    """The browser keeps a form's text as it is typed: a rerun that re-draws the field cannot empty it."""
    ws, at = made
    ids = ws.sql("SELECT conversation_id FROM conversations ORDER BY conversation_id LIMIT 12")["conversation_id"]
    tf.add_conversations(ws, "coaching-v1", ids.to_list())
    open_tab(at, "Export")
    form = at.button(key="export").form_id
    assert form and at.text_input(key="export_reason").form_id == form
    at.text_input(key="export_reason").input("a dry run")
    at.button(key="export").click().run()
    assert any("passes every check of its consumer" in s.value for s in at.success), errors(at)
    assert any("recorded reason: a dry run" in c.value for c in at.caption)
