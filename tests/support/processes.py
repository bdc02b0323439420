"""Starting the service as a user would: `ledger serve` on a free port."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ledger_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "ledger.cli", *args]


def start(tmp_path: Path, where: list[str], env: dict) -> tuple[subprocess.Popen, str]:
    """`ledger serve` on a free port, once it says it is listening."""
    port = free_port()
    log = open(tmp_path / "serve.log", "w+")  # noqa: SIM115 - the child writes it
    process = subprocess.Popen(
        ledger_cmd("serve", "--port", str(port), *where),
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    log.close()
    deadline = time.monotonic() + 60
    while "listening on" not in (tmp_path / "serve.log").read_text():
        assert process.poll() is None, (tmp_path / "serve.log").read_text()
        assert time.monotonic() < deadline, "the service did not start"
        time.sleep(0.1)
    return process, f"http://127.0.0.1:{port}"
