"""Exploring a workspace: the queries behind the Overview page and the `status` command (overview.py) and
behind the Conversations page (browse.py): totals, coverage of the scaffold grid, filters and details.

May import: errors, workspace.
"""

from brightrun.explore.browse import (
    ConversationFilter,
    conversation_detail,
    count_conversations,
    filter_options,
    job_ids,
    list_conversations,
)
from brightrun.explore.overview import (
    by_dimension,
    coverage,
    dimension_labels,
    job_enrichment,
    recent_jobs,
    totals,
)

__all__ = ["ConversationFilter", "by_dimension", "conversation_detail", "count_conversations", "coverage",
           "dimension_labels", "filter_options", "job_enrichment", "job_ids", "list_conversations", "recent_jobs", "totals"]
