"""Training files: versioned sets of enriched conversations, their JSON + JSONL, and leak-free splits.

May import: datasets, enrichment, errors, exports, quality, validation, workspace.
"""

from brightrun.training_files.build import Built, build_version, check_agreement, iter_conversations
from brightrun.training_files.core import (
    FilterMatch,
    TrainingFileError,
    Version,
    add_conversations,
    add_matching,
    assign_splits,
    create_training_file,
    get_version,
    ids_from_filter,
    ineligible,
    list_training_files,
    match_filter,
    members,
    remove_conversations,
    split_counts,
    versions,
)
from brightrun.training_files.leakage import leakage_report, stored_leakage_report

__all__ = [
    "Built", "FilterMatch", "TrainingFileError", "Version", "add_conversations", "add_matching", "assign_splits",
    "build_version", "match_filter",
    "check_agreement", "create_training_file", "get_version", "ids_from_filter", "ineligible",
    "iter_conversations",
    "leakage_report", "list_training_files", "members", "remove_conversations", "split_counts",
    "stored_leakage_report", "versions",
]
