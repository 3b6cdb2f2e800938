"""From a job to its conversations: the Conversations filter by job (brightrun.explore). The pages' side (the
Conversations page taking the job from the address, Generate's link to it) is in test_app_url_state.py."""

from __future__ import annotations

from brightrun.explore import ConversationFilter, count_conversations, job_ids, list_conversations
from brightrun.workspace import Workspace


def a_job(ws: Workspace) -> tuple[str, int]:
    """A job with conversations, and how many it made."""
    return ws.sql("SELECT job_id, count(*) FROM conversations WHERE job_id IS NOT NULL GROUP BY 1 "
                  "ORDER BY 2, 1 LIMIT 1").row(0)


def test_the_filter_keeps_one_jobs_conversations(demo_ws: Workspace) -> None:
    job, made = a_job(demo_ws)
    everything = count_conversations(demo_ws, ConversationFilter())
    assert count_conversations(demo_ws, ConversationFilter(jobs=[job])) == made < everything
    listed = list_conversations(demo_ws, ConversationFilter(jobs=[job], limit=10_000))["conversation_id"].to_list()
    expected = demo_ws.sql("SELECT conversation_id FROM conversations WHERE job_id = ?", [job])["conversation_id"]
    assert sorted(listed) == sorted(expected.to_list())
    assert count_conversations(demo_ws, ConversationFilter(jobs=["no-such-job"])) == 0
    assert job in job_ids(demo_ws)
