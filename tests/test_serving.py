"""Safe defaults for serving: `make run`'s launcher (brightrun.ui.serve) and `streamlit run app.py`, with no
address given, listen on 127.0.0.1 only."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _listening_addresses(port: int) -> set[str]:
    """The local addresses with a socket listening on `port` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


@pytest.mark.parametrize("launch", [["brightrun.ui.serve"], ["streamlit", "run", "app.py"]])
def test_the_app_binds_to_loopback_unless_the_operator_says_otherwise(launch: list[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_")}
    process = subprocess.Popen([sys.executable, "-m", *launch, "--server.headless", "true",
                                "--server.port", str(port), "--server.fileWatcherType", "none"],
                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "the app did not start"
            time.sleep(0.3)
        assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1, and nothing else
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert "-m brightrun.ui.serve --server.port $(PORT) --server.address $(ADDRESS)" in (ROOT / "Makefile").read_text()
