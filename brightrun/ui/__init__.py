"""Helpers for the Streamlit pages: the open workspace, error display and number formats (common.py), and
the page-specific figure and table builders (experiments.py, quality.py, training.py), the enrichment control
Overview and Conversations share (enrichment.py), the Review page's filters and Agreement tab (review.py),
and how `make run` serves the app (serve.py).

Pages use `from brightrun import ui` for the common helpers and import the others as modules.

May import: enrichment, errors, experiments, explore, exports, feedback, quality, stats, training_files, validation, workspace.
"""

from brightrun.ui.common import (
    defang,
           fmt_duration,
           fmt_int,
           fmt_p,
           fmt_usd,
           guard,
           key_for_base_url,
           new_seed,
           p_text,
           plain,
           workspace,
)

__all__ = ["defang", "fmt_duration", "fmt_int", "fmt_p", "fmt_usd", "guard", "key_for_base_url", "new_seed", "p_text",
           "plain", "workspace"]
