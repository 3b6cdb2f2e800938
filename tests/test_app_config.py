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
