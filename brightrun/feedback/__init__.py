"""Human feedback: recording judgements, the review queue, agreement between reviewers, export.

May import: errors, models, quality, workspace.
"""

from brightrun.feedback.agreement import Agreement, agreement, disagreements
from brightrun.feedback.queue import ReviewFilter, progress, review_items, review_queue
from brightrun.feedback.store import (
    current_judgements,
    export_feedback,
    history,
    history_table,
    judgements_for_conversation,
    record_feedback,
    reviewers,
    thumbs_up_unjudged,
)

__all__ = ["Agreement", "current_judgements", "ReviewFilter", "agreement", "disagreements", "export_feedback", "history", "history_table",
           "judgements_for_conversation", "progress", "record_feedback", "review_items", "review_queue", "reviewers",
           "thumbs_up_unjudged"]
