"""Where a process's start goes: `ledger serve` prints it once it
listens, phase by phase, measured from the process's own start."""

from __future__ import annotations

import os
import time
from pathlib import Path


class Phases:
    """Where a start's time went, from the process's start (the first phase,
    `imports`, includes the interpreter's own start): each mark ends a
    phase."""

    def __init__(self) -> None:
        self.origin = _process_age_origin()
        self.last = self.origin
        self.spans: list[tuple[str, float]] = []

    def mark(self, name: str) -> None:
        now = time.time()
        self.spans.append((name, now - self.last))
        self.last = now

    def __str__(self) -> str:
        parts = ", ".join(f"{name} {s:.2f}" for name, s in self.spans if s >= 0.005)
        return f"ready {self.last - self.origin:.2f} s after the process started ({parts})"


def _process_age_origin() -> float:
    """When this process started, to about 10 ms, from the kernel's clock
    ticks since boot (psutil's create_time rounds the boot time to a whole
    second); where there is no /proc, now."""
    now = time.time()
    try:
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        # The fields after the command's closing parenthesis; starttime is 22nd.
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return now
    return now - (uptime - started)
