"""API keys: read from the environment (or, in the app, Streamlit's secrets), never stored anywhere.

May import: nothing from BrightRun.
"""

from __future__ import annotations

import os


def secret(name: str) -> str | None:
    """$name, else Streamlit's secrets[name] when running in the app; None when neither is set."""
    key = (os.environ.get(name) or "").strip()
    if key:
        return key
    try:
        import streamlit as st

        if st.runtime.exists():
            return st.secrets.get(name)
    except Exception:  # noqa: BLE001 - no secrets file is not an error here
        return None
    return None


def secret_table(name: str) -> dict[str, str]:
    """Streamlit's secrets[name] as a table of strings when running in the app; {} otherwise."""
    try:
        import streamlit as st

        if st.runtime.exists():
            table = st.secrets.get(name) or {}
            return {str(k): str(v) for k, v in dict(table).items()}
    except Exception:  # noqa: BLE001 - no secrets file, or not a table: no host keys
        return {}
    return {}
