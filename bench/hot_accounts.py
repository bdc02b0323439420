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
import statistics
import sys

import httpx

from harness import AUTHORIZATION, post_load, seed, served, verify

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--postings", type=int, default=3000, help="per shape and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    results: dict[str, list[dict]] = {s: [] for s in SHAPES}
    with served(args.clients, "ledger-bench-hot-") as (base, embedded, env):
        ids = asyncio.run(seed(base, args.accounts))

        async def specials() -> None:
            async with httpx.AsyncClient(
                base_url=base, timeout=30, headers=AUTHORIZATION
            ) as client:
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
                    post_load(
                        base, shapes[shape], args.clients, tag=f"{shape}{r}", total=args.postings
                    )
                )
                results[shape].append(result)
                print(
                    f"  round {r + 1} {shape:8s} {result['postings_per_second']:7.0f} postings/s"
                    f"   p99 {result['p99_ms']:6.1f} ms   {result['statuses']}"
                )
        checked = verify(embedded, env)

    median = {s: statistics.median(x["postings_per_second"] for x in results[s]) for s in SHAPES}
    p99 = {s: statistics.median(x["p99_ms"] for x in results[s]) for s in SHAPES}
    print("median over rounds:")
    for shape in SHAPES:
        print(
            f"  {shape:8s} {median[shape]:7.0f} postings/s   p99 {p99[shape]:6.1f} ms   "
            f"ratio to uniform {median[shape] / median['uniform']:.2f}"
        )
    print(f"hot / plain: {median['hot'] / median['plain']:.2f}")
    print(checked.stdout.strip().splitlines()[-1])
    return 0 if checked.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
