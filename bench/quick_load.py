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

from ledger import capacity
from ledger.storage import migrate
from ledger.storage.embedded import EmbeddedPostgres


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
        # The same pgbench script `ledger bench` uses: one posting's SQL work.
        raw = capacity.run_pgbench(
            ["-h", str(embedded.socket_dir), "-p", str(embedded.port), "-U", "postgres"],
            embedded.database,
            args.accounts,
            "bench-",
            args.clients,
            args.seconds,
        )
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
