"""A first load figure: postings per second over HTTP on the embedded default,
next to pgbench doing the same SQL work on the same server, in the same run.

    .venv/bin/pip install -e '.[bench]' && .venv/bin/python bench/quick_load.py

What it does, in one invocation:
1. starts its own embedded PostgreSQL in a temporary directory, migrates it,
   and starts `ledger serve` on it (one process);
2. seeds N accounts and posts two-leg transfers between random accounts from
   C concurrent HTTP clients for T seconds (each with its own Idempotency-Key);
3. runs pgbench for T seconds with C clients against the same database, with
   the statements one posting runs (`ledger.ops.pgbench`: rendered from the
   posting path's own statements) at the same isolation (SERIALIZABLE,
   serialization failures retried);
4. checks the books with `ledger verify`, and prints both rates and the ratio.

The load generator shares the two cores with the service and the database,
so the HTTP figure is a floor. It asserts nothing: it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from harness import post_load, seed, served, verify
from ledger.ops import pgbench


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=15)
    args = parser.parse_args()

    with served(args.clients, "ledger-bench-") as (base, embedded, env):
        ids = asyncio.run(seed(base, args.accounts))
        print(f"seeded {len(ids)} accounts; {args.clients} clients, {args.seconds} s each run")
        http = asyncio.run(
            post_load(
                base, lambda rng: tuple(rng.sample(ids, 2)), args.clients, tag="q",
                seconds=args.seconds,
            )
        )  # fmt: skip
        # The same pgbench script `ledger bench` uses: one posting's statements.
        raw = pgbench.run(
            ["-h", str(embedded.socket_dir), "-p", str(embedded.port), "-U", "postgres"],
            embedded.database,
            args.accounts,
            "bench-",
            args.clients,
            args.seconds,
        )
        checked = verify(embedded, env)

    print(
        f"HTTP  postings/s {http['postings_per_second']:8.0f}   p50 {http['p50_ms']:.1f} ms"
        f"   p99 {http['p99_ms']:.1f} ms   statuses {http['statuses']}"
    )
    print(f"pgbench  tps     {raw['tps']:8.0f}   {raw['retried']}")
    print(f"ratio HTTP / pgbench: {http['postings_per_second'] / raw['tps']:.2f}")
    print(checked.stdout.strip().splitlines()[-1])
    return 0 if checked.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
