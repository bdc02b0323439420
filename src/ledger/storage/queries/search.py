"""Finding transactions: by account (its entries, a primary-key range when
the period is given), by metadata equality (JSONB containment, which the
`transactions_metadata` GIN or inverted index serves), within a period, in
(created_at, id) order."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.engine.model import Transaction
from ledger.engine.report_model import TransactionQuery
from ledger.storage import ids
from ledger.storage.queries.transactions import load_many
from ledger.storage.tables import entries, transactions


async def search(
    conn: AsyncConnection,
    where: TransactionQuery,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[Transaction]:
    t, e = transactions.c, entries.c
    conditions = []
    if where.start is not None:
        conditions.append(t.created_at >= where.start)
    if where.end is not None:
        conditions.append(t.created_at < where.end)
    if where.metadata:
        conditions.append(t.metadata.contains(where.metadata))
    if where.account_id is not None:
        legs = [e.account_id == where.account_id]
        if where.start is not None:
            legs.append(e.entry_id >= ids.entry_id_floor(where.start))
        if where.end is not None:
            legs.append(e.entry_id < ids.entry_id_ceiling(where.end))
        conditions.append(t.id.in_(select(e.transaction_id).where(*legs)))
    if after is not None:
        conditions.append(tuple_(t.created_at, t.id) > tuple_(*after))
    query = select(t.id).where(*conditions).order_by(t.created_at, t.id).limit(limit)
    found = [row.id for row in await conn.execute(query)]
    return await load_many(conn, found)
