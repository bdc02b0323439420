"""What the operator tools (`ledger.ops`: bench, drill) may ask of the
database, as public functions like `ledger verify`: they drive the service
over HTTP, and judge what it wrote only through these.

    refresh_statistics   ANALYZE after seeding, so the load meets real plans
    audit_load           every acknowledged posting in the journal once, under
                         its key, with its id; the run sealed; verify clean
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

from ledger.engine import Ledger
from ledger.engine.access import key_id_of
from ledger.settings import Settings
from ledger.storage.store import build_store


async def refresh_statistics(database_url: str) -> None:
    store = build_store(database_url, Settings(), role="", application_name="ledger-bench")
    try:
        await store.refresh_statistics()
    finally:
        await store.dispose()


# How long the audit waits for the services' sequencers to seal what the
# load committed: far longer than the second it should take.
SEALING_PATIENCE_SECONDS = 15.0


async def sealing(store, since: datetime) -> dict:
    """How long the run's transactions waited to be sealed (p50, p99, max,
    in seconds), once the services' sequencers have caught up (or
    `SEALING_PATIENCE_SECONDS` have passed: then `unsealed` says how many
    never were)."""
    deadline = time.monotonic() + SEALING_PATIENCE_SECONDS
    while True:
        lags, waiting = await store.sealing_lags(since)
        if not waiting or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    lags.sort()

    def at(q: float) -> float | None:
        return round(lags[min(len(lags) - 1, int(q * len(lags)))], 3) if lags else None

    return {
        "sealed": len(lags),
        "unsealed": waiting,
        "p50_s": at(0.5),
        "p99_s": at(0.99),
        "max_s": round(lags[-1], 3) if lags else None,
    }


async def audit_load(
    database_url: str,
    acks: list[tuple[str, str, float]],
    api_key: str,
    since: datetime | None = None,
) -> dict:
    """Every acknowledged posting is in the journal once, under its key (in
    the idempotency scope of `api_key`'s client), with the id it was
    acknowledged with; every transaction of the run (begun after `since`)
    is sealed; and verify, the sealed journal included, is clean."""
    settings = Settings(database_url=database_url)
    store = build_store(database_url, settings, application_name="ledger-bench")
    try:
        key = await store.get_key(key_id_of(api_key))
        client = key.key.client_id if key is not None else ""
        stored = await store.transactions_by_keys(client, sorted({k for k, _, _ in acks}))
        sealed = await sealing(store, since) if since is not None else None
        verdict = await Ledger(store, settings.limits()).verify()
    finally:
        await store.dispose()
    acked: dict[str, set[str]] = {}
    for key, transaction_id, _ in acks:
        acked.setdefault(key, set()).add(transaction_id)
    missing = [k for k in acked if k not in stored]
    twice = [k for k in acked if len(stored.get(k, ())) > 1]
    wrong = [k for k, found in acked.items() if k in stored and found != set(stored[k])]
    return {
        "acknowledged": len(acked),
        "missing": len(missing),
        "duplicated": len(twice),
        "mismatched": len(wrong),
        "examples": (missing + twice + wrong)[:5],
        "verify_ok": verdict.ok,
        "sealing": sealed,
        "journal": _journal_summary(verdict.journal),
        "verify": {
            "accounts": verdict.accounts,
            "transactions": verdict.transactions,
            "entries": verdict.entries,
            "drift": len(verdict.drift),
            "snapshot_drift": len(verdict.snapshot_drift),
            "unbalanced": len(verdict.unbalanced),
        },
    }


def _journal_summary(journal) -> dict | None:
    if journal is None:
        return None
    return {
        "ok": journal.ok,
        "blocks": journal.blocks,
        "transactions": journal.transactions,
        "first_broken_block": journal.first_broken_block,
        "left_out": journal.left_out.unsealed_below_horizon_count,
        "unaudited": journal.left_out.unaudited_count,
        "waiting": journal.left_out.waiting,
    }
