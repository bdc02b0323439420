"""How fast the sequencer seals, next to how fast the service posts, in the
same run: the sealing rate must stay well above the posting rate, or the
journal's head falls behind under load.

    .venv/bin/pip install -e '.[bench]' && .venv/bin/python bench/seal_rate.py

One invocation:
1. starts its own embedded PostgreSQL and one `ledger serve` with its
   sequencer turned off (LEDGER_SEAL_SECONDS=0);
2. posts two-leg transfers from C concurrent HTTP clients for T seconds:
   the posting rate, and a backlog of unsealed transactions;
3. with the service idle, seals the backlog with the service's own
   sequencer code (blocks of LEDGER_SEAL_MAX, 1000) from this process, and
   times it: transactions sealed per second;
4. times `ledger verify`'s walk over the sealed journal, and prints the
   rates and the ratio.

It asserts nothing: it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from harness import post_load, seed, served
from ledger.app import build_ledger, build_store
from ledger.settings import Settings


async def seal_backlog(url: str) -> dict:
    settings = Settings(database_url=url)
    store = build_store(url, settings, application_name="ledger-seal-bench")
    ledger = build_ledger(store, settings)
    try:
        began = time.perf_counter()
        sealed = blocks = 0
        while n := await ledger.journal.seal(settings.seal_max):
            sealed += n
            blocks += 1
        sealing = time.perf_counter() - began
        began = time.perf_counter()
        report = await ledger.journal.verify()
        walking = time.perf_counter() - began
    finally:
        await store.dispose()
    return {
        "sealed": sealed,
        "blocks": blocks,
        "sealed_per_second": sealed / sealing if sealing else 0.0,
        "verified_per_second": report.transactions / walking if walking else 0.0,
        "chain_ok": report.ok,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()

    with served(args.clients, "ledger-seal-", {"LEDGER_SEAL_SECONDS": "0"}) as (
        base,
        embedded,
        _env,
    ):
        ids = asyncio.run(seed(base, args.accounts))
        http = asyncio.run(
            post_load(
                base, lambda rng: tuple(rng.sample(ids, 2)), args.clients, tag="s",
                seconds=args.seconds,
            )
        )  # fmt: skip
        sealing = asyncio.run(seal_backlog(embedded.url(embedded.database)))

    posting = http["postings_per_second"]
    print(f"posting (HTTP, {args.clients} clients): {posting:8.0f} postings/s")
    print(
        f"sealing (service idle):     {sealing['sealed_per_second']:8.0f} transactions/s "
        f"({sealing['sealed']} in {sealing['blocks']} blocks)"
    )
    print(f"verify's walk of the chain: {sealing['verified_per_second']:8.0f} transactions/s")
    print(f"ratio sealing / posting: {sealing['sealed_per_second'] / posting:.1f}")
    print(f"chain {'intact' if sealing['chain_ok'] else 'BROKEN'}")
    return 0 if sealing["chain_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
