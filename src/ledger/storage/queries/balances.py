"""Balances: an account's current totals (the cached row, or snapshot plus
deltas when hot), and its totals as of a time, summed from the journal."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.engine.model import AccountState
from ledger.storage import ids, rows
from ledger.storage.fragments import (
    ACCOUNT_COLUMNS,
    TOTALS,
    WITH_CURRENT,
    credit_sum,
    current,
    debit_sum,
    resolver,
)
from ledger.storage.queries import accounts as accounts_q
from ledger.storage.queries import hot
from ledger.storage.tables import account_balances, accounts, entries

CURRENT_TOTALS = (
    select(
        *ACCOUNT_COLUMNS,
        account_balances.c.hot,
        *(current(c) for c in TOTALS),
        func.now().label("read_at"),
    )
    .select_from(WITH_CURRENT)
    .where(accounts.c.id == bindparam("account_id"))
)


def posted_between(account_id: str, after: datetime | None, until: datetime | None):
    """Posted debit and credit sums of the account's entries created in
    (after, until]. Entry ids are time-ordered by creation time, so the
    bounds are also a primary-key range: no scan of older history."""
    conditions = [entries.c.account_id == account_id, entries.c.pending.is_(False)]
    if after is not None:
        conditions += [
            entries.c.entry_id >= ids.entry_id_floor(after),
            entries.c.created_at > after,
        ]
    if until is not None:
        conditions += [
            entries.c.entry_id < ids.entry_id_ceiling(until),
            entries.c.created_at <= until,
        ]
    return select(debit_sum, credit_sum).where(*conditions)


async def cached(conn: AsyncConnection, account_id: str) -> tuple[AccountState, datetime] | None:
    row = (await conn.execute(CURRENT_TOTALS, {"account_id": account_id})).first()
    return None if row is None else (rows.account_state(row), row.read_at)


async def as_of(conn: AsyncConnection, account_id: str, at: datetime) -> AccountState | None:
    """The account's totals as of `at`, from the journal: posted entries
    created by then, and pending entries created by then whose transaction
    had no resolution yet at that time."""
    account = await accounts_q.get(conn, account_id)
    if account is None:
        return None
    # A hot account: its newest exact snapshot before `at`, plus the journal
    # after its watermark. Otherwise the whole journal.
    base, after = (0, 0), None
    if account.hot:
        snapshot = await hot.snapshot_as_of(conn, account_id, at)
        if snapshot is not None:
            base = (snapshot.posted_debits, snapshot.posted_credits)
            after = snapshot.watermark
    since = (await conn.execute(posted_between(account_id, after, at))).one()
    held = (
        await conn.execute(
            select(debit_sum, credit_sum)
            .select_from(
                entries.outerjoin(resolver, resolver.c.resolves == entries.c.transaction_id)
            )
            .where(
                entries.c.account_id == account_id,
                entries.c.created_at <= at,
                # Bare, so the partial index entries_pending serves it.
                entries.c.pending,
                or_(resolver.c.id.is_(None), resolver.c.created_at > at),
            )
        )
    ).one()
    return AccountState(
        account,
        base[0] + int(since[0]),
        base[1] + int(since[1]),
        int(held[0]),
        int(held[1]),
    )
