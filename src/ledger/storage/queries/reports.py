"""Reports' reads: a statement page (totals before the period, before the
page and at its end, and the page's entries) and the trial balance's rows.
Entry ids are time-ordered, so a period is a primary-key range too."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.engine.report_model import StatementRead
from ledger.storage import ids, rows
from ledger.storage.fragments import credit_sum, debit_sum
from ledger.storage.queries import balances
from ledger.storage.tables import accounts, entries

e = entries.c


async def statement_page(
    conn: AsyncConnection,
    account_id: str,
    opening_at: datetime,
    closing_at: datetime,
    after: str | None,
    limit: int,
) -> StatementRead | None:
    """Entries created in (opening_at, closing_at], after the entry `after`."""
    after_id = rows.uuid_after(after, "this statement")
    opening = await balances.as_of(conn, account_id, opening_at)
    if opening is None:
        return None
    closing = await balances.as_of(conn, account_id, closing_at)
    assert closing is not None
    before_page = (opening.posted_debits, opening.posted_credits)
    if after_id is not None:
        query = balances.posted_between(account_id, opening_at, closing_at).where(
            e.entry_id <= after_id
        )
        got = (await conn.execute(query)).one()
        before_page = (before_page[0] + int(got[0]), before_page[1] + int(got[1]))
    query = (
        select(e.entry_id, e.transaction_id, e.created_at, e.direction, e.amount)
        .where(
            e.account_id == account_id,
            e.pending.is_(False),
            e.entry_id >= ids.entry_id_floor(opening_at),
            e.entry_id < ids.entry_id_ceiling(closing_at),
            e.created_at > opening_at,
            e.created_at <= closing_at,
        )
        .order_by(e.entry_id)
        .limit(limit)
    )
    if after_id is not None:
        query = query.where(e.entry_id > after_id)
    account = opening.account
    return StatementRead(
        normal_side=account.normal_side,
        currency=account.currency,
        scale=account.scale,
        opening=(opening.posted_debits, opening.posted_credits),
        before_page=before_page,
        closing=(closing.posted_debits, closing.posted_credits),
        entries=[
            (str(r.entry_id), str(r.transaction_id), r.created_at, r.direction, r.amount)
            for r in await conn.execute(query)
        ],
    )


def trial_balance(as_of: datetime, currency: str | None):
    """Every account (of `currency`) with its posted totals as of `as_of`,
    summed from the journal (a hot account's entries are all there too), in
    id order."""
    sums = (
        select(e.account_id, debit_sum.label("debits"), credit_sum.label("credits"))
        .where(
            e.pending.is_(False),
            e.entry_id < ids.entry_id_ceiling(as_of),
            e.created_at <= as_of,
        )
        .group_by(e.account_id)
        .subquery()
    )
    a = accounts.c
    query = (
        select(
            a.id,
            a.currency,
            a.normal_side,
            func.coalesce(sums.c.debits, 0),
            func.coalesce(sums.c.credits, 0),
        )
        .select_from(accounts.outerjoin(sums, sums.c.account_id == a.id))
        .where(a.created_at <= as_of)
        .order_by(a.id)
    )
    if currency is not None:
        query = query.where(a.currency == currency)
    return query
