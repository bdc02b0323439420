"""Pieces of SQL that several queries share: column lists, joins, sums, and
the expression of an account's current totals (a balance row, or for a hot
account its newest snapshot plus its deltas)."""

from __future__ import annotations

from sqlalchemy import BigInteger, case, cast, func, select, true

from ledger.storage.tables import (
    account_balances,
    accounts,
    entries,
    hot_deltas,
    hot_snapshots,
    transactions,
)

ACCOUNT_COLUMNS = (
    accounts.c.id,
    accounts.c.currency,
    accounts.c.scale,
    accounts.c.normal_side,
    accounts.c.debits_must_not_exceed_credits,
    accounts.c.credits_must_not_exceed_debits,
    accounts.c.metadata,
    accounts.c.created_at,
    accounts.c.status,
)

BALANCE_COLUMNS = (
    account_balances.c.posted_debits,
    account_balances.c.posted_credits,
    account_balances.c.pending_debits,
    account_balances.c.pending_credits,
)

# The names of the four running totals, the same in balance rows, hot
# snapshots and hot deltas.
TOTALS = ("posted_debits", "posted_credits", "pending_debits", "pending_credits")

# The accounts with the hotness of each, joined where an account is read.
ACCOUNTS_WITH_HOT = accounts.join(account_balances, account_balances.c.account_id == accounts.c.id)

debit_sum = func.coalesce(
    func.sum(case((entries.c.direction == "debit", entries.c.amount), else_=0)), 0
)
credit_sum = func.coalesce(
    func.sum(case((entries.c.direction == "credit", entries.c.amount), else_=0)), 0
)

# The transaction that resolved (posted, voided, expired) a pending one, or
# reversed one, joined by its `resolves` or `reverses`.
resolver = transactions.alias("resolver")
reverser = transactions.alias("reverser")

_hs = hot_snapshots.c
latest_snapshot = (
    select(*(_hs[c] for c in TOTALS))
    .where(_hs.account_id == accounts.c.id)
    .order_by(_hs.seq.desc())
    .limit(1)
    .lateral("snap")
)
delta_sums = (
    select(*(func.sum(hot_deltas.c[c]).label(c) for c in TOTALS))
    .where(hot_deltas.c.account_id == accounts.c.id)
    .lateral("dsum")
)


def current(column: str):
    """The account's current total: snapshot plus deltas when hot, else the
    balance row. Needs `WITH_CURRENT` (or the same laterals) in the FROM."""
    hot_value = latest_snapshot.c[column] + func.coalesce(delta_sums.c[column], 0)
    return cast(
        case((account_balances.c.hot, hot_value), else_=account_balances.c[column]), BigInteger
    ).label(column)


WITH_CURRENT = ACCOUNTS_WITH_HOT.outerjoin(latest_snapshot, true()).outerjoin(delta_sums, true())
