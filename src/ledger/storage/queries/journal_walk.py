"""`verify`'s walk over the sealed journal, read in one snapshot: the
blocks in order with their rows and the transactions those name as they
now stand, then what the sequence left out. Facts only; the engine's
`JournalCheck` judges them."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy import and_, exists, func, literal_column, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.engine.journal_check import MAX_LISTED, JournalCheck, JournalReport, LeftOut, SealedRow
from ledger.engine.journal_model import Block
from ledger.storage import dialect
from ledger.storage.queries.journal import (
    BLOCK_COLUMNS,
    ENTRY_COLUMNS,
    RECORD_COLUMNS,
    Head,
    block_of,
    entry_of,
    head,
    record_of,
)
from ledger.storage.tables import audit_log, entries, journal, journal_blocks, transactions

# Blocks read at a time: each holds at most `seal_max` transactions.
BLOCKS_PER_READ = 20


async def walk(
    conn: AsyncConnection, since_block: int, make_check: Callable[[Block | None], JournalCheck]
) -> JournalReport:
    previous = None
    if since_block > 1:
        row = (
            await conn.execute(
                select(*BLOCK_COLUMNS).where(journal_blocks.c.number == since_block - 1)
            )
        ).first()
        previous = block_of(row) if row is not None else None
    check = make_check(previous)
    after = since_block - 1
    while True:
        blocks = [
            block_of(r)
            for r in await conn.execute(
                select(*BLOCK_COLUMNS)
                .where(journal_blocks.c.number > after)
                .order_by(journal_blocks.c.number)
                .limit(BLOCKS_PER_READ)
            )
        ]
        if not blocks:
            break
        rows = await _rows_of(conn, blocks[0].number, blocks[-1].number)
        for block in blocks:
            check.block(block, rows.get(block.number, []))
        after = blocks[-1].number
    return check.finish(await left_out(conn, await head(conn), since_block))


async def _rows_of(conn: AsyncConnection, first: int, last: int) -> dict[int, list[SealedRow]]:
    """The sequence rows of blocks first..last, each with its transaction's
    record as it now stands (None when the transaction is gone)."""
    in_range = journal.c.block.between(first, last)
    found = (
        await conn.execute(
            select(
                journal.c.sequence,
                journal.c.block,
                journal.c.transaction_id,
                journal.c.hash,
                *RECORD_COLUMNS,
            )
            .select_from(
                journal.outerjoin(transactions, transactions.c.id == journal.c.transaction_id)
            )
            .where(in_range)
            .order_by(journal.c.sequence)
        )
    ).all()
    legs: dict[uuid.UUID, list] = {}
    for e in await conn.execute(
        select(*ENTRY_COLUMNS)
        .select_from(entries.join(journal, journal.c.transaction_id == entries.c.transaction_id))
        .where(in_range)
        .order_by(entries.c.transaction_id, entries.c.leg)
    ):
        legs.setdefault(e.transaction_id, []).append(entry_of(e))
    per_block: dict[int, list[SealedRow]] = {}
    for r in found:
        record = record_of(r, legs.get(r.id, [])) if r.id is not None else None
        per_block.setdefault(r.block, []).append(
            SealedRow(r.sequence, str(r.transaction_id), r.hash.hex(), record)
        )
    return per_block


async def _listed(conn: AsyncConnection, query) -> tuple[list[str], int]:
    """Up to MAX_LISTED ids a query (of transaction ids) finds, and how many it finds."""
    sub = query.subquery()
    count = (await conn.execute(select(func.count()).select_from(sub))).scalar_one()
    ids = [str(i) for (i,) in await conn.execute(query.limit(MAX_LISTED))]
    return ids, count


async def left_out(conn: AsyncConnection, found: Head | None, since_block: int) -> LeftOut:
    """Transactions in no block: at or below the head's horizon (left out),
    or after it (waiting); and transactions no audit row names."""
    name = conn.dialect.name
    place = tuple_(literal_column(dialect.commit_position_sql(name)), transactions.c.id)
    with_place = transactions.outerjoin(journal, journal.c.transaction_id == transactions.c.id)
    unsealed = journal.c.sequence.is_(None)
    below: list[str] = []
    below_count = 0
    waiting_where = unsealed
    if found is not None:
        horizon = int(found.position) if name == dialect.POSTGRESQL else found.position
        mark = tuple_(horizon, found.last_id)
        below, below_count = await _listed(
            conn,
            select(transactions.c.id)
            .select_from(with_place)
            .where(unsealed, place <= mark)
            .order_by(transactions.c.id),
        )
        waiting_where = and_(unsealed, place > mark)
    waiting, oldest, now = (
        await conn.execute(
            select(func.count(), func.min(transactions.c.created_at), func.now())
            .select_from(with_place)
            .where(waiting_where)
        )
    ).one()
    # Every posting writes its audit row in its own transaction; one written
    # before the audit trail existed (migration 0004) cannot have one.
    audited = exists().where(audit_log.c.transaction_id == transactions.c.id)
    trail_began = select(func.min(audit_log.c.occurred_at)).scalar_subquery()
    unaudited, unaudited_count = await _listed(
        conn,
        select(transactions.c.id)
        .select_from(with_place)
        .where(
            or_(journal.c.block.is_(None), journal.c.block >= since_block),
            transactions.c.created_at >= trail_began,
            ~audited,
        )
        .order_by(transactions.c.id),
    )
    return LeftOut(
        unsealed_below_horizon=below,
        unsealed_below_horizon_count=below_count,
        waiting=waiting,
        oldest_waiting_seconds=(now - oldest).total_seconds() if oldest is not None else None,
        unaudited=unaudited,
        unaudited_count=unaudited_count,
    )
