"""An account's history: its entries in time order, each with the state of
its pending transaction where it has one."""

from __future__ import annotations

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.engine import pending
from ledger.engine.model import AccountEntry
from ledger.storage import rows
from ledger.storage.fragments import resolver
from ledger.storage.tables import entries


async def entries_of(
    conn: AsyncConnection, account_id: str, after: str | None, limit: int
) -> list[AccountEntry]:
    after_id = rows.uuid_after(after, "this account's history")
    query = (
        select(
            entries,
            resolver.c.id.label("resolved_by"),
            resolver.c.resolution.label("resolved_as"),
        )
        .select_from(
            entries.outerjoin(
                resolver,
                and_(entries.c.pending, resolver.c.resolves == entries.c.transaction_id),
            )
        )
        .where(entries.c.account_id == account_id)
        .order_by(entries.c.entry_id)
        .limit(limit)
    )
    if after_id is not None:
        query = query.where(entries.c.entry_id > after_id)
    return [
        AccountEntry(
            entry_id=str(r.entry_id),
            transaction_id=str(r.transaction_id),
            account_id=r.account_id,
            direction=r.direction,
            amount=r.amount,
            currency=r.currency,
            created_at=r.created_at,
            pending=r.pending,
            state=pending.entry_state(r.pending, r.resolved_as),
            resolved_by=str(r.resolved_by) if r.resolved_by is not None else None,
        )
        for r in await conn.execute(query)
    ]
