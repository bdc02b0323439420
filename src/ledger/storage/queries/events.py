"""The sealed sequence read as events: the transactions after a (block,
sequence), filtered by type and account, with their records; and where
both event streams end. The same statements on both databases (the
journal's primary key is (block, sequence), so the read is one range of
it)."""

from __future__ import annotations

from sqlalchemy import and_, bindparam, exists, false, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.engine import events
from ledger.engine.events import EventFilter, Position, SealedRecord
from ledger.storage.queries.journal import RECORD_COLUMNS, records_of
from ledger.storage.queries.reconciliation import feed
from ledger.storage.tables import entries, journal, journal_blocks, transactions

t = transactions.c

# Which headers each event type is: `ledger.engine.events.event_type` in SQL.
_TYPE_OF = {
    events.RESOLVED: t.resolves.is_not(None),
    events.REVERSED: and_(t.resolves.is_(None), t.reverses.is_not(None)),
    events.PENDING: and_(t.resolves.is_(None), t.reverses.is_(None), t.pending),
    events.POSTED: and_(t.resolves.is_(None), t.reverses.is_(None), ~t.pending),
}

_HEAD = select(journal_blocks.c.number, journal_blocks.c.last_sequence).order_by(
    journal_blocks.c.number.desc()
)
_LAST_OF_BLOCK = select(journal_blocks.c.last_sequence).where(
    journal_blocks.c.number == bindparam("number")
)


async def head(conn: AsyncConnection) -> Position:
    """The last sealed place."""
    row = (await conn.execute(_HEAD.limit(1))).first()
    return events.START if row is None else Position(row.number, row.last_sequence)


async def heads(conn: AsyncConnection) -> Position:
    """The last sealed place, and the reconciliation stream's end."""
    return (await head(conn))._replace(exception=await feed.head(conn))


def _sealed_query(where: EventFilter):
    conditions = [
        tuple_(journal.c.block, journal.c.sequence)
        > tuple_(bindparam("after_block"), bindparam("after_sequence")),
        journal.c.block <= bindparam("upto"),
    ]
    if where.types is not None:
        chosen = (_TYPE_OF[name] for name in where.types if name in _TYPE_OF)
        conditions.append(or_(false(), *chosen))
    if where.account_id is not None:
        conditions.append(
            exists().where(
                entries.c.transaction_id == journal.c.transaction_id,
                entries.c.account_id == bindparam("account_id"),
            )
        )
    return (
        select(journal.c.block, journal.c.sequence, *RECORD_COLUMNS)
        .select_from(journal.join(transactions, transactions.c.id == journal.c.transaction_id))
        .where(*conditions)
        .order_by(journal.c.block, journal.c.sequence)
        .limit(bindparam("limit"))
    )


async def sealed_after(
    conn: AsyncConnection, after: Position, scan_blocks: int, limit: int, where: EventFilter
) -> tuple[list[SealedRecord], Position]:
    """See `EventStore.sealed_after`. Blocks are written whole, each with
    its rows, so a read bounded by a block number that exists sees every
    row up to it."""
    newest = await head(conn)
    upto = min(newest.block, after.block + scan_blocks)
    if upto <= after.block and newest.sequence <= after.sequence:
        return [], after
    rows = (
        await conn.execute(
            _sealed_query(where),
            {
                "after_block": after.block,
                "after_sequence": after.sequence,
                "upto": upto,
                "limit": limit,
                "account_id": where.account_id,
            },
        )
    ).all()
    records = await records_of(conn, rows)
    found = [SealedRecord(records[r.id], r.block, r.sequence) for r in rows]
    if len(found) >= limit:
        return found, Position(found[-1].block, found[-1].sequence)
    if upto == newest.block:
        return found, newest
    last = (await conn.execute(_LAST_OF_BLOCK, {"number": upto})).scalar_one()
    return found, Position(upto, last)
