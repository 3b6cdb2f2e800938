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
