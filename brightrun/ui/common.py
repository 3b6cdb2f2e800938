"""Small helpers the Streamlit pages share: the cached workspace and error display."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl
import streamlit as st

from brightrun.errors import BrightRunError, os_error
from brightrun.stats.text import P_FLOOR, fmt_p  # noqa: F401 - every p-value the pages show goes through fmt_p
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
    """Show a BrightRunError (or an OSError a user can cause: read-only workspace, no permission, full disk)
    as an error box with its fix, and stop the page there."""
    try:
        yield
    except BrightRunError as exc:
        st.error(defang(str(exc)))
        st.stop()
    except OSError as exc:
        mapped = os_error(exc)
        if mapped is None:
            raise
        st.error(defang(str(mapped)))
        st.stop()


def metric_row(tiles: list[tuple[str, str, str | None]]) -> None:
    """Metric tiles (label, value, help) side by side in a row that wraps: on a narrow page (a laptop at
    1024 px) the tiles move onto more rows instead of cutting their values."""
    row = st.container(horizontal=True, wrap=True, gap="medium")
    for label, value, help_ in tiles:
        row.metric(label, value, help=help_, width="content")


def coverage_heatmap(matrix: pl.DataFrame, rows: str, *, colorscale: str, what: str, height_base: int = 120):
    """The figure of a coverage matrix (first column: the row labels): counts in the cells, the first row at the
    top, so every coverage heatmap (Overview, Quality's approved coverage) lists personas, arcs and topics in
    the same order, the order of the matrix. `what` names the counts in the hover ("conversations")."""
    import plotly.graph_objects as go

    values = matrix.drop(rows)
    figure = go.Figure(go.Heatmap(z=values.to_numpy(), x=values.columns, y=matrix[rows].to_list(),
                                  colorscale=colorscale, texttemplate="%{z}",
                                  hovertemplate=f"%{{y}} × %{{x}}: %{{z}} {what}<extra></extra>"))
    return figure.update_yaxes(autorange="reversed").update_layout(
        height=height_base + 42 * matrix.height, margin={"l": 10, "r": 10, "t": 10, "b": 10})


def dimension_bars(table: pl.DataFrame, dimension: str):
    """Conversations per value of `dimension` (a `by_dimension` table) as bars, mean turns and tokens in the hover.
    A plain `go.Bar`: Plotly Express took about 130 ms of the page's run for these few bars, and a pandas copy."""
    import plotly.graph_objects as go

    bars = go.Bar(x=table[dimension].to_list(), y=table["conversations"].to_list(),
                  customdata=table.select("mean_turns", "tokens").to_numpy(),
                  hovertemplate="%{x}: %{y} conversations<br>mean turns %{customdata[0]:.1f}, tokens "
                                "%{customdata[1]:,}<extra></extra>")
    return go.Figure(bars).update_layout(xaxis_title=dimension, yaxis_title="conversations",
                                         margin={"l": 10, "r": 10, "t": 10, "b": 10})


def key_first(frame: pl.DataFrame, *columns: str) -> pl.DataFrame:
    """`frame` with the key columns (those of `columns` it has, in that order) first, where a table shown on a
    laptop screen keeps them in view; the other columns follow in their order."""
    first = [c for c in dict.fromkeys(columns) if c in frame.columns]
    return frame.select(*first, *(c for c in frame.columns if c not in first))


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


P_COLUMNS = ("p_value", "p_adjusted", "p", "adjusted p", "always-valid p", "always-valid adjusted p")


def p_text(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with its p-value columns (P_COLUMNS) as `fmt_p` text, for a table a person reads."""
    return frame.with_columns(pl.col(c).map_elements(fmt_p, return_dtype=pl.String, skip_nulls=False)
                              for c in frame.columns if c in P_COLUMNS)


def new_seed() -> int:
    import random

    return random.randrange(2**31)


def key_for_base_url(base_url: str | None, *, key: str) -> str | None:
    """A password field for the key of a base URL typed in the page (None when no base URL or nothing typed).
    The server's own key never goes to a base URL typed in a browser (brightrun.providers.keys); this key is
    used for the run it is typed for and never stored."""
    if not base_url:
        return None
    return st.text_input("API key for this base URL", type="password", key=key,
                         help="Used for this run only, never stored. The server's own key is sent only to the "
                              "provider's official host or a base URL the operator set.") or None


_AUTOLINK = re.compile(r":/|www\.|\w@", re.IGNORECASE)
_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~:$=&\"'])")


def plain(value: object) -> str:
    """`value` (stored or model text: a title, a name, a comment, a log field) escaped for Streamlit's Markdown,
    so it shows as typed: no image is fetched, no link made, no heading, colour or icon from data. Line breaks
    become spaces (a title is one line). Escaping alone does not stop GFM's bare-URL and e-mail links, so an
    invisible word joiner (U+2060) breaks `://`, `www.` and `@`."""
    text = " ".join(str(value if value is not None else "").split())
    return _MARKDOWN_SPECIALS.sub(r"\\\1", _break_autolinks(text))


_LINK_SYNTAX = re.compile(r"([\[\]<>])")


def _break_autolinks(text: str) -> str:
    return _AUTOLINK.sub(lambda m: m.group(0)[:-1] + "\u2060" + m.group(0)[-1], text)


def defang(message: str) -> str:
    """A message that may quote data (an error naming a record, a name) with Markdown's link and image syntax
    escaped (`[`, `]`, `<`, `>`, and bare URLs broken as in `plain`); the rest (code spans, bold, line breaks)
    is kept."""
    return _LINK_SYNTAX.sub(r"\\\1", _break_autolinks(message))
