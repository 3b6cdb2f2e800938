"""SQL over the workspace views in a DuckDB that cannot touch files: `brightrun sql --read-only`, and the
mode for any SQL a browser user may give.

Plain `Workspace.sql` runs full DuckDB with the rights of the user running it: `COPY ... TO` writes files,
`read_csv('/etc/passwd')` reads them. Here the rows of the tables the query uses are read by BrightRun first
(polars) and handed to a fresh in-memory DuckDB as Arrow data; then `enable_external_access` is turned off
and the configuration locked, so the query can neither read nor write any file (DuckDB's
`allowed_directories` would not do: it lets `COPY ... TO` write into the allowed folders). The cost is
that the tables the query names are read whole into memory.
"""

from __future__ import annotations

import re

import duckdb
import polars as pl

from brightrun.errors import WorkspaceError
from brightrun.workspace.tables import TABLES
from brightrun.workspace.views import DERIVED_VIEWS, TABLE_VIEWS

VIEW_NAMES = {*TABLE_VIEWS, *DERIVED_VIEWS}


def tables_used(query: str) -> set[str]:
    """The workspace tables a query reads, through the views it names (all tables if it cannot be parsed)."""
    try:
        names = duckdb.get_table_names(query)
    except duckdb.Error:
        return set(TABLES)
    used: set[str] = set()
    seen: set[str] = set()
    while names:
        name = names.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in TABLE_VIEWS:
            used.add(TABLE_VIEWS[name])
        elif name.startswith("_t_") and name[3:] in TABLES:
            used.add(name[3:])
        elif name in DERIVED_VIEWS:  # by the words of its body (get_table_names binds USING joins and fails)
            names |= {w for w in re.findall(r"\w+", DERIVED_VIEWS[name]) if w in VIEW_NAMES or w.startswith("_t_")}
    return used


def read_only_sql(ws, query: str, params: list | dict | None = None) -> pl.DataFrame:
    """Run `query` over the workspace views with no file access at all (see the module docstring)."""
    used = tables_used(query)
    con = duckdb.connect()
    try:
        con.execute("SET threads = 2")
        ws._register_scaffolding(ws.scaffolding, con)
        for table in TABLES:
            frame = ws.read(table) if table in used else pl.DataFrame(schema=ws.store.spec(table).schema)
            con.register(f"_t_{table}", frame.to_arrow())
        for name, table in TABLE_VIEWS.items():
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM _t_{table}")
        for name, body in DERIVED_VIEWS.items():
            con.execute(f"CREATE VIEW {name} AS {body}")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        try:
            return con.sql(query, params=params).pl()
        except duckdb.PermissionException as exc:
            raise WorkspaceError(f"--read-only refuses file access: {exc}. Fix: query the workspace views only, "
                                 f"or drop --read-only to run full DuckDB with your own rights.") from None
        except duckdb.Error as exc:
            raise WorkspaceError(f"query failed: {exc}. Fix: correct the SQL; --read-only runs only queries over "
                                 f"the workspace views (no files, no settings).") from None
    finally:
        con.close()
