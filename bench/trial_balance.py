"""The trial balance streamed: how fast, and how much memory the service
holds while it streams N accounts, beside the same aggregate read whole by
a plain client in the same run (the floor: the database's own work).

    .venv/bin/pip install -e '.[bench]' && .venv/bin/python bench/trial_balance.py

One invocation starts its own embedded PostgreSQL and one `ledger serve`,
seeds N accounts, posts N/2 transfers between them (batches of 500), then
reads `GET /reports/trial-balance` while sampling the service's resident
memory, and runs the same query with psycopg, fetching every row. It
asserts nothing but that the books balance: it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import threading
import time

import httpx
import psutil
import psycopg

from harness import AUTHORIZATION, seed, served

QUERY = """
SELECT a.id, a.currency, a.normal_side,
       coalesce(sum(CASE WHEN e.direction = 'debit' THEN e.amount END), 0),
       coalesce(sum(CASE WHEN e.direction = 'credit' THEN e.amount END), 0)
FROM accounts a LEFT JOIN entries e ON e.account_id = a.id AND NOT e.pending
GROUP BY a.id, a.currency, a.normal_side ORDER BY a.id
"""


async def transfers(base: str, ids: list[str], n: int) -> None:
    rng = random.Random(19)
    async with httpx.AsyncClient(base_url=base, timeout=120, headers=AUTHORIZATION) as client:
        for start in range(0, n, 500):
            items = []
            for i in range(start, min(n, start + 500)):
                debit, credit = rng.sample(ids, 2)
                amount = rng.randint(1, 10_000)
                items.append(
                    {
                        "idempotency_key": f"tb-{i}",
                        "entries": [
                            {"account_id": debit, "direction": "debit", "amount": amount},
                            {"account_id": credit, "direction": "credit", "amount": amount},
                        ],
                    }
                )
            answer = await client.post("/transactions/batch", json={"transactions": items})
            assert answer.status_code == 200, answer.text[:300]


def service_process() -> psutil.Process:
    me = psutil.Process()
    return next(c for c in me.children() if "serve" in " ".join(c.cmdline()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=50_000)
    args = parser.parse_args()
    with served(8, "ledger-trial-") as (base, embedded, _env):
        began = time.perf_counter()
        ids = asyncio.run(seed(base, args.accounts))
        asyncio.run(transfers(base, ids, args.accounts // 2))
        print(f"seeded {len(ids)} accounts and {len(ids) // 2} transfers "
              f"in {time.perf_counter() - began:.0f} s (setup)")  # fmt: skip
        service = service_process()
        idle = service.memory_info().rss
        peak = idle
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, service.memory_info().rss)
                time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        began = time.perf_counter()
        size = 0
        body = bytearray()
        with (
            httpx.Client(base_url=base, timeout=600, headers=AUTHORIZATION) as client,
            client.stream("GET", "/reports/trial-balance") as answer,
        ):
            assert answer.status_code == 200
            for chunk in answer.iter_bytes():
                body += chunk
                size += len(chunk)
        streamed = time.perf_counter() - began
        done.set()
        sampler.join()
        report = json.loads(body)
        assert len(report["accounts"]) == args.accounts
        assert all(t["balanced"] for t in report["totals"]), report["totals"]
        dsn = embedded.url(embedded.database).replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn) as conn:
            began = time.perf_counter()
            rows = conn.execute(QUERY).fetchall()
            floor = time.perf_counter() - began
        assert len(rows) == args.accounts
    print(f"trial balance: {args.accounts} accounts, {size / 2**20:.1f} MiB of JSON "
          f"in {streamed:.2f} s ({args.accounts / streamed:,.0f} accounts/s)")  # fmt: skip
    print(f"service memory: {idle / 2**20:.0f} MiB idle, peak {peak / 2**20:.0f} MiB while "
          f"streaming (+{(peak - idle) / 2**20:.1f} MiB)")  # fmt: skip
    print(f"floor (the same aggregate, fetched whole by psycopg): {floor:.2f} s "
          f"({args.accounts / floor:,.0f} accounts/s); ratio {floor / streamed:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
