"""The queue of pending transactions with a deadline."""

from __future__ import annotations

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.storage.tables import pending_expiry

ENQUEUE = pending_expiry.insert()
DEQUEUE = pending_expiry.delete().where(pending_expiry.c.transaction_id == bindparam("resolves"))


async def due(conn: AsyncConnection, limit: int) -> list[str]:
    """Pending transactions past their deadline, oldest deadline first."""
    rows = await conn.execute(
        select(pending_expiry.c.transaction_id)
        .where(pending_expiry.c.expires_at <= func.now())
        .order_by(pending_expiry.c.expires_at)
        .limit(limit)
    )
    return [str(r.transaction_id) for r in rows]
