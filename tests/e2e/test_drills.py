"""The failure drills, short, on a real local cluster: kill a service, reset
every database session, crash the primary and restart it, crash it and fail
over to the synchronous standby. Each runs a few seconds of load and must
report zero acknowledged postings lost, zero written twice, and clean books.
They assert no speed (recovery times are reported, not judged)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(os.environ.get("LEDGER_TEST_DATABASE_URL")),
        reason="builds its own PostgreSQL cluster; nothing here depends on the test database",
    ),
]


def ledger(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ledger.cli", *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    directory = tmp_path_factory.mktemp("drills") / "cluster"
    up = ledger("cluster", "up", "--dir", str(directory), "--services", "2")
    assert up.returncode == 0, up.stderr + up.stdout
    yield directory
    down = ledger("cluster", "down", "--dir", str(directory), "--purge")
    assert down.returncode == 0 and not directory.exists(), down.stdout + down.stderr


# Order matters a little: the failover comes last, as it leaves the servers'
# roles swapped (which the next drill would handle, but more slowly).
@pytest.mark.parametrize(
    "scenario", ["conn-reset", "service-kill", "db-restart", "standby-kill", "db-primary-kill"]
)
def test_a_drill_loses_nothing_acknowledged(cluster, tmp_path, scenario):
    results = tmp_path / "results"
    run = ledger(
        "drill", scenario,
        "--dir", str(cluster),
        "--users", "4",
        "--before", "4",
        "--after", "8",
        "--pause", "1",
        "--accounts", "100",
        "--workers", "1",
        "--results", str(results),
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    (report,) = results.iterdir()
    verdict = json.loads((report / "drill.json").read_text())
    assert verdict["passed"]
    assert verdict["acknowledged"] > 0
    assert verdict["missing"] == verdict["duplicated"] == verdict["mismatched"] == 0
    assert verdict["verify_ok"]
    # After the fault the sequence is gap-free, the chain intact, and every
    # transaction of the run has its place.
    assert verdict["journal"]["ok"] and verdict["journal"]["first_broken_block"] is None
    assert verdict["sealing"]["unsealed"] == 0
    assert verdict["fault"]["steps"], verdict
    reads = verdict["reads"]
    if scenario == "standby-kill":
        # The replica died and came back: reads went on, from the primary
        # while it was down, none failing.
        assert reads["during"]["reads"] > 0, reads
        assert all(part["failed"] == 0 for part in reads.values()), reads
        assert reads["before"]["from_replica"] > 0, reads
    assert (report / "throughput.png").stat().st_size > 0
    status = json.loads(ledger("cluster", "status", "--dir", str(cluster), "--json").stdout)
    roles = sorted(row["state"] for row in status if row["part"].startswith("pg_"))
    assert roles == ["primary", "standby"], status
