"""The storage layer: it alone owns paths, files and DuckDB.

May import: errors, models, scaffolding.
"""

from brightrun.workspace.workspace import (
    CONTAINS,
    ENV_VAR,
    Workspace,
    contains_pattern,
    open_workspace,
    resolve_path,
    utcnow,
)

__all__ = ["CONTAINS", "ENV_VAR", "Workspace", "contains_pattern", "open_workspace", "resolve_path", "utcnow"]
