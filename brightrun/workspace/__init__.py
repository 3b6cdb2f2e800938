"""The storage layer: it alone owns paths, files and DuckDB.

May import: errors, models, scaffolding.
"""

from brightrun.workspace.workspace import (
    ENV_VAR,
    Workspace,
    contains,
    contains_pattern,
    open_workspace,
    resolve_path,
    utcnow,
)

__all__ = ["ENV_VAR", "Workspace", "contains", "contains_pattern", "open_workspace", "resolve_path", "utcnow"]
