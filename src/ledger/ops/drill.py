"""`ledger drill <scenario>`: kill a node under load, then prove that nothing
acknowledged was lost and nothing was posted twice.

A Locust load (the careful client of the locustfiles' `common.py`: on an
unknown outcome it sends the same request, same key, to the next node, and it
records every acknowledged posting) runs at a constant number of users. After
`--before` seconds the fault strikes; the load goes on for `--after` seconds.
Then the verdict:

- acknowledged postings missing from the journal: must be 0;
- postings present twice (one key, two transactions): must be 0;
- `verify`: clean;
- seconds from the fault until throughput is back to 90% of what it was
  before, and the error rate from the fault until then;
- a throughput-over-time plot marking the fault.

It is printed and written to `drill.json` next to Locust's files; the exit
code is 1 if any of the first three fails.

Scenarios on the local cluster (`ledger cluster up`):
  service-kill     kill -9 one service process, restart it after `--pause` s
  db-primary-kill  kill -9 the PostgreSQL primary, promote the synchronous
                   standby (services find it through their multi-host URL),
                   then rebuild the old primary as the new standby
  db-restart       kill -9 the primary and restart it in place (crash recovery)
  conn-reset       terminate every database session of the services
  standby-kill     kill -9 the synchronous standby (the services' read
                   replica); the primary stops waiting for it (as an
                   operator's failover tool would), reads fall back to the
                   primary; after `--pause` s it is rebuilt and required again

Every drill also reads stale balances beside the load (the replica's kind of
read) and reports how many failed before, during and after the fault, and
which server answered; the standby-kill drill fails on any failed read.

`--target compose` runs the same scenarios on the Docker Compose stack of
`deploy/cockroach/` (see `compose_plan`), with the same verdict.
"""

from __future__ import annotations

import json
import math
import shlex
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ledger import operator
from ledger.ops import bench, locust, read_check, webhook_check


@dataclass
class Fault:
    """What a scenario did, when (unix times)."""

    started: float
    ended: float
    steps: list[str]


# --- the local cluster -------------------------------------------------------------------


def local_fault(cluster, scenario: str, pause: float) -> Callable[[], Fault]:
    """The fault of `scenario` on the local cluster, as a function to call
    when it should strike."""

    def run() -> Fault:
        started = time.time()
        steps: list[str] = []
        if scenario == "service-kill":
            service = cluster.services[0]
            cluster.stop_service(service, sig=9, wait=10)
            steps.append(f"kill -9 service-{service.index} (pid {service.pid})")
            time.sleep(pause)
            restarted = time.time()
            cluster.start_service(service)
            cluster.wait_ready()
            steps.append(
                f"restarted service-{service.index} (pid {service.pid}), ready "
                f"{time.time() - restarted:.1f} s after its start"
            )
        elif scenario in ("db-primary-kill", "db-restart"):
            primary = cluster.primary()
            cluster.kill_server(primary)
            steps.append(f"kill -9 {primary.name} (the primary)")
            if scenario == "db-restart":
                cluster.restart_server(primary)
                steps.append(f"restarted {primary.name} in place (crash recovery)")
            else:
                standby = next(s for s in cluster.servers if s is not primary)
                cluster.promote(standby)
                steps.append(f"promoted {standby.name}")
                cluster.rebuild_standby(primary, standby)
                steps.append(f"rebuilt {primary.name} as the synchronous standby of {standby.name}")
        elif scenario == "standby-kill":
            primary = cluster.primary()
            standby = next(s for s in cluster.servers if s is not primary)
            cluster.kill_server(standby)
            steps.append(f"kill -9 {standby.name} (the standby, the read replica)")
            cluster.release_sync(primary)
            steps.append(f"{primary.name} no longer waits for a synchronous standby")
            time.sleep(pause)
            cluster.rebuild_standby(standby, primary)
            steps.append(f"rebuilt {standby.name} as the synchronous standby of {primary.name}")
        elif scenario == "conn-reset":
            killed = cluster.terminate_service_sessions()
            steps.append(f"terminated {killed} database sessions of the services")
        else:
            raise ValueError(f"unknown scenario {scenario!r}")
        cluster.save()
        return Fault(started, time.time(), steps)

    return run


# --- the Compose stack (CockroachDB) -------------------------------------------------------

COMPOSE_FILE = "docker-compose.yml"


def compose_plan(scenario: str, pause: float, project: str = "ledger") -> list[list[str]]:
    """The commands a drill runs against the Docker Compose stack: kill a
    container and start it again. CockroachDB has no primary to promote, so
    `db-primary-kill` kills the node HAProxy sends most sessions to (roach1)
    and, like `db-restart`, starts it again; the range leases move to the
    others meanwhile. `conn-reset` cancels every session of the services."""
    compose = ["docker", "compose", "-f", COMPOSE_FILE, "-p", project]
    sleep = ["sleep", f"{pause:g}"]
    if scenario == "service-kill":
        return [
            [*compose, "kill", "-s", "SIGKILL", "ledger1"],
            sleep,
            [*compose, "start", "ledger1"],
        ]
    if scenario == "standby-kill":
        # Every CockroachDB node serves follower reads: kill one and start it.
        return [
            [*compose, "kill", "-s", "SIGKILL", "roach3"],
            sleep,
            [*compose, "start", "roach3"],
        ]
    if scenario in ("db-primary-kill", "db-restart"):
        plan = [[*compose, "kill", "-s", "SIGKILL", "roach1"]]
        if scenario == "db-primary-kill":
            plan.append(sleep)
        return [*plan, [*compose, "start", "roach1"]]
    if scenario == "conn-reset":
        from ledger.storage import dialect

        sql = dialect.terminate_sessions_sql(dialect.COCKROACHDB, "ledger")
        return [[*compose, "exec", "-T", "roach2", "cockroach", "sql", "--insecure", "-e", sql]]
    raise ValueError(f"unknown scenario {scenario!r}")


def compose_fault(scenario: str, pause: float) -> Callable[[], Fault]:
    def run() -> Fault:
        started = time.time()
        steps = []
        for command in compose_plan(scenario, pause):
            if command[0] == "sleep":
                time.sleep(float(command[1]))
            else:
                subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)
            steps.append(shlex.join(command))
        return Fault(started, time.time(), steps)

    return run


# --- the verdict ------------------------------------------------------------------------------


def recovery(
    acks: list[tuple[str, str, float]], fault: Fault, rows: list[dict], before_seconds: float
) -> dict:
    """Throughput before the fault (postings/s acknowledged), the seconds
    until two whole seconds in a row reach 90% of it again, counted from the
    fault and from the moment the fault was over (a killed node back and
    ready), and the error rate from the fault until then. The search starts
    once the fault is over: the seconds right after a kill still carry the
    requests in flight, and are no recovery."""
    per_second: dict[int, int] = {}
    for _, _, t in acks:
        per_second[int(t)] = per_second.get(int(t), 0) + 1
    start = int(fault.started)
    # The steady part before the fault: skip the first seconds of ramp-up.
    window = [per_second.get(s, 0) for s in range(start - int(before_seconds) + 3, start)]
    baseline = sum(window) / len(window) if window else 0
    recovered_at = None
    last = max(per_second) if per_second else start
    for s in range(math.ceil(fault.ended), last):
        if per_second.get(s, 0) >= 0.9 * baseline and per_second.get(s + 1, 0) >= 0.9 * baseline:
            recovered_at = s
            break
    # The error window: from the fault until it was handled and throughput
    # was back, plus the few seconds Locust's workers take to report.
    end = max(recovered_at if recovered_at is not None else last, int(fault.ended)) + 3
    during = [r for r in rows if start <= r["t"] <= end]
    before_rows = [r for r in rows if r["t"] < start]
    base_req = before_rows[-1]["requests"] if before_rows else 0
    base_fail = before_rows[-1]["failures"] if before_rows else 0
    requests = (during[-1]["requests"] - base_req) if during else 0
    failures = (during[-1]["failures"] - base_fail) if during else 0
    return {
        "postings_per_second_before": round(baseline, 1),
        "recovery_seconds": (
            round(max(0.0, recovered_at - fault.started), 1) if recovered_at is not None else None
        ),
        "recovery_seconds_after_fault_over": (
            round(max(0.0, recovered_at - fault.ended), 1) if recovered_at is not None else None
        ),
        # The error window: from the fault until throughput was back (plus
        # Locust's reporting delay), not the fault's own span.
        "error_window_seconds": end - start,
        "error_rate_during_fault": round(failures / requests, 4) if requests else 0.0,
        "requests_during_fault": requests,
        "failures_during_fault": failures,
    }


def plot(out: Path, acks, fault: Fault) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_second: dict[int, int] = {}
    for _, _, t in acks:
        per_second[int(t)] = per_second.get(int(t), 0) + 1
    if not per_second:
        return ""
    t0 = min(per_second)
    xs = list(range(t0, max(per_second) + 1))
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.plot([x - t0 for x in xs], [per_second.get(x, 0) for x in xs], label="postings/s")
    ax.axvline(fault.started - t0, color="red", label="fault")
    ax.axvline(fault.ended - t0, color="orange", linestyle="--", label="fault handled")
    ax.set_xlabel("seconds")
    ax.set_ylabel("postings acknowledged per second")
    ax.legend()
    ax.set_title("Throughput through the fault")
    fig.tight_layout()
    fig.savefig(out / "throughput.png")
    plt.close(fig)
    return "throughput.png"


def run(
    scenario: str,
    options: bench.BenchOptions,
    fault: Callable[[], Fault],
    before: float,
    after: float,
) -> tuple[int, Path, dict]:
    """Load, fault, load, verdict. `options.duration` is set to before +
    after; the users stay at `options.step_users` throughout."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = options.results / f"{stamp}-drill-{scenario}"
    out.mkdir(parents=True, exist_ok=True)
    ack_log = out / "acknowledged.log"
    options.duration = int(before + after)
    options.step_seconds = options.duration + 1  # one level: constant users
    options.p99_ms = float("inf")  # a drill never stops the load early
    options.max_errors = 1.0
    bench.seed(options)
    watch = webhook_check.start(options.targets[0], options.api_key)
    reader = read_check.Reader(options.targets[-1], options.api_key).start()
    load = locust.start(options, out, ack_log)
    began = datetime.now(UTC)
    time.sleep(before)
    happened = fault()
    load_code = load.wait()
    reader.stop()
    acks = locust.read_acks(ack_log)
    import asyncio

    audited = asyncio.run(operator.audit_load(options.database_url, acks, options.api_key, began))
    # The receiver was registered with the first service, which a
    # service-kill drill may have killed: any live one deletes it.
    watch.target = options.targets[-1]
    webhooks = webhook_check.finish(watch, {t for _, t, _ in acks})
    rows = locust.history(out)
    verdict = {
        "scenario": scenario,
        "fault": {"steps": happened.steps, "seconds": round(happened.ended - happened.started, 1)},
        "acknowledged": audited["acknowledged"],
        "missing": audited["missing"],
        "duplicated": audited["duplicated"],
        "mismatched": audited["mismatched"],
        "examples": audited["examples"],
        "verify_ok": audited["verify_ok"],
        # Every transaction of the run sealed, the sequence gap-free, the
        # chain intact (verify_ok holds the last two).
        "sealing": audited["sealing"],
        "journal": audited["journal"],
        # Every acknowledged posting's event reached the webhook receiver,
        # in order, signed.
        "webhooks": webhooks,
        "reads": read_check.verdict(reader, happened.started, happened.ended),
        **recovery(acks, happened, rows, before),
        "locust_exit_code": load_code,
    }
    verdict["plot"] = plot(out, acks, happened)
    ok = (
        verdict["missing"] == 0
        and verdict["duplicated"] == 0
        and verdict["mismatched"] == 0
        and verdict["verify_ok"]
        and not verdict["sealing"]["unsealed"]
        and not webhook_check.failed(webhooks)
        and verdict["acknowledged"] > 0
        and (scenario != "standby-kill" or _reads_went_on(verdict["reads"]))
    )
    verdict["passed"] = ok
    (out / "drill.json").write_text(json.dumps(verdict, indent=2))
    return (0 if ok else 1), out, verdict


def _reads_went_on(reads: dict) -> bool:
    """No read failed while the replica was down, and some were answered."""
    return all(p["failed"] == 0 for p in reads.values()) and reads["during"]["reads"] > 0


def format_verdict(v: dict) -> str:
    lines = [f"drill {v['scenario']}:"]
    lines += [f"  fault: {step}" for step in v["fault"]["steps"]]
    lines.append(
        f"  acknowledged {v['acknowledged']}; missing {v['missing']}; twice {v['duplicated']}; "
        f"under another id {v['mismatched']}; verify {'clean' if v['verify_ok'] else 'FAILED'}"
    )
    sealed, journal = v.get("sealing") or {}, v.get("journal") or {}
    if sealed:
        lines.append(
            f"  journal: {sealed['sealed']} of the run's transactions sealed, "
            f"{sealed['unsealed']} never; {journal.get('blocks')} blocks, "
            f"{'gap-free, chain intact' if journal.get('ok') else 'BROKEN'}; sealing lag "
            f"p99 {sealed['p99_s']} s"
        )
    lines.append("  " + webhook_check.describe(v.get("webhooks")))
    lines.append("  " + read_check.describe(v.get("reads")))
    recovered = v["recovery_seconds"]
    lines.append(
        f"  before: {v['postings_per_second_before']} postings/s; back to 90% "
        + (
            f"{recovered} s after the fault, {v['recovery_seconds_after_fault_over']} s after "
            "it was over"
            if recovered is not None
            else "NEVER within the run"
        )
        + f"; errors from the fault until throughput was back "
        f"({v.get('error_window_seconds', '?')} s) {v['error_rate_during_fault']:.2%} "
        f"({v['failures_during_fault']} of {v['requests_during_fault']} requests)"
    )
    lines.append("  verdict: " + ("PASSED" if v["passed"] else "FAILED"))
    return "\n".join(lines)
