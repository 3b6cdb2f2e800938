"""P-values as people read them, for every message and table a person sees (the numbers stay exact in
`--json` and the API)."""

from __future__ import annotations

P_FLOOR = 0.0001
"""Below this a p-value reads "< 0.0001": more digits say nothing a reader can use."""


def fmt_p(value: float | None) -> str:
    """A p-value as people read it: "< 0.0001" below P_FLOOR, else two significant figures ("0.012", "0.5");
    "–" when there is none."""
    if value is None or value != value:  # None or NaN
        return "–"
    return f"< {P_FLOOR:g}" if value < P_FLOOR else f"{value:.2g}"


def p_is(value: float | None, name: str = "p") -> str:
    """`name` with its value for a sentence: "p = 0.012", "p < 0.0001", "adjusted p = 0.5"."""
    shown = fmt_p(value)
    return f"{name} {shown}" if shown.startswith("<") else f"{name} = {shown}"
