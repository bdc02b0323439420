"""Reading transactions: one with its legs and what resolved or reversed
it, and the one an idempotency key points at."""

from __future__ import annotations

from sqlalchemy import and_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.engine import pending
from ledger.engine.model import IdempotencyKey, PostedLeg, StoredPosting, Transaction
from ledger.storage.fragments import resolver, reverser
from ledger.storage.rows import parse_uuid
from ledger.storage.tables import entries, journal, transactions

TRANSACTION_BY_ID = (
    select(
        transactions.c.id,
        transactions.c.description,
        transactions.c.metadata,
        transactions.c.created_at,
        transactions.c.reverses,
        transactions.c.pending,
        transactions.c.timeout_seconds,
        transactions.c.resolves,
        transactions.c.resolution,
        reverser.c.id.label("reversed_by"),
        resolver.c.id.label("resolved_by"),
        resolver.c.resolution.label("resolved_as"),
        journal.c.sequence,
        journal.c.block,
    )
    .select_from(
        transactions.outerjoin(reverser, reverser.c.reverses == transactions.c.id)
        .outerjoin(resolver, resolver.c.resolves == transactions.c.id)
        .outerjoin(journal, journal.c.transaction_id == transactions.c.id)
    )
    .where(transactions.c.id == bindparam("id"))
)

LEGS_OF = (
    select(
        entries.c.account_id,
        entries.c.direction,
        entries.c.amount,
        entries.c.currency,
        entries.c.entry_id,
    )
    .where(entries.c.transaction_id == bindparam("id"))
    .order_by(entries.c.leg)
)


def _text(value) -> str | None:
    return str(value) if value is not None else None


async def load(conn: AsyncConnection, transaction_id: str) -> Transaction | None:
    tid = parse_uuid(transaction_id)
    if tid is None:
        return None
    row = (await conn.execute(TRANSACTION_BY_ID, {"id": tid})).first()
    if row is None:
        return None
    legs = (await conn.execute(LEGS_OF, {"id": tid})).all()
    pending_fields = {}
    if row.pending:
        pending_fields = pending.fields(
            row.created_at, row.timeout_seconds, row.resolved_as, _text(row.resolved_by)
        )
    return Transaction(
        id=str(row.id),
        entries=[
            PostedLeg(leg.account_id, leg.direction, leg.amount, leg.currency, str(leg.entry_id))
            for leg in legs
        ],
        description=row.description,
        metadata=row.metadata,
        created_at=row.created_at,
        reverses=_text(row.reverses),
        reversed_by=_text(row.reversed_by),
        resolves=_text(row.resolves),
        resolution=row.resolution,
        sequence=row.sequence,
        block=row.block,
        **pending_fields,
    )


async def by_key(conn: AsyncConnection, key: IdempotencyKey) -> StoredPosting | None:
    row = (
        await conn.execute(
            select(transactions.c.id, transactions.c.fingerprint).where(
                and_(
                    transactions.c.client_id == key.client_id,
                    transactions.c.idempotency_key == key.key,
                )
            )
        )
    ).first()
    if row is None:
        return None
    transaction = await load(conn, str(row.id))
    assert transaction is not None  # same snapshot as the row just read
    return StoredPosting(row.fingerprint, transaction)
