"""BrightRun: the Streamlit entry. Navigation and the shared sidebar, nothing else."""

import streamlit as st

from brightrun import ui
from brightrun.overview import totals

st.set_page_config(page_title="BrightRun", page_icon=":material/stacked_line_chart:", layout="wide")

pages = st.navigation([
    st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page("pages/conversations.py", title="Conversations", icon=":material/forum:"),
    st.Page("pages/generate.py", title="Generate", icon=":material/auto_awesome:"),
])

with st.sidebar, ui.guard():
    ws = ui.workspace()
    t = totals(ws)
    st.caption("Workspace")
    st.code(str(ws.root), language=None)
    st.caption(f"{ui.fmt_int(t.conversations)} conversations · {ui.fmt_int(t.training_pairs)} training pairs")
    if t.scripted_share > 0:
        st.caption(f":material/smart_toy: {t.scripted_share:.0%} of conversations are scripted (offline demo data)")
    for problem in ws.problems:
        st.warning(problem)

pages.run()
