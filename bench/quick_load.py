"""A first load figure: postings per second over HTTP on the embedded default,
next to pgbench doing the same SQL work on the same server, in the same run.

    .venv/bin/pip install -e '.[bench]' && .venv/bin/python bench/quick_load.py

What it does, in one invocation:
1. starts its own embedded PostgreSQL in a temporary directory, migrates it,
   and starts `ledger serve` on it (one process);
2. seeds N accounts and posts two-leg transfers between random accounts from
   C concurrent HTTP clients for T seconds (each with its own Idempotency-Key);
3. runs pgbench for T seconds with C clients against the same database, with a
   script doing what one posting does in SQL (lock two balance rows, insert
   the header and two entries, update two balances) at the same isolation
   (SERIALIZABLE, serialization failures retried);
4. checks the books with `ledger verify`, and prints both rates and the ratio.

The load generator shares the two cores with the service and the database,
so the HTTP figure is a floor. It asserts nothing: it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from ledger.storage import migrate
from ledger.storage.embedded import EmbeddedPostgres


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pgbench_script() -> str:
    """One posting's SQL work. The header id is generated once and reused for
    both entries through a CTE, so the script writes exactly what the service
    writes: 1 header, 2 entries, 2 balance updates, after locking 2 rows."""
    return """\
\\set a random(0, :naccounts - 1)
\\set b random(0, :naccounts - 2)
\\set amount random(1, 1000)
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT a.id, b.posted_debits, b.posted_credits FROM accounts a
  JOIN account_balances b ON b.account_id = a.id
  WHERE a.id IN ('bench-' || :a, 'bench-' || ((:a + 1 + :b) % :naccounts))
  ORDER BY a.id FOR UPDATE OF b;
WITH header AS (
  INSERT INTO transactions (id, client_id, idempotency_key, fingerprint, metadata)
  VALUES (gen_random_uuid(), 'pgbench', gen_random_uuid()::text, repeat('0', 64), '{}')
  RETURNING id, created_at)
INSERT INTO entries (account_id, entry_id, transaction_id, leg, direction, amount, currency,
                     created_at)
SELECT 'bench-' || :a, gen_random_uuid(), id, 0, 'debit', :amount, 'USD', created_at
  FROM header
UNION ALL
SELECT 'bench-' || ((:a + 1 + :b) % :naccounts), gen_random_uuid(), id, 1, 'credit', :amount,
       'USD', created_at FROM header;
UPDATE account_balances SET posted_debits = posted_debits + :amount
  WHERE account_id = 'bench-' || :a;
UPDATE account_balances SET posted_credits = posted_credits + :amount
  WHERE account_id = 'bench-' || ((:a + 1 + :b) % :naccounts);
END;
"""


async def seed(base: str, n: int) -> list[str]:
    ids = [f"bench-{i}" for i in range(n)]
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        sem = asyncio.Semaphore(16)

        async def one(account_id: str) -> None:
            async with sem:
                r = await client.post(
                    "/accounts",
                    json={"id": account_id, "currency": "USD", "scale": 2, "normal_side": "debit"},
                )
                assert r.status_code in (200, 201), r.text

        await asyncio.gather(*(one(i) for i in ids))
    return ids


async def http_load(base: str, ids: list[str], clients: int, seconds: float, tag: str = "") -> dict:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    stop = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:

        async def worker(w: int) -> None:
            rng = random.Random(w)
            n = 0
            while time.monotonic() < stop:
                a, b = rng.sample(ids, 2)
                amount = rng.randint(1, 1000)
                started = time.perf_counter()
                r = await client.post(
                    "/transactions",
                    headers={"Idempotency-Key": f"{tag}w{w}-{n}"},
                    json={
                        "entries": [
                            {"account_id": a, "direction": "debit", "amount": amount},
                            {"account_id": b, "direction": "credit", "amount": amount},
                        ]
                    },
                )
                latencies.append(time.perf_counter() - started)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                n += 1

        began = time.monotonic()
        await asyncio.gather(*(worker(w) for w in range(clients)))
        elapsed = time.monotonic() - began
    latencies.sort()
    ok = statuses.get(201, 0)
    return {
        "postings_per_second": ok / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "statuses": statuses,
    }


def run_pgbench(embedded: EmbeddedPostgres, n: int, clients: int, seconds: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(pgbench_script())
        script = f.name
    out = subprocess.run(
        [
            str(embedded.binary("pgbench")),
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
            f"naccounts={n}",
            "--max-tries=20",
            "-h",
            str(embedded.socket_dir),
            "-p",
            str(embedded.port),
            "-U",
            "postgres",
            embedded.database,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    tps = next(
        float(line.split("=")[1].split()[0]) for line in out.splitlines() if line.startswith("tps")
    )
    retried = next((line for line in out.splitlines() if "retried" in line), "")
    return {"tps": tps, "retried": retried.strip()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=15)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    embedded = EmbeddedPostgres(workdir / "pgdata")
    url = embedded.start()
    migrate.upgrade(url)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["LEDGER_POOL_SIZE"] = str(args.clients)
    service = subprocess.Popen(
        [sys.executable, "-m", "ledger.cli", "serve", "--database-url", url, "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert "listening" in service.stdout.readline() or "listening" in service.stdout.readline()
        base = f"http://127.0.0.1:{port}"
        ids = asyncio.run(seed(base, args.accounts))
        print(f"seeded {len(ids)} accounts; {args.clients} clients, {args.seconds} s each run")
        http = asyncio.run(http_load(base, ids, args.clients, args.seconds))
        raw = run_pgbench(embedded, args.accounts, args.clients, args.seconds)
        verify = subprocess.run(
            [sys.executable, "-m", "ledger.cli", "verify", "--database-url", url],
            capture_output=True,
            text=True,
            env=env,
        )
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(30)
        embedded.stop()

    print(
        f"HTTP  postings/s {http['postings_per_second']:8.0f}   p50 {http['p50_ms']:.1f} ms"
        f"   p99 {http['p99_ms']:.1f} ms   statuses {http['statuses']}"
    )
    print(f"pgbench  tps     {raw['tps']:8.0f}   {raw['retried']}")
    print(f"ratio HTTP / pgbench: {http['postings_per_second'] / raw['tps']:.2f}")
    print(verify.stdout.strip().splitlines()[-1])
    return 0 if verify.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
