"""The app's configuration: `make run` serves without a file watcher, and the favicon is a file of the repo."""

from __future__ import annotations

import tomllib
from pathlib import Path

from brightrun.ui.common import FAVICON

ROOT = Path(__file__).resolve().parent.parent


def test_make_run_watches_no_files() -> None:
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["fileWatcherType"] == "none"


def test_the_favicon_is_a_local_png_used_by_the_app() -> None:
    assert FAVICON.read_bytes().startswith(b"\x89PNG")
    assert "page_icon=str(FAVICON)" in (ROOT / "app.py").read_text()


def test_the_runner_has_no_magic_and_no_forced_gc() -> None:
    """Both cost every first run of a page (docs/benchmarks.md, "Page budget")."""
    runner = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["runner"]
    assert runner == {"magicEnabled": False, "postScriptGC": False}


def test_the_review_page_shows_no_attribute_docstring(demo_ws_path: Path, monkeypatch) -> None:
    """With magic, the bare strings documenting review.py's constants were written on the page."""
    from streamlit import config
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("BRIGHTRUN_WORKSPACE", str(demo_ws_path))
    monkeypatch.chdir(ROOT)
    config.get_config_options(force_reparse=True)  # the repo's .streamlit/config.toml, as `make run` reads it
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("pages/views/review.py").run()
    assert not at.exception and at.title[0].value == "Review"
    shown = " ".join(e.value for e in [*at.markdown, *at.caption, *at.text])
    assert "Keyboard: thumbs up (U)" not in shown and "What blind review hides" not in shown
