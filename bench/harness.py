"""What the benchmark scripts share: an embedded server with one `ledger
serve` on it, seeding accounts, a load of two-leg transfers from concurrent
HTTP clients, and `ledger verify` afterwards. The scripts measure; nothing
here asserts a speed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from ledger.engine.access import new_key
from ledger.ops.files import free_port
from ledger.storage import dialect, migrate
from ledger.storage.embedded import EmbeddedPostgres

# The admin key the service makes at start-up (LEDGER_BOOTSTRAP_KEY), and
# the header every request of the scripts carries.
KEY = new_key()[1]
AUTHORIZATION = {"Authorization": f"Bearer {KEY}"}


@contextlib.contextmanager
def served(
    pool_size: int, prefix: str, settings: dict[str, str] | None = None
) -> Iterator[tuple[str, EmbeddedPostgres, dict]]:
    """A fresh embedded server, migrated, with one service on a free port
    (`settings`: more LEDGER_ variables for it). Yields (the service's base
    URL, the server, the service's environment)."""
    where = Path(tempfile.mkdtemp(prefix=prefix))
    embedded = EmbeddedPostgres(where / "pgdata")
    url = embedded.start()
    migrate.upgrade(url)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["LEDGER_POOL_SIZE"] = str(pool_size)
    env["LEDGER_BOOTSTRAP_KEY"] = KEY
    env.update(settings or {})
    # The service writes a line per request (its access log): into a file,
    # never a pipe nobody drains once it is listening.
    log = where / "serve.log"
    with open(log, "w") as out:
        service = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ledger.cli",
                "serve",
                "--database-url",
                # The service's own login, as a deployment gives it.
                dialect.writer_url(url, "ledger_writer"),
                "--port",
                str(port),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while "listening" not in log.read_text():
            assert service.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", embedded, env
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(30)
        embedded.stop()


def verify(embedded: EmbeddedPostgres, env: dict) -> subprocess.CompletedProcess:
    url = embedded.url(embedded.database)
    return subprocess.run(
        [sys.executable, "-m", "ledger.cli", "verify", "--database-url", url],
        capture_output=True,
        text=True,
        env=env,
    )


async def seed(base: str, n: int) -> list[str]:
    ids = [f"bench-{i}" for i in range(n)]
    async with httpx.AsyncClient(base_url=base, timeout=30, headers=AUTHORIZATION) as client:
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


Pick = Callable[[random.Random], tuple[str, str]]  # (debit account, credit account)


async def post_load(
    base: str,
    pick: Pick,
    clients: int,
    *,
    tag: str,
    seconds: float | None = None,
    total: int | None = None,
    acknowledged: list[str] | None = None,
) -> dict:
    """Two-leg transfers from `clients` concurrent clients, for `seconds` or
    until `total` are sent, each with its own Idempotency-Key. Returns
    postings/s (201s), p50 and p99 in ms, and the statuses; the ids of the
    postings acknowledged go into `acknowledged` when given."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    stop = time.monotonic() + seconds if seconds is not None else None
    left = total if total is not None else float("inf")
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=base, timeout=60, limits=limits, headers=AUTHORIZATION
    ) as client:

        async def worker(w: int) -> None:
            nonlocal left
            rng = random.Random(f"{tag}-{w}")
            n = 0
            while left > 0 and (stop is None or time.monotonic() < stop):
                left -= 1
                debit, credit = pick(rng)
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
                if acknowledged is not None and r.status_code == 201:
                    acknowledged.append(r.json()["id"])
                n += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(clients)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "postings_per_second": statuses.get(201, 0) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "statuses": statuses,
    }
