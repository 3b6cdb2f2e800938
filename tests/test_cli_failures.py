"""Every failure a user can cause ends in `error: ... Fix: ...` with exit code 2: a lock another process holds
(naming its command and since when), a read-only workspace, no permission, a full disk."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from brightrun.cli.main import main
from brightrun.workspace import Workspace
from brightrun.workspace.store import TableStore

ROOT = Path(__file__).resolve().parent.parent

HOLDER = textwrap.dedent("""
    import sys, time
    from brightrun.workspace import Workspace
    ws = Workspace.open(sys.argv[1], create=False)
    sys.argv = ["brightrun", "enrich", "-w", sys.argv[1]]  # as the real command would be
    with ws.lock("enrichment"):
        print("held", flush=True)
        time.sleep(60)
""")


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["brightrun", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    return exited.value.code, capsys.readouterr().err


def test_a_second_enrich_names_the_command_holding_the_lock(ws: Workspace, monkeypatch, capsys) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(ws.root)], stdout=subprocess.PIPE, text=True,
                              env=env)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.time()
        code, err = run_main(monkeypatch, capsys, "enrich", "-w", str(ws.root))
        assert code == 2, err
        assert err.startswith("error: the workspace lock 'enrichment' is held by "), err
        assert f"`brightrun enrich -w {ws.root}` (process {holder.pid} on" in err
        assert " since 20" in err and "Fix: wait for it to finish" in err and "Traceback" not in err
        assert time.time() - started < 30
    finally:
        holder.kill()
        holder.wait()
    # Once it is gone the lock is free and enrich runs.
    code, err = run_main(monkeypatch, capsys, "enrich", "-w", str(ws.root))
    assert code == 0 and "Enriched 0 conversation(s)" in capsys.readouterr().out + err


@pytest.mark.parametrize(("code", "expected"), [
    (errno.EROFS, "the workspace is on a read-only file system"),
    (errno.EACCES, "no permission to write in the workspace"),
    (errno.ENOSPC, "the disk is full"),
])
def test_write_failures_end_in_error_and_fix(ws: Workspace, monkeypatch, capsys, code: int, expected: str) -> None:
    # Tests may run as root, where chmod does not stop writes: the write point raises what the OS would.
    def refuse(self, table, rows):
        raise OSError(code, os.strerror(code), str(self.folder(table)))

    monkeypatch.setattr(TableStore, "append", refuse)
    status, err = run_main(monkeypatch, capsys, "training-file", "create", "advisor", "-w", str(ws.root))
    assert status == 2
    assert err.startswith(f"error: {expected}") and str(ws.root / "tables") in err, err
    assert "Fix:" in err and "Traceback" not in err


def test_other_os_errors_are_not_disguised(ws: Workspace, monkeypatch) -> None:
    def broken(self, table, rows):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(TableStore, "append", broken)
    monkeypatch.setattr(sys, "argv", ["brightrun", "training-file", "create", "advisor", "-w", str(ws.root)])
    with pytest.raises(OSError, match="Input/output error"):
        main()


def test_a_page_shows_a_read_only_workspace_as_an_error_with_its_fix(ws: Workspace, monkeypatch) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("BRIGHTRUN_WORKSPACE", str(ws.root))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90).run()
    at.switch_page("pages/views/training_files.py").run()

    def refuse(self, table, rows):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self.folder(table)))

    monkeypatch.setattr(TableStore, "append", refuse)
    at.text_input[0].input("advisor")
    at.button[0].click().run()
    assert not at.exception, at.exception
    shown = [e.value for e in at.error]
    assert any("read-only file system" in e and "Fix:" in e for e in shown), shown


def test_status_still_works_on_a_read_only_workspace(ws: Workspace, monkeypatch, capsys) -> None:
    """What the read-only message promises: read-only commands still work there, interrupted job included."""
    from brightrun.generation import create_job
    from brightrun.generation.jobs import make_plan
    from brightrun.workspace.locks import HolderLock

    create_job(ws, make_plan(ws, ["marcus_chen"], ["fear_to_security"], ["emergency_fund"], count=1),
               provider="scripted", model="scripted-1", job_id="j1")

    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self.holder_path))

    monkeypatch.setattr(HolderLock, "acquire", read_only)
    code, err = run_main(monkeypatch, capsys, "status", "-w", str(ws.root), "--json")
    assert code == 0, err
