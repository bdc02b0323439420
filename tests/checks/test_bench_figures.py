"""A capacity report agrees with itself: the step-load shape judges a step
on the request log with the figures the summary prints, the summary's
steps are the bars the plots draw, requests/s and postings/s count the
same window, and the summary says why the load stopped and where the
run's time went."""

from __future__ import annotations

import json
import subprocess
import sys

from ledger.ops import bench, figures, locust, report
from ledger.ops.files import locustfiles


def write_requests(path, rows) -> None:
    path.write_text("".join(f"{end:.4f} {ms:.2f} {1 if ok else 0}\n" for end, ms, ok in rows))


def test_a_steps_figures_are_exact_over_its_own_window():
    requests = [figures.Request(100 + i / 100, float(i + 1), i % 50 != 0) for i in range(100)]
    acks = sorted(r.end for r in requests if r.ok)
    seen = figures.window(requests, acks, 100.0, 101.0)
    assert seen["requests"] == 100 and seen["postings"] == 98
    assert seen["requests_per_second"] == 100 and seen["postings_per_second"] == 98
    assert (seen["p50_ms"], seen["p95_ms"], seen["p99_ms"]) == (50.0, 95.0, 99.0)
    assert seen["error_ratio"] == 0.02
    half = figures.window(requests, acks, 100.0, 100.5)
    assert half["requests"] == 50 and half["p99_ms"] == 50.0


# The shape in a process of its own (importing Locust patches the standard
# library with gevent), driven tick by tick as Locust's master would: a
# fast first step, a slow second one, each tick's requests logged.
DRIVE_THE_SHAPE = """
import sys, time
sys.path.insert(0, sys.argv[1])
import step_load

shape = step_load.StepLoad()
shape.step_users, shape.step_seconds, shape.duration = 2, 0.3, float(sys.argv[3])
shape.p99_ms, shape.max_errors = 50, 0.01
shape.request_log = sys.argv[2] + "/requests.log"
shape.step_log = sys.argv[2] + "/steps.log"
rows = []
while (users := shape.tick()) is not None:
    now = time.time()
    rows += [(now - 0.001 * k, 80.0 if users[0] == 4 else 5.0) for k in range(10)]
    with open(shape.request_log, "w") as f:
        f.writelines(f"{end:.4f} {ms:.2f} 1\\n" for end, ms in sorted(rows))
    time.sleep(0.05)
"""


def drive_the_shape(tmp_path, duration: float) -> figures.StepLog:
    run = subprocess.run(
        [sys.executable, "-c", DRIVE_THE_SHAPE, str(locustfiles()), str(tmp_path), str(duration)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "load stopped: " in run.stdout
    return figures.read_steps(tmp_path / locust.STEP_LOG)


def test_the_shape_stops_on_the_step_the_summary_shows_past_the_target(tmp_path):
    """Two steps: the first fast, the second slow. The shape stops after the
    second and says why; the summary's figures for both steps are the ones
    the shape judged, and the plots draw those very figures."""
    log = drive_the_shape(tmp_path, 60)
    assert [s.users for s in log.steps] == [2, 4]
    assert log.stop_reason.startswith("step 2 (4 users): p99 80.0 ms above the 50 ms target")
    requests = figures.read_requests(tmp_path / locust.REQUEST_LOG)
    acks = [(f"k{i}", f"t{i}", r.end) for i, r in enumerate(requests)]
    options = bench.BenchOptions("any_to_any", ["http://x"], "postgresql://x", p99_ms=50)
    summary = bench.summarize(options, tmp_path, acks, {})
    assert summary["stopped_because"] == log.stop_reason
    by_users = {s["users"]: s for s in summary["steps"]}
    for step in log.steps:
        judged, shown = step.judged, by_users[step.users]
        assert (judged["p99_ms"], judged["error_ratio"]) == (shown["p99_ms"], shown["error_ratio"])
        assert judged["requests"] == shown["requests"] > 0
    assert report.knee(summary["steps"], 50, 0.01, min_seconds=0)["users"] == 2
    # One posting per request: the two rates agree, step by step.
    for s in summary["steps"]:
        assert s["requests_per_second"] == s["postings_per_second"]
    plotted = json.loads((tmp_path / "plotted.json").read_text())
    assert [(b["users"], b["postings_per_second"], b["p99_ms"]) for b in plotted["steps"]] == [
        (s["users"], s["postings_per_second"], s["p99_ms"]) for s in summary["steps"]
    ]
    # The second-by-second series covers the steps' windows and nothing else.
    start, end = summary["load_window"]
    in_load = sum(1 for _, _, t in acks if start <= t < end)
    assert sum(r["postings"] for r in plotted["per_second"]) == in_load


def test_the_shape_stops_at_the_duration_and_says_so(tmp_path):
    log = drive_the_shape(tmp_path, 0.2)
    assert log.stop_reason == "the duration ran out (0.2 s)"
    assert log.steps[-1].end == log.stop_at


def test_the_run_says_where_its_time_went():
    clock = [("start", 0.0), ("seeding", 5.0), ("locust", 50.0), ("audit", 58.0)]
    clock.append(("pgbench baseline", 73.0))
    assert bench.phases(clock, (8.0, 48.0)) == {
        "seeding": 5.0,
        "locust start": 3.0,
        "load": 40.0,
        "locust wind-down": 2.0,
        "audit": 8.0,
        "pgbench baseline": 15.0,
    }
