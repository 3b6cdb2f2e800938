"""BrightRun: the Streamlit entry. Navigation and the shared sidebar, nothing else.

The pages live in pages/views/, not directly in pages/: Streamlit's legacy discovery registers
every .py file directly in pages/ as a page, and until some session has run st.navigation it routes
a deep link (a bookmark, a reload of /generate?job=...) to that file alone, without this frame. Even with no
page file there, the first session after a start runs the legacy way once and shows "Page not found" over
a deep link's page; `make run` serves through brightrun.ui.serve, which tells Streamlit beforehand."""

import streamlit as st

from brightrun import ui
from brightrun.explore import totals
from brightrun.ui.common import FAVICON

st.set_page_config(page_title="BrightRun", page_icon=str(FAVICON), layout="wide")

pages = st.navigation([
    st.Page("pages/views/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page("pages/views/conversations.py", title="Conversations", icon=":material/forum:"),
    st.Page("pages/views/review.py", title="Review", icon=":material/rate_review:"),
    st.Page("pages/views/quality.py", title="Quality", icon=":material/verified:"),
    st.Page("pages/views/applogs.py", title="App logs", icon=":material/receipt_long:"),
    st.Page("pages/views/prompts.py", title="Prompts", icon=":material/difference:"),
    st.Page("pages/views/experiments.py", title="Experiments", icon=":material/science:"),
    st.Page("pages/views/training_files.py", title="Training files", icon=":material/dataset:"),
    st.Page("pages/views/finetuning.py", title="Fine-tuning", icon=":material/model_training:"),
    st.Page("pages/views/generate.py", title="Generate", icon=":material/auto_awesome:"),
])

with st.sidebar, ui.guard():
    ws = ui.workspace()
    t = totals(ws)
    st.caption("Workspace")
    # st.text, not st.code: a code block loads its syntax highlighter, about 0.3 s of the browser's time on
    # every page's first run (docs/benchmarks.md, "Page budget").
    st.text(str(ws.root))
    st.caption(f"{ui.fmt_int(t.conversations)} conversations · {ui.fmt_int(t.training_pairs)} training pairs")
    if t.scripted_share > 0:
        st.caption(f":material/smart_toy: {t.scripted_share:.0%} of conversations are scripted (offline demo data)")
    for problem in ws.problems:
        st.warning(problem)

pages.run()
