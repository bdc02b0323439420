"""What the operator tools ask of the database beyond the ledger's own
reads: which postings a load run left under its keys (the benchmark's and
the drills' audit), and fresh planner statistics after seeding."""

from __future__ import annotations

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.storage.tables import transactions

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
