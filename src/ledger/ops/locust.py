"""Running Locust for the operator tools: a headless master and one worker
process per core, on 127.0.0.1, with a locustfile shipped in
`ledger/ops/locustfiles/`; and reading back what it wrote (its per-second
history, and the acknowledged postings the locustfiles record)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ledger.ops.files import free_port, locustfiles

REQUEST_LOG = "requests.log"
STEP_LOG = "steps.log"

if TYPE_CHECKING:
    from ledger.ops.bench import BenchOptions


class LocustRun:
    """A running Locust master and its workers."""

    def __init__(self, master: subprocess.Popen, workers: list[subprocess.Popen], limit: float):
        self.master = master
        self.workers = workers
        self.limit = limit

    def wait(self) -> int:
        try:
            return self.master.wait(self.limit)
        finally:
            for w in self.workers:
                try:
                    w.wait(30)
                except subprocess.TimeoutExpired:
                    w.kill()


def start(options: BenchOptions, out: Path, ack_log: Path) -> LocustRun:
    """Master and workers, writing to `out`: Locust's CSV and HTML, the
    acknowledgements (`ack_log`), the request log and the step log
    (`REQUEST_LOG`, `STEP_LOG`: see `ledger.ops.figures`)."""
    locustfile = locustfiles() / f"{options.shape}.py"
    if not locustfile.exists():
        raise FileNotFoundError(f"no locustfile for shape {options.shape!r}: {locustfile}")
    env = dict(os.environ)
    env.update(
        LEDGER_TARGETS=",".join(options.targets),
        LEDGER_ACCOUNTS=str(options.accounts),
        LEDGER_ACK_LOG=str(ack_log),
        LEDGER_SEEDED="1",
        LEDGER_STEP_USERS=str(options.step_users),
        LEDGER_STEP_SECONDS=str(options.step_seconds),
        LEDGER_MAX_USERS=str(options.max_users),
        LEDGER_DURATION=str(options.duration),
        LEDGER_P99_MS=str(options.p99_ms),
        LEDGER_MAX_ERRORS=str(options.max_errors),
        LEDGER_API_KEY=options.api_key,
        LEDGER_BATCH_SIZE=str(options.batch_size),
        LEDGER_BENCH_READS=options.reads,
        LEDGER_REQUEST_LOG=str(out / REQUEST_LOG),
        LEDGER_STEP_LOG=str(out / STEP_LOG),
    )
    port = free_port()
    locust = [sys.executable, "-m", "locust", "-f", str(locustfile)]
    master = subprocess.Popen(
        [
            *locust,
            "--master",
            "--headless",
            f"--expect-workers={options.workers}",
            "--master-bind-host=127.0.0.1",
            f"--master-bind-port={port}",
            f"--host={options.targets[0]}",
            f"--csv={out / 'locust'}",
            "--csv-full-history",
            f"--html={out / 'locust.html'}",
            "--only-summary",
            "--exit-code-on-error=0",
        ],
        env=env,
        stdout=open(out / "locust-master.log", "w"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )
    workers = [
        subprocess.Popen(
            [*locust, "--worker", "--master-host=127.0.0.1", f"--master-port={port}"],
            env=env,
            stdout=open(out / f"locust-worker-{i}.log", "w"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        for i in range(options.workers)
    ]
    return LocustRun(master, workers, options.duration + 120)


def read_acks(ack_log: Path) -> list[tuple[str, str, float]]:
    acks = []
    if ack_log.exists():
        for line in ack_log.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2:
                acks.append((parts[0], parts[1], float(parts[2]) if len(parts) > 2 else 0.0))
    return acks


def history(out: Path) -> list[dict]:
    """Locust's per-second aggregate rows: time, users, requests so far,
    failures so far, current p50/p95/p99."""
    rows = []
    path = out / "locust_stats_history.csv"
    if not path.exists():
        return rows
    with open(path) as f:
        for r in csv.DictReader(f):
            if r["Name"] != "Aggregated":
                continue

            def num(v: str) -> float:
                return float(v) if v not in ("N/A", "") else 0.0

            rows.append(
                {
                    "t": int(r["Timestamp"]),
                    "users": int(r["User Count"]),
                    "requests": int(r["Total Request Count"]),
                    "failures": int(r["Total Failure Count"]),
                    "p50": num(r["50%"]),
                    "p95": num(r["95%"]),
                    "p99": num(r["99%"]),
                }
            )
    # One row per second (Locust may write two in one second).
    by_second: dict[int, dict] = {}
    for row in rows:
        by_second[row["t"]] = row
    return [by_second[t] for t in sorted(by_second)]
