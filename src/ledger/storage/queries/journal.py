"""The sealed journal's SQL: the sequencer's read of what may be sealed
next, the block it appends, and the reads of blocks and proofs. Which
headers may be sealed, and in which order, differs between the databases:
`ledger.storage.dialect.journal` explains both."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Numeric,
    Uuid,
    any_,
    bindparam,
    literal_column,
    select,
    text,
    tuple_,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.engine.journal_model import (
    Block,
    BlockDetail,
    JournalEntry,
    JournalRecord,
    SealedTransaction,
)
from ledger.engine.ports import BuildBlock
from ledger.storage import dialect, failures
from ledger.storage.posting.wire import run_on_driver
from ledger.storage.rows import parse_uuid, text_or_none
from ledger.storage.tables import entries, journal, journal_blocks, transactions

RECORD_COLUMNS = (
    transactions.c.id,
    transactions.c.client_id,
    transactions.c.idempotency_key,
    transactions.c.fingerprint,
    transactions.c.created_at,
    transactions.c.description,
    transactions.c.metadata,
    transactions.c.pending,
    transactions.c.timeout_seconds,
    transactions.c.reverses,
    transactions.c.resolves,
    transactions.c.resolution,
)
ENTRY_COLUMNS = (
    entries.c.transaction_id,
    entries.c.leg,
    entries.c.entry_id,
    entries.c.account_id,
    entries.c.direction,
    entries.c.amount,
    entries.c.currency,
    entries.c.pending,
    entries.c.created_at,
)
BLOCK_COLUMNS = tuple(c for c in journal_blocks.c if not c.name.startswith("horizon"))
NO_ID = uuid.UUID(int=0)


class LostRace(Exception):
    """Another sequencer appended the block this one was about to."""


@dataclass(frozen=True)
class Head:
    """The newest block and where the sequencer stopped after it."""

    block: Block
    position: Decimal
    last_id: uuid.UUID


def block_of(row: Any) -> Block:
    return Block(
        number=row.number,
        first_sequence=row.first_sequence,
        last_sequence=row.last_sequence,
        merkle_root=row.merkle_root.hex(),
        previous_hash=row.previous_hash.hex(),
        hash=row.hash.hex(),
        sealed_at=row.sealed_at,
    )


HEAD = select(*journal_blocks.c).order_by(journal_blocks.c.number.desc()).limit(1)


async def head(conn: AsyncConnection) -> Head | None:
    row = (await conn.execute(HEAD)).first()
    if row is None:
        return None
    return Head(block_of(row), row.horizon_position, row.horizon_id)


# --- what the sequencer seals ---------------------------------------------------------


def _candidates(name: str, window: str):
    """Headers after the last sealed (position, id), in that order."""
    position = literal_column(dialect.commit_position_sql(name))
    kind = BigInteger if name == dialect.POSTGRESQL else Numeric
    return (
        select(*RECORD_COLUMNS, position.label("position"))
        .where(
            text(window),
            tuple_(position, transactions.c.id)
            > tuple_(bindparam("after_position", type_=kind), bindparam("after_id", type_=Uuid)),
        )
        .order_by(position, transactions.c.id)
        .limit(bindparam("limit"))
    )


async def sealable(
    conn: AsyncConnection, found: Head | None, bound: Any, limit: int, lookback: float
) -> list[tuple[JournalRecord, Any, uuid.UUID]]:
    """Up to `limit` headers that may be sealed after `found`, with their
    records and positions, in commit order. PostgreSQL: `bound` is the
    snapshot's xmin. CockroachDB: the caller reads at a closed time."""
    name = conn.dialect.name
    horizon = found.position if found else None
    window, params = dialect.candidate_window(name, horizon, lookback)
    after = Decimal(-1) if horizon is None else horizon
    if name == dialect.POSTGRESQL:
        after = int(after)
    # Straight on psycopg, as the posting path's statements are (see
    # `posting/wire.py`): SQLAlchemy's row handling of a block's headers and
    # entries held the event loop, which the requests share, for milliseconds.
    rows = await run_on_driver(
        conn,
        ("seal_candidates", window),
        lambda: _candidates(name, window),
        {
            **params,
            "bound": bound,
            "after_position": after,
            "after_id": found.last_id if found else NO_ID,
            "limit": limit,
        },
        rows=True,
    )
    assert rows is not None
    records = await records_of(conn, rows)
    return [(records[row.id], row.position, row.id) for row in rows]


_ENTRIES_OF = (
    select(*ENTRY_COLUMNS)
    .where(entries.c.transaction_id == any_(bindparam("ids", type_=ARRAY(Uuid))))
    .order_by(entries.c.transaction_id, entries.c.leg)
)


async def records_of(
    conn: AsyncConnection, headers: Iterable[Any]
) -> dict[uuid.UUID, JournalRecord]:
    """The records of these header rows (RECORD_COLUMNS), entries read in
    one go, straight on psycopg."""
    headers = list(headers)
    legs: dict[uuid.UUID, list[JournalEntry]] = {h.id: [] for h in headers}
    if headers:
        found = await run_on_driver(
            conn, ("seal_entries",), lambda: _ENTRIES_OF, {"ids": list(legs)}, rows=True
        )
        for e in found or []:
            legs[e.transaction_id].append(entry_of(e))
    return {h.id: record_of(h, legs[h.id]) for h in headers}


def entry_of(e: Any) -> JournalEntry:
    return JournalEntry(
        leg=e.leg,
        entry_id=str(e.entry_id),
        account_id=e.account_id,
        direction=e.direction,
        amount=e.amount,
        currency=e.currency,
        pending=e.pending,
        created_at=e.created_at,
    )


def record_of(h: Any, legs: list[JournalEntry]) -> JournalRecord:
    return JournalRecord(
        id=str(h.id),
        client_id=h.client_id,
        idempotency_key=h.idempotency_key,
        fingerprint=h.fingerprint,
        created_at=h.created_at,
        description=h.description,
        metadata=h.metadata,
        pending=h.pending,
        timeout_seconds=h.timeout_seconds,
        reverses=text_or_none(h.reverses),
        resolves=text_or_none(h.resolves),
        resolution=h.resolution,
        entries=legs,
    )


async def bound_and_now(conn: AsyncConnection) -> tuple[Any, datetime]:
    row = (await conn.execute(text(dialect.sealable_bound_sql(conn.dialect.name)))).one()
    return row[0], row[1]


# A block's rows in one statement of three arrays (one row each through
# executemany cost about 5 ms of the event loop for 150 rows).
_APPEND_ROWS = text(
    "INSERT INTO journal (sequence, block, transaction_id, hash) "
    "SELECT s, :block, t, h FROM unnest("
    "CAST(:sequences AS BIGINT[]), CAST(:ids AS UUID[]), CAST(:hashes AS BYTEA[])"
    ") AS rows (s, t, h)"
)


async def append(conn: AsyncConnection, detail: BlockDetail, position: Any, last_id) -> None:
    """Append the block and its sequence rows. Raises LostRace when another
    sequencer appended this block (or sealed one of these transactions)
    first."""
    b = detail.block
    try:
        await conn.execute(
            journal_blocks.insert().values(
                number=b.number,
                first_sequence=b.first_sequence,
                last_sequence=b.last_sequence,
                merkle_root=bytes.fromhex(b.merkle_root),
                previous_hash=bytes.fromhex(b.previous_hash),
                hash=bytes.fromhex(b.hash),
                sealed_at=b.sealed_at,
                horizon_position=Decimal(position),
                horizon_id=last_id,
            )
        )
        await conn.execute(
            _APPEND_ROWS,
            {
                "block": b.number,
                "sequences": [t.sequence for t in detail.transactions],
                "ids": [uuid.UUID(t.transaction_id) for t in detail.transactions],
                "hashes": [bytes.fromhex(t.hash) for t in detail.transactions],
            },
        )
    except sa_exc.IntegrityError as exc:
        if failures.constraint_name(exc) in (
            "journal_blocks_pkey",
            "journal_pkey",
            "journal_transaction_id_key",
        ):
            raise LostRace() from exc
        raise


async def seal_in_snapshot(
    conn: AsyncConnection, limit: int, lookback: float, build: BuildBlock
) -> int:
    """PostgreSQL: read and seal in one REPEATABLE READ transaction (none
    when another sequencer holds the guard: it is sealing this block)."""
    guard = dialect.seal_guard_sql(conn.dialect.name)
    if guard is not None and not (await conn.execute(text(guard))).scalar_one():
        return 0
    found = await head(conn)
    bound, now = await bound_and_now(conn)
    picked = await sealable(conn, found, bound, limit, lookback)
    if not picked:
        return 0
    detail = await build(found.block if found else None, [p[0] for p in picked], now)
    _, position, last_id = picked[-1]
    await append(conn, detail, position, last_id)
    return len(picked)


# --- reads ----------------------------------------------------------------------------

_SEALED_OF_BLOCK = (
    select(journal.c.sequence, journal.c.transaction_id, journal.c.hash)
    .where(journal.c.block == bindparam("number"))
    .order_by(journal.c.sequence)
)


async def block_detail(conn: AsyncConnection, number: int) -> BlockDetail | None:
    row = (
        await conn.execute(select(*BLOCK_COLUMNS).where(journal_blocks.c.number == number))
    ).first()
    if row is None:
        return None
    sealed = [
        SealedTransaction(r.sequence, str(r.transaction_id), r.hash.hex())
        for r in await conn.execute(_SEALED_OF_BLOCK, {"number": number})
    ]
    return BlockDetail(block_of(row), sealed)


async def blocks_after(conn: AsyncConnection, number: int, limit: int) -> list[Block]:
    rows = await conn.execute(
        select(*BLOCK_COLUMNS)
        .where(journal_blocks.c.number > number)
        .order_by(journal_blocks.c.number)
        .limit(limit)
    )
    return [block_of(r) for r in rows]


async def proof_material(
    conn: AsyncConnection, transaction_id: str, max_blocks: int
) -> tuple[JournalRecord, BlockDetail | None, list[Block], bool] | None:
    tid = parse_uuid(transaction_id)
    if tid is None:
        return None
    header = (await conn.execute(select(*RECORD_COLUMNS).where(transactions.c.id == tid))).first()
    if header is None:
        return None
    record = (await records_of(conn, [header]))[tid]
    number = (
        await conn.execute(select(journal.c.block).where(journal.c.transaction_id == tid))
    ).scalar_one_or_none()
    if number is None:
        return record, None, [], False
    detail = await block_detail(conn, number)
    chain = await blocks_after(conn, number, max_blocks + 1)
    complete = len(chain) <= max_blocks
    return record, detail, chain[:max_blocks], complete
