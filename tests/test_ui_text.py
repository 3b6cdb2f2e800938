"""Stored text is shown as text: `ui.plain` and `ui.defang` leave no Markdown image, link, heading or colour in
data, and a page shows a stored title through them (the browser test proves nothing is fetched)."""

from __future__ import annotations

import re

from brightrun.ui import defang, plain

HOSTILE = "![x](http://evil.example/x.png) # h :red[r] **b** <http://e.example> a@b.example www.e.example"


def _unescaped(text: str, chars: str) -> list[str]:
    return re.findall(r"(?<!\\)[" + re.escape(chars) + "]", text)


def test_plain_escapes_every_markdown_construct_and_breaks_bare_links() -> None:
    shown = plain(HOSTILE + "\nsecond line")
    assert _unescaped(shown, "![]()#*:<>") == []
    assert "://" not in shown and "www." not in shown and "b@" not in shown  # GFM autolinks need these
    # Removing the escapes and the invisible joiners gives the stored text back (new lines as spaces).
    assert re.sub(r"\\(.)", r"\1", shown).replace("\u2060", "") == HOSTILE + " second line"


def test_defang_keeps_code_and_bold_but_no_link_or_image() -> None:
    message = f"no experiment '{HOSTILE}'. Fix: list them with `brightrun experiments list`."
    shown = defang(message)
    assert _unescaped(shown, "[]<>") == [] and "://" not in shown
    assert "`brightrun experiments list`" in shown and "**b**" in shown
