"""Reading transactions: one with its legs and what resolved or reversed
it, and the one an idempotency key points at."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import and_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.engine import pending
from ledger.engine.model import IdempotencyKey, PostedLeg, StoredPosting, Transaction
from ledger.storage.fragments import resolver, reverser
from ledger.storage.rows import parse_uuid, text_or_none
from ledger.storage.tables import entries, journal, transactions

_HEADER = select(
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
).select_from(
    transactions.outerjoin(reverser, reverser.c.reverses == transactions.c.id).outerjoin(
        resolver, resolver.c.resolves == transactions.c.id
    )
)
_TRANSACTION = _HEADER.where(transactions.c.id == bindparam("id"))
# What a reader is shown: the transaction with its place in the sealed
# journal. A posting that only needs the transaction it resolves or
# reverses reads `_TRANSACTION`, without the journal.
TRANSACTION_WITH_PLACE = _TRANSACTION.add_columns(journal.c.sequence, journal.c.block).outerjoin(
    journal, journal.c.transaction_id == transactions.c.id
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


async def load(
    conn: AsyncConnection, transaction_id: str, *, with_place: bool = True
) -> Transaction | None:
    """The transaction with its legs; with its `sequence` and `block` in the
    sealed journal when `with_place` (else they stay None)."""
    tid = parse_uuid(transaction_id)
    if tid is None:
        return None
    query = TRANSACTION_WITH_PLACE if with_place else _TRANSACTION
    row = (await conn.execute(query, {"id": tid})).first()
    if row is None:
        return None
    legs = (await conn.execute(LEGS_OF, {"id": tid})).all()
    return transaction_of(row, [leg_of(leg) for leg in legs], with_place=with_place)


def leg_of(leg: Any) -> PostedLeg:
    return PostedLeg(leg.account_id, leg.direction, leg.amount, leg.currency, str(leg.entry_id))


def transaction_of(row: Any, legs: list[PostedLeg], *, with_place: bool = True) -> Transaction:
    """A transaction from its header row (with what resolved or reversed it,
    and its place in the journal when `with_place`) and its legs."""
    pending_fields = {}
    if row.pending:
        pending_fields = pending.fields(
            row.created_at, row.timeout_seconds, row.resolved_as, text_or_none(row.resolved_by)
        )
    return Transaction(
        id=str(row.id),
        entries=legs,
        description=row.description,
        metadata=row.metadata,
        created_at=row.created_at,
        reverses=text_or_none(row.reverses),
        reversed_by=text_or_none(row.reversed_by),
        resolves=text_or_none(row.resolves),
        resolution=row.resolution,
        sequence=row.sequence if with_place else None,
        block=row.block if with_place else None,
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


async def load_many(conn: AsyncConnection, transaction_ids: list[uuid.UUID]) -> list[Transaction]:
    """Several transactions with their legs and places, in the order given:
    two statements, whatever their number (a page of a search)."""
    if not transaction_ids:
        return []
    query = (
        _HEADER.add_columns(journal.c.sequence, journal.c.block)
        .outerjoin(journal, journal.c.transaction_id == transactions.c.id)
        .where(transactions.c.id.in_(transaction_ids))
    )
    heads = {row.id: row for row in await conn.execute(query)}
    legs_query = (
        select(
            entries.c.transaction_id,
            entries.c.account_id,
            entries.c.direction,
            entries.c.amount,
            entries.c.currency,
            entries.c.entry_id,
        )
        .where(entries.c.transaction_id.in_(transaction_ids))
        .order_by(entries.c.transaction_id, entries.c.leg)
    )
    legs: dict[uuid.UUID, list[PostedLeg]] = {}
    for leg in await conn.execute(legs_query):
        legs.setdefault(leg.transaction_id, []).append(leg_of(leg))
    return [transaction_of(heads[tid], legs.get(tid, [])) for tid in transaction_ids]
