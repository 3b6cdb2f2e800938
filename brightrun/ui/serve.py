"""How `make run` serves the app: `streamlit run app.py` in this process, with Streamlit told before the first
session that the app navigates with `st.navigation`.

Run it from the folder that holds app.py: `python -m brightrun.ui.serve [streamlit run options]`, e.g.
`python -m brightrun.ui.serve --server.port 8600`.

Why not plain `streamlit run app.py`: Streamlit 1.67 learns that an app uses `st.navigation` only when a
session first runs it (the class attribute `PagesManager.uses_pages_directory`). Until then a `pages/` folder
beside app.py makes it run the first session's first run the legacy multipage way, which knows no page but
app.py. So the first visitor after a start who opens a deep link (a bookmark of /review?..., a shared link)
gets a "Page not found" dialog over the page, although the page itself is right. Setting the attribute
before serving does what that first run would have done. Plain `streamlit run app.py` still works; only that
first deep link shows the dialog.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.web.cli import main as streamlit_main

    PagesManager.uses_pages_directory = False  # what the first st.navigation run sets (module docstring)
    streamlit_main(["run", "app.py", *(sys.argv[1:] if argv is None else argv)], prog_name="streamlit")


if __name__ == "__main__":
    main()
