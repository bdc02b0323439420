"""The background loops in a process of their own: `ledger serve` starts
one beside its request loop when `LEDGER_BACKGROUND_PROCESS` is set.

In the request loop, the sequencer and the webhook deliverer wait their
turn behind every request in flight: under load a delivery, which is one
round trip after another, went no faster than the loop turned (a p99 lag
of 2.7 s at the knee of `any_to_any`). In a process of their own they turn
as fast as the database and the receivers answer.

The child dies with its service, even when the service is killed with -9
(Linux's parent-death signal), so a service restarted after a crash never
finds an orphan of its predecessor still running; and since every loop is
safe in many processes at once, a child that outlived its parent for a
moment would do no harm either.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
import sys

from ledger.settings import Settings

PR_SET_PDEATHSIG = 1


def request_loop_settings(settings: Settings) -> Settings:
    """The service's settings with every background loop turned off."""
    return settings.with_overrides(
        seal_seconds=0.0,
        expiry_sweep_seconds=0.0,
        hot_compact_seconds=0.0,
        webhook_claim_seconds=0.0,
    )


def spawn(database_url: str) -> subprocess.Popen:
    """Start the loops in a child process, on the service's settings (its
    environment) and database."""
    env = {**os.environ, "LEDGER_DATABASE_URL": database_url, "LEDGER_PARENT_PID": str(os.getpid())}
    return subprocess.Popen([sys.executable, "-m", "ledger.background"], env=env)


def _die_with_parent() -> None:
    parent = int(os.environ.get("LEDGER_PARENT_PID", "0"))
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if parent and os.getppid() != parent:  # it died before the line above
        os._exit(0)


async def run(settings: Settings) -> None:
    from ledger import workers
    from ledger.app import build_ledger, build_store

    store = build_store(settings.database_url, settings, application_name="ledger-background")
    ledger = build_ledger(store, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = workers.start(ledger, settings)
    try:
        await stop.wait()
    finally:
        await workers.stop(tasks)
        await store.dispose()


def main() -> None:
    _die_with_parent()
    asyncio.run(run(Settings.from_env()))


if __name__ == "__main__":
    main()
