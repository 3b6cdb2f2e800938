"""Stored text is shown as text: a conversation title holding a Markdown image (and a bare URL) makes the
viewer's browser fetch nothing and draws no image or link."""

from __future__ import annotations

import shutil

import pytest
from conftest import AppServer, choose, rerun_after, wait_idle
from key_listener import KeyListener

from brightrun.models import Conversation
from brightrun.workspace import Workspace

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def listener():
    with KeyListener() as srv:
        yield srv


@pytest.fixture(scope="module")
def hostile_app(demo_ws_path, tmp_path_factory, listener):
    workspace = tmp_path_factory.mktemp("hostile") / "ws"
    shutil.copytree(demo_ws_path, workspace)
    ws = Workspace.open(workspace)
    row = ws.sql("SELECT * FROM conversations ORDER BY created_at DESC LIMIT 1").row(0, named=True)
    title = f"![x]({listener.url}/image.png) see {listener.url}/bare.png **bold**"
    fields = {k: v for k, v in row.items() if k in Conversation.model_fields} | {"title": title}
    ws.append_models("conversations", [Conversation.model_validate(fields)])
    server = AppServer(workspace, tmp_path_factory.mktemp("logs") / "streamlit.log")
    yield server, title, row["conversation_id"]
    server.stop()


def test_a_title_holding_a_markdown_image_fetches_nothing(browser, hostile_app, listener):
    server, title, conversation_id = hostile_app
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    page.goto(server.url)
    wait_idle(page, timeout=60_000)
    rerun_after(page, page.locator('[data-testid="stSidebarNavLink"]').filter(has_text="Conversations").click)
    choose(page, "Open conversation", f"{title} · {conversation_id}")
    heading = page.locator("h3").filter(has_text="![x](")
    heading.wait_for()
    assert heading.inner_text().strip().replace("\u2060", "") == title  # shown as stored (word joiners aside)
    page.wait_for_timeout(1000)  # time for any image request to leave
    assert page.locator(f'img[src*="{listener.url}"]').count() == 0
    links = page.locator(f'a[href*="{listener.url}"]')
    assert links.count() == 0, [links.nth(i).evaluate("e => e.outerHTML.slice(0, 300)") for i in range(links.count())]
    assert listener.requests == []
    page.close()
