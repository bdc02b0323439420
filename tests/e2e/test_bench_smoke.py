"""The capacity harness end to end, small: a local cluster (primary,
synchronous standby, two services), `ledger bench` for a few seconds of tiny
load, and the report it writes. It asserts that the harness works and that
the books balance afterwards; it asserts no speed."""

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


def ledger(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ledger.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_cluster_up_bench_and_a_report_with_clean_books(tmp_path):
    cluster = tmp_path / "cluster"
    up = ledger("cluster", "up", "--dir", str(cluster), "--services", "2")
    assert up.returncode == 0, up.stderr + up.stdout
    try:
        status = ledger("cluster", "status", "--dir", str(cluster), "--json")
        assert status.returncode == 0, status.stdout
        parts = {row["part"]: row for row in json.loads(status.stdout)}
        assert parts["pg_a"]["state"] == "primary"
        assert parts["pg_b"]["state"] == "standby"
        assert "pg_b sync" in parts["pg_a"]["detail"]
        assert parts["service-1"]["state"] == parts["service-2"]["state"] == "ready"

        results = tmp_path / "results"
        run = ledger(
            "bench",
            "--dir", str(cluster),
            "--shape", "fan_in_hot",
            "--duration", "8",
            "--step-seconds", "4",
            "--step-users", "2",
            "--accounts", "50",
            "--workers", "1",
            "--baseline-seconds", "2",
            "--results", str(results),
            "--no-targets",
        )  # fmt: skip
        assert run.returncode == 0, run.stdout + run.stderr
        (report,) = results.iterdir()
        summary = json.loads((report / "summary.json").read_text())
        audit = summary["audit"]
        assert audit["acknowledged"] > 0
        assert audit["missing"] == audit["mismatched"] == 0
        assert audit["verify_ok"]
        # Every transaction of the run was sealed, and the chain verifies.
        assert audit["sealing"]["sealed"] >= audit["acknowledged"]
        assert audit["sealing"]["unsealed"] == 0 and audit["sealing"]["p99_s"] >= 0
        assert audit["journal"]["ok"] and audit["journal"]["blocks"] > 0
        assert "sealing:" in run.stdout
        assert summary["baseline"]["tps"] > 0
        assert summary["steps"], summary
        # Every figure from one source: the plots draw the summary's steps;
        # the summary and the console say why the load stopped and where
        # the run's time went.
        plotted = json.loads((report / "plotted.json").read_text())
        assert [(b["users"], b["postings_per_second"], b["p99_ms"]) for b in plotted["steps"]] == [
            (s["users"], s["postings_per_second"], s["p99_ms"]) for s in summary["steps"]
        ]
        assert summary["stopped_because"] in run.stdout
        assert summary["stopped_because"].startswith(("the duration ran out", "step "))
        assert set(summary["phases_s"]) >= {"seeding", "load", "audit", "pgbench baseline"}
        assert "the run took" in run.stdout
        # Where a posting's CPU goes, per step: the database and the
        # services did work for every step's postings, and the parts add up.
        for step in summary["steps"]:
            cost = step["cpu_ms_per_posting"]
            assert cost["database"] > 0 and cost["services"] > 0, step
            parts = sum(cost[k] for k in ("database", "services", "background", "load", "other"))
            assert abs(parts - cost["total"]) < 0.01, cost
        assert "cores per 1,000 postings/s" in run.stdout
        files = (
            "throughput.png",
            "latency.png",
            "latency_vs_throughput.png",
            "cpu_per_posting.png",
        )
        for name in files:
            assert (report / name).stat().st_size > 0
        assert (report / "locust.html").exists() and (report / "locust_stats.csv").exists()
    finally:
        down = ledger("cluster", "down", "--dir", str(cluster))
        assert down.returncode == 0, down.stderr
    stopped = ledger("cluster", "status", "--dir", str(cluster), "--json")
    rows = json.loads(stopped.stdout)
    assert rows and all(row["state"] == "down" for row in rows)
