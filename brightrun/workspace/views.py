"""The public SQL surface: view names and definitions over the latest rows of each table."""

from __future__ import annotations

# Public views over one table each: name -> table.
TABLE_VIEWS = {
    "batch_jobs": "batch_jobs",
    "batch_items": "batch_items",
    "turns": "turns",
    "llm_calls": "llm_calls",
    "failed_generations": "failed_generations",
    "training_pairs": "training_pairs",
    "enrichment_errors": "enrichment_errors",
    "conversation_quality": "conversation_quality",
    "response_cache": "response_cache",
    "provider_batches": "provider_batches",
    "judge_scores": "judge_scores",
    "feedback": "feedback",
    "import_errors": "import_errors",
    "template_labels": "template_labels",
    "experiments": "experiments",
    "training_files": "training_files",
    "training_file_versions": "training_file_versions",
    "training_file_conversations": "training_file_conversations",
    "finetuning_jobs": "finetuning_jobs",
    "finetuning_events": "finetuning_events",
    "model_versions": "model_versions",
    "delta_pins": "delta_pins",
}

# Views that combine tables; they refer to the `_t_<table>` relations.
DERIVED_VIEWS = {
    "template_labels_current": """
        SELECT * FROM _t_template_labels
        QUALIFY row_number() OVER (PARTITION BY template_key, label ORDER BY set_at DESC, label_id DESC) = 1
    """,
    "feedback_latest": """
        SELECT * FROM _t_feedback
        QUALIFY row_number() OVER (PARTITION BY target_type, target_id, reviewer
                                   ORDER BY created_at DESC, feedback_id DESC) = 1
    """,
    "conversations": """
        SELECT c.*,
               coalesce(s.status, 'not_started') AS enrichment_status,
               s.enrichment_version,
               s.updated_at AS enrichment_updated_at,
               q.quality_score, q.arc_adherence, q.emotion_match_rate, q.pair_count
        FROM _t_conversations c
        LEFT JOIN _t_conversation_status s USING (conversation_id)
        LEFT JOIN _t_conversation_quality q USING (conversation_id)
    """,
    "prompt_templates": """
        SELECT t.*, (t.version = cur.version) AS is_current
        FROM (
            SELECT template_key, version, name, tier, arc_type, description, system_prompt, body, model,
                   temperature, max_tokens, turns_min, turns_max, first_used_at
            FROM _t_template_versions
            UNION ALL BY NAME
            SELECT template_key, version, name, tier, arc_type, description, system_prompt, body, model,
                   temperature, max_tokens, turns_min, turns_max, NULL AS first_used_at
            FROM _scaffold_templates s
            WHERE NOT EXISTS (SELECT 1 FROM _t_template_versions v
                              WHERE v.template_key = s.template_key AND v.version = s.version)
        ) t
        LEFT JOIN _scaffold_templates cur USING (template_key)
    """,
    "personas": "SELECT * FROM _scaffold_personas",
    "emotional_arcs": "SELECT * FROM _scaffold_arcs",
    "training_topics": "SELECT * FROM _scaffold_topics",
}

VIEW_DOCS = {
    "conversations": "one row per conversation: scaffold keys, template version, variation (JSON draw), provider, "
                     "model, enrichment_status, quality_score, arc_adherence, pair_count; the producing call's "
                     "input_tokens, output_tokens, cost_usd and latency_ms (NULL where written before they were kept)",
    "turns": "one row per turn: conversation_id, turn_number, role (user/assistant), content",
    "training_pairs": "one row per advisor turn, in the enriched structure (history, input, target)",
    "batch_jobs": "one row per generation job with its status, counts, tokens and cost",
    "batch_items": "one row per scaffold cell to generate, with status and attempts",
    "failed_generations": "items that failed, with error type, message and raw response",
    "llm_calls": "every model call: action type, provider, model, tokens, cost, latency, request, response",
    "enrichment_errors": "conversations that enrichment quarantined, with the reason and the fix",
    "conversation_quality": "per conversation: mean quality score (0-10), arc adherence, emotion match rate, "
                            "and its training pairs (pair_count; NULL where written before it was kept)",
    "response_cache": "every paid model answer by request hash, so nothing is paid for twice",
    "import_errors": "bad rows of imported app logs: import_id, line, field, source column, reason, fix, value (redacted)",
    "experiments": "experiment definitions and their status (draft, running, paused, completed)",
    "template_labels": "every time a label (production, candidate, ...) was put on a template version, or removed",
    "template_labels_current": "which version each label of each template names now (version NULL: removed)",
    "feedback": "every judgement ever made (thumbs, rating, comment, edit) by reviewer and target, append-only",
    "feedback_latest": "the latest judgement per target and reviewer: the one that counts",
    "judge_scores": "LLM judge scores per training pair, rubric version and judge model (failed ones with the reason)",
    "provider_batches": "provider batch ids (Message Batches) with their items, so a restart resumes polling",
    "training_files": "one row per training file: name, description, created_at",
    "training_file_versions": "every version of every training file: members, splits, hashes, the versions "
                              "it was built from (the latest version is the current one)",
    "training_file_conversations": "membership rows per training file version, with split and cluster "
                                   "(a version counts once it is in training_file_versions)",
    "finetuning_jobs": "one row per fine-tuning job: training file version, base model, provider ids, status, "
                       "estimated and actual cost, the fine-tuned model",
    "finetuning_events": "every status change of every fine-tuning job, in order (the job's history)",
    "model_versions": "one row per fine-tuned model: its job, base model, training file version, version label "
                      "(v1, v2, ... per training file and base model) and deployment environment",
    "delta_pins": "the Delta version of each table a training-file version is made of, as published under "
                  "delta/<table>/ (kept by vacuum, readable by time travel)",
    "personas": "the scaffolding's personas",
    "emotional_arcs": "the scaffolding's emotional arcs, with tier",
    "training_topics": "the scaffolding's training topics",
    "prompt_templates": "every template version ever used or current, with tier and is_current",
}
