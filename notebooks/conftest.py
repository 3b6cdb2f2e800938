"""The notebooks run (under nbmake) against a small demo workspace built for the test session."""

from __future__ import annotations

import os
import shutil
import tempfile

_made: list[str] = []


def pytest_configure(config) -> None:
    if os.environ.get("BRIGHTRUN_NOTEBOOK_WORKSPACE"):
        os.environ["BRIGHTRUN_WORKSPACE"] = os.environ["BRIGHTRUN_NOTEBOOK_WORKSPACE"]
        return
    from brightrun.demo import build_demo
    from brightrun.workspace import Workspace

    path = tempfile.mkdtemp(prefix="brightrun-notebooks-")
    build_demo(Workspace.open(path), 200, seed=11)
    os.environ["BRIGHTRUN_WORKSPACE"] = path
    _made.append(path)


def pytest_unconfigure(config) -> None:
    for path in _made:
        shutil.rmtree(path, ignore_errors=True)
