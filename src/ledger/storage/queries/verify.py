"""The sums `verify` judges, read in one snapshot. Only facts here: whether
they are right is the engine's to say (`ledger.engine.verify`)."""

from __future__ import annotations

from sqlalchemy import String, and_, case, cast, func, select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.engine.verify import (
    AccountSums,
    CurrencyTotals,
    JournalFacts,
    LegCount,
    SnapshotCheck,
    Totals,
    UnbalancedRecord,
)
from ledger.storage.fragments import (
    TOTALS,
    credit_sum,
    current,
    debit_sum,
    delta_sums,
    latest_snapshot,
    resolver,
)
from ledger.storage.queries import hot
from ledger.storage.queries.balances import posted_between
from ledger.storage.tables import account_balances, accounts, currencies, entries, transactions


def _sum_where(condition, direction: str):
    return func.coalesce(
        func.sum(
            case((and_(condition, entries.c.direction == direction), entries.c.amount), else_=0)
        ),
        0,
    )


async def per_account(
    conn: AsyncConnection, after: str | None = None, limit: int | None = None
) -> dict[str, AccountSums]:
    """Each account's totals as a balance read returns them (a missing
    balance row or snapshot shows as -1: always a difference), and as the
    journal sums them: every posted entry; pending entries whose transaction
    has not been resolved. With `limit`: only the `limit` accounts after
    `after` in id order (a round of the continuous verifier)."""
    among = None
    if limit is not None:
        page = select(accounts.c.id).order_by(accounts.c.id).limit(limit)
        if after is not None:
            page = page.where(accounts.c.id > after)
        among = [r.id for r in await conn.execute(page)]
        if not among:
            return {}
    unresolved = and_(entries.c.pending, resolver.c.id.is_(None))
    posted = entries.c.pending.is_(False)
    journal = (
        select(
            entries.c.account_id,
            _sum_where(posted, "debit").label("d"),
            _sum_where(posted, "credit").label("c"),
            _sum_where(unresolved, "debit").label("pd"),
            _sum_where(unresolved, "credit").label("pc"),
        )
        .select_from(entries.outerjoin(resolver, resolver.c.resolves == entries.c.transaction_id))
        .where(entries.c.account_id.in_(among) if among is not None else true())
        .group_by(entries.c.account_id)
        .subquery()
    )
    query = select(
        accounts.c.id.label("account_id"),
        *(func.coalesce(current(c), -1).label(c) for c in TOTALS),
        journal.c.d,
        journal.c.c,
        journal.c.pd,
        journal.c.pc,
    ).select_from(
        accounts.outerjoin(account_balances, account_balances.c.account_id == accounts.c.id)
        .outerjoin(latest_snapshot, true())
        .outerjoin(delta_sums, true())
        .outerjoin(journal, journal.c.account_id == accounts.c.id)
    )
    if among is not None:
        query = query.where(accounts.c.id.in_(among))
    return {
        r.account_id: AccountSums(
            cached=Totals(*(getattr(r, c) for c in TOTALS)),
            journal=Totals(int(r.d or 0), int(r.c or 0), int(r.pd or 0), int(r.pc or 0)),
        )
        for r in await conn.execute(query)
    }


async def unbalanced(conn: AsyncConnection) -> list[UnbalancedRecord]:
    """Transactions whose debits and credits differ in some currency."""
    query = (
        select(
            entries.c.transaction_id,
            entries.c.currency,
            debit_sum.label("d"),
            credit_sum.label("c"),
        )
        .group_by(entries.c.transaction_id, entries.c.currency)
        .having(debit_sum != credit_sum)
    )
    return [
        UnbalancedRecord(str(r.transaction_id), r.currency, int(r.d), int(r.c))
        for r in await conn.execute(query)
    ]


async def leg_counts(conn: AsyncConnection) -> list[LegCount]:
    """How many transactions of each resolution have 0, 1, or 2 or more
    entries, with one id of each as an example."""
    per_transaction = (
        select(
            transactions.c.id,
            transactions.c.resolution,
            func.least(func.count(entries.c.entry_id), 2).label("legs"),
        )
        .select_from(transactions.outerjoin(entries, entries.c.transaction_id == transactions.c.id))
        .group_by(transactions.c.id, transactions.c.resolution)
        .subquery()
    )
    query = select(
        per_transaction.c.resolution,
        per_transaction.c.legs,
        func.count().label("n"),
        func.min(cast(per_transaction.c.id, String)).label("example"),
    ).group_by(per_transaction.c.resolution, per_transaction.c.legs)
    return [
        LegCount(r.resolution, int(r.legs), int(r.n), r.example) for r in await conn.execute(query)
    ]


async def snapshot_checks(conn: AsyncConnection) -> list[SnapshotCheck]:
    """Each hot account's newest snapshot that `as_of` would trust, against
    the journal up to its watermark."""
    checks = []
    hot_ids = await conn.execute(
        select(account_balances.c.account_id).where(account_balances.c.hot)
    )
    for (hot_id,) in hot_ids.all():
        snap = await hot.snapshot_as_of(conn, hot_id, hot.FAR_FUTURE)
        if snap is None:
            continue
        sums = (await conn.execute(posted_between(hot_id, None, snap.watermark))).one()
        checks.append(
            SnapshotCheck(
                hot_id,
                snap.seq,
                snap.watermark,
                snap.posted_debits,
                snap.posted_credits,
                int(sums[0]),
                int(sums[1]),
            )
        )
    return checks


async def journal_facts(conn: AsyncConnection) -> JournalFacts:
    """All of the above, and the counts, from one connection (the caller
    reads them in one snapshot)."""
    mismatches = (
        await conn.execute(
            select(func.count())
            .select_from(entries.join(accounts, accounts.c.id == entries.c.account_id))
            .where(entries.c.currency != accounts.c.currency)
        )
    ).scalar_one()
    per_currency = {
        r.currency: CurrencyTotals(int(r.d), int(r.c))
        for r in await conn.execute(
            select(entries.c.currency, debit_sum.label("d"), credit_sum.label("c")).group_by(
                entries.c.currency
            )
        )
    }
    counts = (
        await conn.execute(
            select(
                select(func.count()).select_from(accounts).scalar_subquery(),
                select(func.count()).select_from(transactions).scalar_subquery(),
                select(func.count()).select_from(entries).scalar_subquery(),
            )
        )
    ).one()
    return JournalFacts(
        accounts=counts[0],
        transactions=counts[1],
        entries=counts[2],
        per_account=await per_account(conn),
        unbalanced=await unbalanced(conn),
        leg_counts=await leg_counts(conn),
        currency_mismatches=mismatches,
        per_currency=per_currency,
        snapshots=await snapshot_checks(conn),
        mixed_scales=await mixed_scales(conn),
    )


async def mixed_scales(conn: AsyncConnection) -> list[str]:
    """Currencies with an account whose scale is not the currency's (the
    foreign key forbids it; a database changed behind the service's back
    would show it here)."""
    rows = await conn.execute(
        select(accounts.c.currency)
        .select_from(
            accounts.outerjoin(
                currencies,
                and_(
                    currencies.c.code == accounts.c.currency,
                    currencies.c.scale == accounts.c.scale,
                ),
            )
        )
        .where(currencies.c.code.is_(None))
        .group_by(accounts.c.currency)
        .order_by(accounts.c.currency)
    )
    return [r.currency for r in rows]
