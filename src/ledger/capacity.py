"""`ledger bench`: a capacity run with Locust, audited, next to the raw
database, with a report.

One invocation:
1. seeds the load accounts through the service;
2. runs Locust headless, a master and one worker process per core
   (`--expect-workers`), with the step-load shape of
   `bench/locustfiles/common.py`: users rise by a step until a step's p99
   passes the latency target or its errors pass the limit;
3. checks the books (`verify`: any drift fails the run) and that every
   posting the load acknowledged is in the journal exactly once, under its
   key, with the id it was acknowledged with;
4. measures the raw database on the same server: pgbench running the SQL
   work of one posting (header, two entries, two balance rows, SERIALIZABLE);
5. writes `bench/results/<timestamp>-<shape>/`: Locust's CSV and HTML, a JSON
   summary, and PNG plots; and exits non-zero when a target of
   `bench/targets.toml` is missed.

It measures; it decides nothing about speed except against the targets file.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

SHAPES = ("any_to_any", "fan_in_hot", "authorize_capture", "read_mix", "replays")
PGBENCH_CLIENTS = 16


def repository_file(*parts: str) -> Path:
    """A file under the repository's `bench/`: from the working directory
    when it has one, else next to the source checkout."""
    here = Path.cwd().joinpath("bench", *parts)
    if here.exists():
        return here
    return Path(__file__).resolve().parents[2].joinpath("bench", *parts)


# --- the raw-database baseline ------------------------------------------------------


def pgbench_script(prefix: str) -> str:
    """One posting's SQL work, as the service does it: lock two balance
    rows, insert the header and two entries (the header id generated once and
    reused through a CTE), update two balances, SERIALIZABLE."""
    return f"""\
\\set a random(0, :naccounts - 1)
\\set b random(0, :naccounts - 2)
\\set amount random(1, 1000)
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT a.id, b.posted_debits, b.posted_credits FROM accounts a
  JOIN account_balances b ON b.account_id = a.id
  WHERE a.id IN ('{prefix}' || :a, '{prefix}' || ((:a + 1 + :b) % :naccounts))
  ORDER BY a.id FOR UPDATE OF b;
WITH header AS (
  INSERT INTO transactions (id, client_id, idempotency_key, fingerprint, metadata)
  VALUES (gen_random_uuid(), 'pgbench', gen_random_uuid()::text, repeat('0', 64), '{{}}')
  RETURNING id, created_at)
INSERT INTO entries (account_id, entry_id, transaction_id, leg, direction, amount, currency,
                     created_at)
SELECT '{prefix}' || :a, gen_random_uuid(), id, 0, 'debit', :amount, 'USD', created_at
  FROM header
UNION ALL
SELECT '{prefix}' || ((:a + 1 + :b) % :naccounts), gen_random_uuid(), id, 1, 'credit', :amount,
       'USD', created_at FROM header;
UPDATE account_balances SET posted_debits = posted_debits + :amount
  WHERE account_id = '{prefix}' || :a;
UPDATE account_balances SET posted_credits = posted_credits + :amount
  WHERE account_id = '{prefix}' || ((:a + 1 + :b) % :naccounts);
END;
"""


def run_pgbench(
    connection: list[str], database: str, accounts: int, prefix: str, clients: int, seconds: int
) -> dict:
    """pgbench with `pgbench_script` for `seconds`; `connection` is the
    host/port/user options. Returns tps and the retry line."""
    from ledger.storage.embedded import EmbeddedPostgres

    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(pgbench_script(prefix))
        script = f.name
    try:
        out = subprocess.run(
            [
                str(EmbeddedPostgres.binary("pgbench")),
                "-n",
                "-f",
                script,
                "-c",
                str(clients),
                "-j",
                "2",
                "-T",
                str(seconds),
                "-D",
                f"naccounts={accounts}",
                "--max-tries=20",
                *connection,
                database,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(script)
    tps = next(
        float(line.split("=")[1].split()[0]) for line in out.splitlines() if line.startswith("tps")
    )
    retried = next((line.strip() for line in out.splitlines() if "retried" in line), "")
    return {"tps": tps, "retried": retried}


# --- the run --------------------------------------------------------------------------


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
    results: Path = field(default_factory=lambda: repository_file("results"))
    check_targets: bool = True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _attempts(targets: list[str]) -> dict[str, float]:
    """The services' database-attempt counters, summed over the nodes."""
    totals: dict[str, float] = {}
    pattern = re.compile(r'^ledger_db_transaction_attempts_total\{outcome="([a-z_]+)"\} (\S+)$')
    for target in targets:
        try:
            with urllib.request.urlopen(f"{target}/metrics", timeout=5) as response:
                text = response.read().decode()
        except OSError:
            continue
        for line in text.splitlines():
            m = pattern.match(line)
            if m:
                totals[m.group(1)] = totals.get(m.group(1), 0) + float(m.group(2))
    return totals


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


def run_locust(options: BenchOptions, out: Path, ack_log: Path) -> int:
    return start_locust(options, out, ack_log).wait()


def start_locust(options: BenchOptions, out: Path, ack_log: Path) -> LocustRun:
    locustfile = repository_file("locustfiles", f"{options.shape}.py")
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
    )
    port = _free_port()
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


def seed(options: BenchOptions) -> None:
    sys.path.insert(0, str(repository_file("locustfiles")))
    try:
        import common  # the locustfiles' own seeding: one definition of the accounts

        common.seed(options.targets[0], options.accounts)
    finally:
        sys.path.pop(0)
    asyncio.run(_analyze(options.database_url))


async def _analyze(database_url: str) -> None:
    from ledger.app import build_store
    from ledger.settings import Settings

    store = build_store(database_url, Settings(), role="", application_name="ledger-bench")
    try:
        await store.refresh_statistics()
    finally:
        await store.dispose()


def read_acks(ack_log: Path) -> list[tuple[str, str, float]]:
    acks = []
    if ack_log.exists():
        for line in ack_log.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2:
                acks.append((parts[0], parts[1], float(parts[2]) if len(parts) > 2 else 0.0))
    return acks


async def audit(database_url: str, acks: list[tuple[str, str, float]]) -> dict:
    """Every acknowledged posting is in the journal once, under its key,
    with the id it was acknowledged with; and verify is clean."""
    from ledger.app import build_ledger, build_store
    from ledger.settings import Settings

    settings = Settings(database_url=database_url)
    store = build_store(database_url, settings, application_name="ledger-bench")
    try:
        ledger = build_ledger(store, settings)
        stored = await store.transactions_by_keys("default", sorted({k for k, _, _ in acks}))
        report = await ledger.verify()
    finally:
        await store.dispose()
    acked: dict[str, set[str]] = {}
    for key, transaction_id, _ in acks:
        acked.setdefault(key, set()).add(transaction_id)
    missing = [k for k in acked if k not in stored]
    twice = [k for k in acked if len(stored.get(k, ())) > 1]
    wrong = [k for k, ids in acked.items() if k in stored and ids != set(stored[k])]
    return {
        "acknowledged": len(acked),
        "missing": len(missing),
        "duplicated": len(twice),
        "mismatched": len(wrong),
        "examples": (missing + twice + wrong)[:5],
        "verify_ok": report.ok,
        "verify": {
            "accounts": report.accounts,
            "transactions": report.transactions,
            "entries": report.entries,
            "drift": len(report.drift),
            "snapshot_drift": len(report.snapshot_drift),
            "unbalanced": len(report.unbalanced),
        },
    }


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


def steps(rows: list[dict], acks: list[tuple[str, str, float]]) -> list[dict]:
    """Per user level: seconds, postings/s (from the acknowledgements'
    times), requests/s, error ratio, median of the per-second p99."""
    times = sorted(t for _, _, t in acks)
    out: list[dict] = []
    for users in sorted({r["users"] for r in rows if r["users"] > 0}):
        level = [r for r in rows if r["users"] == users]
        start, end = level[0]["t"], level[-1]["t"] + 1
        before = [r for r in rows if r["t"] < start]
        base_req = before[-1]["requests"] if before else 0
        base_fail = before[-1]["failures"] if before else 0
        requests = level[-1]["requests"] - base_req
        failures = level[-1]["failures"] - base_fail
        seconds = end - start
        postings = sum(1 for t in times if start <= t < end)
        out.append(
            {
                "users": users,
                "seconds": seconds,
                "postings_per_second": postings / seconds if seconds else 0,
                "requests_per_second": requests / seconds if seconds else 0,
                "error_ratio": failures / requests if requests else 0,
                "p50_ms": statistics.median(r["p50"] for r in level),
                "p95_ms": statistics.median(r["p95"] for r in level),
                "p99_ms": statistics.median(r["p99"] for r in level),
            }
        )
    return out


def knee(levels: list[dict], p99_ms: float, max_errors: float) -> dict | None:
    """The highest user level whose p99 and errors stayed within the targets
    (at least 3 seconds long): what the system sustains."""
    good = [
        s
        for s in levels
        if s["seconds"] >= 3 and s["p99_ms"] <= p99_ms and s["error_ratio"] <= max_errors
    ]
    return max(good, key=lambda s: s["postings_per_second"]) if good else None


def plot(out: Path, rows: list[dict], levels: list[dict], acks, p99_ms: float) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        return []
    t0 = rows[0]["t"]
    seconds = [r["t"] - t0 for r in rows]
    per_second: dict[int, int] = {}
    for _, _, t in acks:
        per_second[int(t) - t0] = per_second.get(int(t) - t0, 0) + 1
    files = []

    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.plot(seconds, [per_second.get(s, 0) for s in seconds], label="postings/s acknowledged")
    # Locust's workers report every few seconds: requests/s over a 3 s window.
    requests = [
        (rows[i]["requests"] - rows[max(0, i - 3)]["requests"]) / max(1, min(i, 3))
        for i in range(len(rows))
    ]
    ax.plot(seconds, requests, label="requests/s (3 s window)", alpha=0.6)
    ax.set_xlabel("seconds")
    ax.set_ylabel("per second")
    users = ax.twinx()
    users.plot(seconds, [r["users"] for r in rows], color="grey", linestyle="--", label="users")
    users.set_ylabel("users")
    ax.legend(loc="upper left")
    ax.set_title("Throughput over time")
    fig.tight_layout()
    fig.savefig(out / "throughput.png")
    files.append("throughput.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for key in ("p50", "p95", "p99"):
        ax.plot(seconds, [r[key] for r in rows], label=key)
    ax.axhline(p99_ms, color="red", linestyle=":", label=f"p99 target {p99_ms:g} ms")
    ax.set_xlabel("seconds")
    ax.set_ylabel("ms")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("Latency over time")
    fig.tight_layout()
    fig.savefig(out / "latency.png")
    files.append("latency.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.plot([s["postings_per_second"] for s in levels], [s["p99_ms"] for s in levels], marker="o")
    for s in levels:
        ax.annotate(str(s["users"]), (s["postings_per_second"], s["p99_ms"]), fontsize=7)
    ax.axhline(p99_ms, color="red", linestyle=":", label=f"p99 target {p99_ms:g} ms")
    ax.set_xlabel("postings/s")
    ax.set_ylabel("p99 ms (per user level; labels: users)")
    ax.legend()
    ax.set_title("Latency against throughput")
    fig.tight_layout()
    fig.savefig(out / "latency_vs_throughput.png")
    files.append("latency_vs_throughput.png")
    plt.close(fig)
    return files


def load_targets(shape: str) -> dict:
    path = repository_file("targets.toml")
    if not path.exists():
        return {}
    with open(path, "rb") as f:
        return tomllib.load(f).get(shape, {})


def judge(summary: dict, targets: dict) -> list[str]:
    """The targets missed, in words (empty: all met)."""
    missed = []
    ratio = summary.get("ratio_to_baseline")
    if "min_ratio" in targets and (ratio is None or ratio < targets["min_ratio"]):
        missed.append(f"sustained/baseline {ratio} below {targets['min_ratio']}")
    p99 = summary.get("sustained", {}).get("p99_ms") if summary.get("sustained") else None
    if "max_p99_ms" in targets and (p99 is None or p99 > targets["max_p99_ms"]):
        missed.append(f"p99 at the sustained rate {p99} ms above {targets['max_p99_ms']} ms")
    if "max_error_rate" in targets and summary["error_rate"] > targets["max_error_rate"]:
        missed.append(f"error rate {summary['error_rate']:.4f} above {targets['max_error_rate']}")
    return missed


def run(options: BenchOptions, measure_baseline) -> tuple[int, Path, dict]:
    """The whole run. `measure_baseline()` runs pgbench on the same server
    (after the load, so the two never compete) and returns its result, or
    None when the target has no pgbench. Returns the exit code, the report
    directory and the summary."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = options.results / f"{stamp}-{options.shape}"
    out.mkdir(parents=True, exist_ok=True)
    ack_log = out / "acknowledged.log"
    seed(options)
    before = _attempts(options.targets)
    began = time.time()
    locust_code = run_locust(options, out, ack_log)
    elapsed = time.time() - began
    after = _attempts(options.targets)
    acks = read_acks(ack_log)
    audited = asyncio.run(audit(options.database_url, acks))
    baseline = measure_baseline()
    rows = history(out)
    levels = steps(rows, acks)
    best = knee(levels, options.p99_ms, options.max_errors)
    total_requests = rows[-1]["requests"] if rows else 0
    total_failures = rows[-1]["failures"] if rows else 0
    attempts = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    committed = attempts.get("committed", 0)
    retried = sum(
        v
        for k, v in attempts.items()
        if k in ("serialization", "deadlock", "connection", "ambiguous", "key_race")
    )
    summary = {
        "shape": options.shape,
        "targets": options.targets,
        "duration_s": round(elapsed, 1),
        "workers": options.workers,
        "acknowledged_postings": len(acks),
        "sustained": best,
        "sustained_postings_per_second": best["postings_per_second"] if best else None,
        "knee_users": best["users"] if best else None,
        "p99_target_ms": options.p99_ms,
        "error_rate": total_failures / total_requests if total_requests else 0,
        "retry_rate": retried / committed if committed else 0,
        "database_attempts": attempts,
        "steps": levels,
        "baseline": baseline,
        "ratio_to_baseline": (
            round(best["postings_per_second"] / baseline["tps"], 3)
            if best and baseline and baseline.get("tps")
            else None
        ),
        "audit": audited,
        "locust_exit_code": locust_code,
    }
    summary["plots"] = plot(out, rows, levels, acks, options.p99_ms)
    targets = load_targets(options.shape) if options.check_targets else {}
    summary["targets_missed"] = judge(summary, targets) if targets else []
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    broken = (
        audited["missing"]
        or audited["duplicated"]
        or audited["mismatched"]
        or not audited["verify_ok"]
    )
    code = 1 if broken else (2 if summary["targets_missed"] else 0)
    return code, out, summary


def format_summary(summary: dict) -> str:
    lines = [f"shape {summary['shape']}: {summary['acknowledged_postings']} postings acknowledged"]
    for s in summary["steps"]:
        lines.append(
            f"  {s['users']:4d} users  {s['postings_per_second']:7.1f} postings/s  "
            f"p50 {s['p50_ms']:6.1f}  p99 {s['p99_ms']:7.1f} ms  errors {s['error_ratio']:.4f}"
        )
    best = summary["sustained"]
    if best:
        lines.append(
            f"sustained: {best['postings_per_second']:.1f} postings/s at {best['users']} users, "
            f"p99 {best['p99_ms']:.1f} ms (target {summary['p99_target_ms']:g} ms)"
        )
    else:
        lines.append(f"sustained: no user level kept p99 under {summary['p99_target_ms']:g} ms")
    baseline = summary["baseline"]
    if baseline:
        lines.append(
            f"raw database (pgbench, same SQL work): {baseline['tps']:.0f} tps; "
            f"ratio {summary['ratio_to_baseline']}"
        )
    lines.append(
        f"error rate {summary['error_rate']:.4f}, database retries per commit "
        f"{summary['retry_rate']:.4f}"
    )
    a = summary["audit"]
    lines.append(
        f"audit: {a['acknowledged']} acknowledged, {a['missing']} missing, "
        f"{a['duplicated']} twice, {a['mismatched']} under another id; "
        f"verify {'clean' if a['verify_ok'] else 'FAILED'}"
    )
    for missed in summary["targets_missed"]:
        lines.append(f"TARGET MISSED: {missed}")
    return "\n".join(lines)
