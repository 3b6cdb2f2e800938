"""Ray for the heavy stages (`--engine ray`): starting or joining Ray, and the published Delta tables as Ray
datasets. Ray is optional (`pip install -e ".[ray]"`); nothing here imports it until asked.

Ray Data reads the tables other engines read (`delta/<table>/`, published first so they hold the current
rows), so its workers need no access to BrightRun's own store: on a cluster, put the workspace where every
node reads the same path (a shared file system), or publish to object storage. Results come back to this
process, which alone writes the workspace. docs/scale.md says how to point it at a cluster.
"""

from __future__ import annotations

import os
from typing import Any

from brightrun.errors import BrightRunError
from brightrun.workspace.pool import default_workers
from brightrun.workspace.publish import delta_path
from brightrun.workspace.workspace import Workspace

INSTALL_FIX = "install the extra with `pip install -e \".[ray]\"`, or run with --engine local"
START_WAIT_S = "180"
"""How long Ray may take to bring up its control store on a loaded machine (its default, 30 s, ran out)."""


def start_ray(num_cpus: int | None = None) -> Any:
    """The `ray` module, connected: to the cluster RAY_ADDRESS names, else to a Ray already started in this
    process, else to a local Ray of `num_cpus` CPUs (default: the cores this process may use)."""
    try:
        import ray
        import ray.data  # noqa: F401 - ray[data], not ray alone
    except ImportError as exc:
        raise BrightRunError(f"--engine ray needs Ray Data, which is not installed ({exc}). Fix: "
                             f"{INSTALL_FIX}.") from exc
    if ray.is_initialized():
        return ray
    os.environ.setdefault("RAY_gcs_server_port_wait_time_s", START_WAIT_S)
    address = os.environ.get("RAY_ADDRESS")
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=num_cpus or default_workers(), include_dashboard=False, log_to_driver=False)
    except Exception as exc:  # noqa: BLE001 - Ray raises many kinds (ConnectionError, RuntimeError, Exception)
        where = f"the Ray cluster at RAY_ADDRESS={address}" if address else "a local Ray"
        raise BrightRunError(f"could not start or join {where} ({str(exc).splitlines()[0] if str(exc) else exc!r}). "
                             f"Fix: check that the cluster is up (`ray status`), or unset RAY_ADDRESS to run "
                             f"locally, or use --engine local.") from exc
    return ray


def published_dataset(ws: Workspace, table: str, columns: list[str] | None = None) -> Any:
    """A Ray dataset of `table`'s current rows: the table is published first (nothing is written when it
    has not changed), then read with `ray.data.read_delta`."""
    import ray.data

    ws.publish([table])
    return ray.data.read_delta(str(delta_path(ws.store, table)), columns=columns)
