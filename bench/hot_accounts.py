"""Hot accounts: what one account in every posting costs, with and without
snapshots, in one run on one embedded server.

    .venv/bin/pip install -e '.[bench]' && .venv/bin/python bench/hot_accounts.py

It starts its own embedded PostgreSQL and one `ledger serve` (compactor on,
as in production), seeds accounts, and then posts the same number of
two-leg transfers over HTTP from C concurrent clients in three shapes:

  uniform   between two random accounts;
  hot       from a random account to one account marked hot;
  plain     from a random account to one ordinary account (the same shape
            as `hot`, without snapshots: every posting locks that row).

The shapes run in rounds (uniform, hot, plain, uniform, ...) so that a noisy
machine slows all three alike; each figure is the median over the rounds.
It prints postings per second and p99 for each, and the ratios to uniform,
then runs `ledger verify` (snapshots included) on the result. It asserts
nothing: it measures. The goal is hot at 90% or more of uniform.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from ledger.storage import migrate
from ledger.storage.embedded import EmbeddedPostgres
from quick_load import free_port, seed

SHAPES = ("uniform", "hot", "plain")


async def create(client: httpx.AsyncClient, account_id: str, hot: bool) -> None:
    r = await client.post(
        "/accounts",
        json={
            "id": account_id,
            "currency": "USD",
            "scale": 2,
            "normal_side": "credit",
            "hot": hot,
        },
    )
    assert r.status_code in (200, 201), r.text


async def post_many(base: str, legs, clients: int, total: int, tag: str) -> dict:
    """Post `total` transfers from `clients` concurrent clients; `legs(rng)`
    gives each one's (debit account, credit account)."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    left = total
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:

        async def worker(w: int) -> None:
            nonlocal left
            rng = random.Random(f"{tag}-{w}")
            n = 0
            while left > 0:
                left -= 1
                debit, credit = legs(rng)
                amount = rng.randint(1, 1000)
                started = time.perf_counter()
                r = await client.post(
                    "/transactions",
                    headers={"Idempotency-Key": f"{tag}-w{w}-{n}"},
                    json={
                        "entries": [
                            {"account_id": debit, "direction": "debit", "amount": amount},
                            {"account_id": credit, "direction": "credit", "amount": amount},
                        ]
                    },
                )
                latencies.append(time.perf_counter() - started)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                n += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(clients)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "rate": statuses.get(201, 0) / elapsed,
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "statuses": statuses,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--postings", type=int, default=3000, help="per shape and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="ledger-bench-hot-"))
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
    results: dict[str, list[dict]] = {s: [] for s in SHAPES}
    try:
        assert "listening" in service.stdout.readline() or "listening" in service.stdout.readline()
        base = f"http://127.0.0.1:{port}"
        ids = asyncio.run(seed(base, args.accounts))

        async def specials() -> None:
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                await create(client, "fees-hot", True)
                await create(client, "fees-plain", False)

        asyncio.run(specials())
        shapes = {
            "uniform": lambda rng: tuple(rng.sample(ids, 2)),
            "hot": lambda rng: (rng.choice(ids), "fees-hot"),
            "plain": lambda rng: (rng.choice(ids), "fees-plain"),
        }
        print(
            f"{args.accounts} accounts, {args.clients} clients, {args.postings} postings "
            f"per shape and round, {args.rounds} rounds"
        )
        for r in range(args.rounds):
            for shape in SHAPES:
                result = asyncio.run(
                    post_many(base, shapes[shape], args.clients, args.postings, f"{shape}{r}")
                )
                results[shape].append(result)
                print(
                    f"  round {r + 1} {shape:8s} {result['rate']:7.0f} postings/s   "
                    f"p99 {result['p99_ms']:6.1f} ms   {result['statuses']}"
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

    median = {s: statistics.median(x["rate"] for x in results[s]) for s in SHAPES}
    p99 = {s: statistics.median(x["p99_ms"] for x in results[s]) for s in SHAPES}
    print("median over rounds:")
    for shape in SHAPES:
        print(
            f"  {shape:8s} {median[shape]:7.0f} postings/s   p99 {p99[shape]:6.1f} ms   "
            f"ratio to uniform {median[shape] / median['uniform']:.2f}"
        )
    print(f"hot / plain: {median['hot'] / median['plain']:.2f}")
    print(verify.stdout.strip().splitlines()[-1])
    return 0 if verify.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
