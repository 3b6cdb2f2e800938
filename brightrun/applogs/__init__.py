"""Production app logs: import them (JSONL, CSV, Parquet) as LLM calls and feedback, find and redact
the personal data they hold, and build the demo's coaching-app log.

    from brightrun.applogs import import_log, guess_mapping, redact
    result = import_log(ws, "app_log.jsonl")          # mapping guessed from the column names
    result.new_calls, result.already_present, result.errors[:5], result.pii

May import: errors, providers, workspace.
"""

from brightrun.applogs.folders import allowed_log_path, import_dirs, list_log_files
from brightrun.applogs.importer import (
    ImportProgress,
    ImportResult,
    import_log,
    inspect_log,
    list_imports,
    save_upload,
)
from brightrun.applogs.mapping import ColumnMapping, guess_mapping, mapping_from_dict, parse_map_options
from brightrun.applogs.pii import (
    KINDS,
    PLACEHOLDERS,
    detect,
    pii_counts,
    redact,
    redact_counted,
    redact_frame,
    redact_series,
)
from brightrun.applogs.readers import BadRow

__all__ = [
    "KINDS", "PLACEHOLDERS", "BadRow", "ColumnMapping", "ImportProgress", "ImportResult", "allowed_log_path",
    "detect", "guess_mapping", "import_dirs", "list_log_files",
    "import_log", "inspect_log", "list_imports", "mapping_from_dict", "parse_map_options", "pii_counts", "redact",
    "redact_counted", "redact_frame", "redact_series", "save_upload",
]
