"""`ledger bench`: a capacity run with Locust, audited, next to the raw
database, with a report.

One invocation:
1. seeds the load accounts through the service;
2. runs Locust headless, a master and one worker process per core
   (`--expect-workers`), with the step-load shape of the locustfiles'
   `common.py`: users rise by a step until a step's p99 passes the latency
   target or its errors pass the limit;
3. checks the books (`verify`: any drift fails the run) and that every
   posting the load acknowledged is in the journal exactly once, under its
   key, with the id it was acknowledged with;
4. measures the raw database on the same server: pgbench running the
   statements of one posting (`ledger.ops.pgbench`);
5. writes `<results>/<timestamp>-<shape>/`: Locust's CSV and HTML, the
   request, acknowledgement and step logs every figure comes from
   (`ledger.ops.figures`), a JSON summary, PNG plots and the data they
   draw (`plotted.json`); and exits non-zero when a target of
   `ledger/ops/targets.toml` is missed.

It measures; it decides nothing about speed except against the targets file.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ledger import operator
from ledger.ops import cpu, figures, locust, report, webhook_check
from ledger.ops.files import SHAPES, locustfiles

DEFAULT_RESULTS = Path("bench/results")
__all__ = ["SHAPES", "BenchOptions", "run", "seed"]


@dataclass
class BenchOptions:
    shape: str
    targets: list[str]
    database_url: str
    duration: int = 60
    accounts: int = 1000
    step_users: int = 4
    step_seconds: float = 10
    max_users: int = 200
    p99_ms: float = 50
    max_errors: float = 0.01
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    baseline_seconds: int = 15
    results: Path = DEFAULT_RESULTS
    check_targets: bool = True
    # Postings per request of shape `bulk`.
    batch_size: int = 100
    # Shape `read_mix`: "replica" reads with consistency=stale (served by the
    # services' read replica), "primary" strong reads.
    reads: str = "replica"
    # The key the load sends (LEDGER_API_KEY of the Locust processes); its
    # client id scopes the idempotency keys the audit looks up.
    api_key: str = ""


_ATTEMPT_LINE = re.compile(r'^ledger_db_transaction_attempts_total\{outcome="([a-z_]+)"\} (\S+)$')
_RETRIED = ("serialization", "deadlock", "connection", "ambiguous", "key_race")


def attempts(targets: list[str], api_key: str) -> dict[str, float]:
    """The services' database-attempt counters, summed over the nodes."""
    totals: dict[str, float] = {}
    for target in targets:
        request = urllib.request.Request(
            f"{target}/metrics", headers={"Authorization": f"Bearer {api_key}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                text = response.read().decode()
        except OSError:
            continue
        for line in text.splitlines():
            m = _ATTEMPT_LINE.match(line)
            if m:
                totals[m.group(1)] = totals.get(m.group(1), 0) + float(m.group(2))
    return totals


def seed(options: BenchOptions) -> None:
    sys.path.insert(0, str(locustfiles()))
    try:
        import common  # the locustfiles' own seeding: one definition of the accounts

        common.seed(options.targets[0], options.accounts, options.api_key)
    finally:
        sys.path.pop(0)
    asyncio.run(operator.refresh_statistics(options.database_url))


def audit_failed(audited: dict) -> bool:
    """A lost, doubled or misfiled posting, any verify difference (the
    sealed journal's included), a transaction of the run never sealed, or
    an acknowledged posting whose event never reached the webhook receiver
    (or came out of order, or unsigned)."""
    sealed = audited.get("sealing") or {}
    return bool(
        audited["missing"]
        or audited["duplicated"]
        or audited["mismatched"]
        or not audited["verify_ok"]
        or sealed.get("unsealed")
        or webhook_check.failed(audited.get("webhooks") or {})
    )


def run(
    options: BenchOptions, measure_baseline: Callable[[], dict | None]
) -> tuple[int, Path, dict]:
    """The whole run. `measure_baseline()` runs pgbench on the same server
    (after the load, so the two never compete) and returns its result, or
    None when the target has no pgbench. Returns the exit code, the report
    directory and the summary."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = options.results / f"{stamp}-{options.shape}"
    out.mkdir(parents=True, exist_ok=True)
    ack_log = out / "acknowledged.log"
    clock = [("start", time.time())]
    print(f"seeding {options.accounts} accounts ...", flush=True)
    seed(options)
    clock.append(("seeding", time.time()))
    watch = webhook_check.start(options.targets[0], options.api_key)
    before = attempts(options.targets, options.api_key)
    began = time.time()
    print(
        f"load: Locust adds {options.step_users} users every {options.step_seconds:g} s "
        f"up to {options.max_users}, for at most {options.duration} s ...",
        flush=True,
    )
    sampler = cpu.Sampler().start()
    locust_code = locust.start(options, out, ack_log).wait()
    samples = sampler.stop()
    clock.append(("locust", time.time()))
    after = attempts(options.targets, options.api_key)
    acks = locust.read_acks(ack_log)
    since = datetime.fromtimestamp(began, UTC)
    print(f"audit: {len(acks)} acknowledged postings against the journal ...", flush=True)
    audited = asyncio.run(operator.audit_load(options.database_url, acks, options.api_key, since))
    audited["webhooks"] = webhook_check.finish(watch, {t for _, t, _ in acks})
    clock.append(("audit", time.time()))
    baseline = measure_baseline()
    clock.append(("pgbench baseline", time.time()))
    attempted = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    summary = summarize(options, out, acks, attempted, samples)
    summary.update(
        duration_s=round(clock[-1][1] - clock[0][1], 1),
        phases_s=phases(clock, summary.pop("load_window")),
        baseline=baseline,
        audit=audited,
        locust_exit_code=locust_code,
    )
    best = summary["sustained"]
    summary["ratio_to_baseline"] = (
        round(best["postings_per_second"] / baseline["tps"], 3)
        if best and baseline and baseline.get("tps")
        else None
    )
    targets = report.load_targets(options.shape) if options.check_targets else {}
    summary["targets_missed"] = report.judge(summary, targets) if targets else []
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    code = 1 if audit_failed(audited) else (2 if summary["targets_missed"] else 0)
    return code, out, summary


def phases(clock: list[tuple[str, float]], load: tuple[float, float] | None) -> dict:
    """Where the run's time went, in order: seeding, Locust's start, the
    load itself (first step to stop), Locust's wind-down, the audit and
    the baseline."""
    spans = {name: t - clock[i][1] for i, (name, t) in enumerate(clock[1:])}
    locust_total = spans.pop("locust")
    out = {"seeding": spans.pop("seeding")}
    if load is not None:
        started = clock[1][1]
        out["locust start"] = load[0] - started
        out["load"] = load[1] - load[0]
        out["locust wind-down"] = started + locust_total - load[1]
    else:
        out["locust"] = locust_total
    out |= spans
    return {name: round(seconds, 1) for name, seconds in out.items()}


def summarize(
    options: BenchOptions, out: Path, acks, attempted: dict[str, float], samples=()
) -> dict:
    """The figures of a finished load, all from the request, acknowledgement
    and step logs (`ledger.ops.figures`) and the CPU samples
    (`ledger.ops.cpu`): steps with their CPU per posting, the sustained
    level, the stop and its reason, errors, retries per commit, the plots."""
    log = figures.read_steps(out / locust.STEP_LOG)
    requests = figures.read_requests(out / locust.REQUEST_LOG)
    ack_times = sorted(t for _, _, t in acks)
    levels = figures.steps(log, requests, ack_times)
    cpu.steps_cost(list(samples), levels, ack_times)
    best = report.knee(levels, options.p99_ms, options.max_errors)
    window = (levels[0]["start"], levels[-1]["end"]) if levels else None
    seconds = figures.per_second(requests, ack_times, *window) if window else []
    failed = sum(not r.ok for r in requests)
    committed = attempted.get("committed", 0)
    retried = sum(v for k, v in attempted.items() if k in _RETRIED)
    return {
        "shape": options.shape,
        # read_mix: where its reads were served (the summary's requests/s
        # minus postings/s is its reads/s).
        "reads": options.reads if options.shape == "read_mix" else None,
        "targets": options.targets,
        "workers": options.workers,
        "acknowledged_postings": len(acks),
        # Acknowledged while Locust ramped between steps or wound down: in
        # the audit, in no step's figures.
        "acknowledged_outside_steps": len(ack_times)
        - sum(sum(1 for t in ack_times if level["start"] <= t < level["end"]) for level in levels),
        "requests": len(requests),
        "sustained": best,
        "sustained_postings_per_second": best["postings_per_second"] if best else None,
        # CPU-ms per acknowledged posting at the sustained step, by kind of
        # process; its total is also the cores per 1,000 postings/s.
        "cpu_ms_per_posting": best.get("cpu_ms_per_posting") if best else None,
        "knee_users": best["users"] if best else None,
        "p99_target_ms": options.p99_ms,
        "stopped_because": log.stop_reason,
        "load_window": window,
        "error_rate": failed / len(requests) if requests else 0,
        "retry_rate": retried / committed if committed else 0,
        "database_attempts": attempted,
        "steps": levels,
        "plots": report.plot(out, seconds, levels, options.p99_ms),
    }
