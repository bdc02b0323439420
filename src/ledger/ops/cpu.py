"""Where a posting's CPU goes: every process on the machine sampled once a
second during a run, each put in a kind (the database, the services, their
background processes, the load generator, everything else), so a step's
CPU-milliseconds per acknowledged posting can be told by kind. CPU-ms per
posting is also the cores needed per 1,000 postings/s.

A process's CPU is read from the kernel's counters (user + system, and its
exited children's: a PostgreSQL backend's time lands in the postmaster's
when it exits), so what a window costs is the difference of two samples,
whatever the machine's load: the figure a noisy, shared machine disturbs
least. One approximation: a backend that exits inside a window counts
there twice (its own counter, then its whole life in the postmaster's);
the services' pools keep their backends for the whole run.
"""

from __future__ import annotations

import re
import threading
import time
from collections import defaultdict
from collections.abc import Iterable

import psutil

KINDS = ("database", "services", "background", "load", "other")
INTERVAL_SECONDS = 1.0


def kind_of(cmdline: list[str]) -> str:
    """The kind of a process, by its command line."""
    text = " ".join(cmdline)
    if "ledger.background" in text:
        return "background"
    if re.search(r"(^|[/ ])ledger(\.cli)? serve\b", text):
        return "services"
    if "locust" in text:
        return "load"
    if cmdline and (cmdline[0].endswith("postgres") or cmdline[0].startswith("postgres:")):
        return "database"
    return "other"


# A sample: (time, {pid: (kind, cumulative CPU seconds)}).
Sample = tuple[float, dict[int, tuple[str, float]]]


def take_sample() -> Sample:
    now = time.time()
    seen: dict[int, tuple[str, float]] = {}
    for p in psutil.process_iter(["cmdline"]):
        try:
            t = p.cpu_times()
            cmdline = p.info["cmdline"] or [p.name()]
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        used = t.user + t.system + t.children_user + t.children_system
        seen[p.pid] = (kind_of(cmdline), used)
    return now, seen


def cpu_by_kind(samples: list[Sample], start: float, end: float) -> dict[str, float]:
    """CPU seconds each kind used between the last sample at or before
    `start` and the first at or after `end` (the nearest ones inside when
    there are none outside). A process seen only partway counts from its
    first to its last sample in that span."""
    inside = [s for s in samples if start <= s[0] <= end]
    before = [s for s in samples if s[0] < start]
    after = [s for s in samples if s[0] > end]
    opens = before[-1:] if not inside or inside[0][0] > start else []
    closes = after[:1] if not inside or inside[-1][0] < end else []
    span = opens + inside + closes
    used: dict[str, float] = defaultdict(float)
    if len(span) < 2:
        return {k: 0.0 for k in KINDS}
    first: dict[int, tuple[str, float]] = {}
    last: dict[int, tuple[str, float]] = {}
    for _, processes in span:
        for pid, seen in processes.items():
            first.setdefault(pid, seen)
            last[pid] = seen
    for pid, (kind, cpu) in last.items():
        # A reused pid of another kind, or a counter that went back: skip.
        if first[pid][0] == kind and cpu >= first[pid][1]:
            used[kind] += cpu - first[pid][1]
    return {k: used.get(k, 0.0) for k in KINDS}


def per_posting(used: dict[str, float], postings: int) -> dict[str, float] | None:
    """CPU-milliseconds per posting by kind, and their total (which is also
    the cores per 1,000 postings/s); None without postings."""
    if postings <= 0:
        return None
    ms = {k: round(1000 * v / postings, 3) for k, v in used.items()}
    ms["total"] = round(sum(used.values()) * 1000 / postings, 3)
    return ms


class Sampler:
    """Samples in a thread of its own from `start()` to `stop()`."""

    def __init__(self, interval: float = INTERVAL_SECONDS) -> None:
        self.interval = interval
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def start(self) -> Sampler:
        self.samples.append(take_sample())
        self._thread.start()
        return self

    def stop(self) -> list[Sample]:
        self._stop.set()
        self._thread.join()
        self.samples.append(take_sample())
        return self.samples

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append(take_sample())


def steps_cost(samples: list[Sample], levels: Iterable[dict], ack_times: list[float]) -> None:
    """Each step's CPU-ms per acknowledged posting by kind, set on it as
    `cpu_ms_per_posting`."""
    for level in levels:
        postings = sum(1 for t in ack_times if level["start"] <= t < level["end"])
        used = cpu_by_kind(samples, level["start"], level["end"])
        level["cpu_ms_per_posting"] = per_posting(used, postings)
