"""Small helpers the Streamlit pages share: the cached workspace and error display."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import streamlit as st

from brightrun.errors import BrightRunError
from brightrun.workspace import Workspace, resolve_path

FAVICON = Path(__file__).resolve().parent / "assets" / "favicon.png"
"""The app's icon, served by the app itself (a Material icon as page_icon makes every page fetch it from
fonts.gstatic.com, which fails offline)."""


@st.cache_resource(show_spinner=False)
def _open(path: str) -> Workspace:
    return Workspace.open(path)


def workspace() -> Workspace:
    """The workspace named by $BRIGHTRUN_WORKSPACE (else ./data), one per app process."""
    return _open(str(resolve_path().resolve()))


@contextmanager
def guard() -> Iterator[None]:
    """Show a BrightRunError as an error box with its fix, and stop the page there."""
    try:
        yield
    except BrightRunError as exc:
        st.error(str(exc))
        st.stop()


def metric_row(tiles: list[tuple[str, str, str | None]]) -> None:
    """Metric tiles (label, value, help) side by side in a row that wraps: on a narrow page (a laptop at
    1024 px) the tiles move onto more rows instead of cutting their values."""
    row = st.container(horizontal=True, wrap=True, gap="medium")
    for label, value, help_ in tiles:
        row.metric(label, value, help=help_, width="content")


def fmt_int(value: int | float) -> str:
    return f"{int(value):,}"


def fmt_usd(value: float) -> str:
    return f"${value:,.2f}" if value >= 0.01 or value == 0 else f"${value:,.4f}"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def new_seed() -> int:
    import random

    return random.randrange(2**31)
