"""What the operator tools ask of the database beyond the ledger's own
reads: which postings a load run left under its keys (the benchmark's and
the drills' audit), how long the run's transactions waited to be sealed,
and fresh planner statistics after seeding."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.storage.tables import journal, journal_blocks, transactions

_CHUNK = 5000


async def transactions_by_keys(
    conn: AsyncConnection, client_id: str, keys: list[str]
) -> dict[str, list[str]]:
    """key -> the ids of the transactions under it, for those of `keys` in
    the journal (more than one id would be a posting written twice)."""
    found: dict[str, list[str]] = {}
    for start in range(0, len(keys), _CHUNK):
        rows = await conn.execute(
            select(transactions.c.idempotency_key, transactions.c.id).where(
                transactions.c.client_id == client_id,
                transactions.c.idempotency_key.in_(keys[start : start + _CHUNK]),
            )
        )
        for r in rows:
            found.setdefault(r.idempotency_key, []).append(str(r.id))
    return found


async def refresh_statistics(conn: AsyncConnection) -> None:
    """ANALYZE the account tables (needs the owner). Right after many
    accounts are created the planner has no statistics and may read the
    balance rows with a bitmap scan, whose coarse SERIALIZABLE predicate
    locks make concurrent postings conflict (a benchmark on a freshly
    seeded database measured 0.9 retries per commit instead of 0.02).
    Autovacuum gets there by itself after a while; a benchmark that has
    just seeded cannot wait."""
    await conn.execute(text("ANALYZE accounts"))
    await conn.execute(text("ANALYZE account_balances"))


async def sealing_lags(conn: AsyncConnection, since: datetime) -> tuple[list[float], int]:
    """For the transactions begun since `since`: how long each waited from
    its start (its `created_at`, a few milliseconds before its commit) until
    its block was sealed, in seconds; and how many are not sealed yet."""
    lag = func.extract("epoch", journal_blocks.c.sealed_at - transactions.c.created_at)
    rows = await conn.execute(
        select(lag)
        .select_from(
            transactions.join(journal, journal.c.transaction_id == transactions.c.id).join(
                journal_blocks, journal_blocks.c.number == journal.c.block
            )
        )
        .where(transactions.c.created_at >= since)
    )
    lags = [float(r[0]) for r in rows]
    waiting = (
        await conn.execute(
            select(func.count())
            .select_from(
                transactions.outerjoin(journal, journal.c.transaction_id == transactions.c.id)
            )
            .where(transactions.c.created_at >= since, journal.c.sequence.is_(None))
        )
    ).scalar_one()
    return lags, waiting
