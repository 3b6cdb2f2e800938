"""Shared fixtures: workspaces built in temporary folders, never the user's data/."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from brightrun.demo import build_demo
from brightrun.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def demo_ws_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo workspace (160 conversations), built once per test session. Do not modify it."""
    path = tmp_path_factory.mktemp("demo") / "ws"
    build_demo(Workspace.open(path), 160, seed=3)
    return path


@pytest.fixture
def demo_ws(demo_ws_path: Path) -> Workspace:
    return Workspace.open(demo_ws_path)


@pytest.fixture
def demo_copy(demo_ws_path: Path, tmp_path: Path) -> Workspace:
    """A private copy of the demo workspace that a test may change."""
    target = tmp_path / "ws"
    shutil.copytree(demo_ws_path, target, ignore=shutil.ignore_patterns("locks"))
    return Workspace.open(target)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    """An empty workspace with the default scaffolding library."""
    return Workspace.open(tmp_path / "ws")


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """Environment for running `brightrun` in a subprocess."""
    env = dict(os.environ)
    env.pop("BRIGHTRUN_WORKSPACE", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def server():
    """A local OpenAI files + fine-tuning API (tests/openai_ft_server.py), called by the real SDK."""
    from openai_ft_server import FakeOpenAIFineTuning

    with FakeOpenAIFineTuning() as srv:
        yield srv


@pytest.fixture
def advisor(demo_copy: Workspace) -> Workspace:
    """The demo copy with training file 'advisor' v2: the marcus_chen and david_chen conversations."""
    from brightrun.training_files import add_conversations, create_training_file

    create_training_file(demo_copy, "advisor")
    add_conversations(demo_copy, "advisor", saved_filter={"persona_key": ["marcus_chen", "david_chen"]})
    return demo_copy
