"""CPU time per posting, of the service and of the database, for a fixed
number of postings: a cost figure that a noisy, shared machine disturbs far
less than a throughput figure (another process taking the cores makes a run
slower, not costlier).

    .venv/bin/pip install -e '.[bench]' && .venv/bin/python bench/cpu_per_posting.py

One invocation starts its own embedded PostgreSQL and one `ledger serve`,
seeds accounts, posts N two-leg transfers from C concurrent clients, waits
a second (so the service's background loops, the sequencer among them, do
their share of the work), and prints the CPU seconds the service process
and the PostgreSQL processes spent, per posting, with the wall-clock rate
for reference. Run it from two checkouts' environments to compare them.
It asserts nothing: it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import psutil

from harness import post_load, seed, served


def cpu_seconds(processes: list[psutil.Process]) -> float:
    """User and system time of the processes, and of their children that
    have exited (a PostgreSQL backend's time lands in the postmaster's
    children's when it exits)."""
    total = 0.0
    for p in processes:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def parts(embedded) -> tuple[list[psutil.Process], list[psutil.Process]]:
    """(the service, the PostgreSQL server and its live backends)."""
    me = psutil.Process()
    service = [c for c in me.children() if "serve" in " ".join(c.cmdline())]
    # The postmaster is the process started with `-D <data dir>`; the
    # service's own command line may name the directory too (in its
    # database URL), and must not be counted as the database.
    data = str(embedded.data_dir)
    postmaster = [
        p
        for p in psutil.process_iter(["cmdline"])
        if p.info["cmdline"] and f"-D {data}" in " ".join(p.info["cmdline"])
    ]
    backends = [c for p in postmaster for c in p.children()]
    return service, postmaster + backends


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--postings", type=int, default=6000)
    args = parser.parse_args()

    with served(args.clients, "ledger-cpu-") as (base, embedded, _env):
        ids = asyncio.run(seed(base, args.accounts))
        asyncio.run(post_load(base, lambda rng: tuple(rng.sample(ids, 2)), 4, tag="w", total=200))
        service, database = parts(embedded)
        before = cpu_seconds(service), cpu_seconds(database)
        began = time.perf_counter()
        http = asyncio.run(
            post_load(
                base, lambda rng: tuple(rng.sample(ids, 2)), args.clients, tag="c",
                total=args.postings,
            )
        )  # fmt: skip
        time.sleep(1.0)
        elapsed = time.perf_counter() - began
        service, database = parts(embedded)
        after = cpu_seconds(service), cpu_seconds(database)

    n = http["statuses"].get(201, 0)
    service_us = 1e6 * (after[0] - before[0]) / n
    database_us = 1e6 * (after[1] - before[1]) / n
    print(f"{n} postings in {elapsed:.1f} s ({http['postings_per_second']:.0f}/s while posting)")
    print(f"CPU per posting: service {service_us:6.0f} us, database {database_us:6.0f} us, "
          f"both {service_us + database_us:6.0f} us")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
