"""The statements a posting runs, built with SQLAlchemy Core once per shape
(how many accounts, entries, hot deltas) and cached: the header insert with
the locking read of its accounts, and everything written after the checks
in one statement. `wire.py` sends them; the pgbench baseline of `ledger
bench` is rendered from them too (`ledger.storage.baseline`), so the two
cannot drift apart."""

from __future__ import annotations

import functools
from collections.abc import Callable

from sqlalchemy import (
    BigInteger,
    String,
    bindparam,
    column,
    func,
    literal_column,
    select,
    true,
    update,
    values,
)
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Subquery

from ledger.storage.fragments import ACCOUNT_COLUMNS, ACCOUNTS_WITH_HOT, BALANCE_COLUMNS
from ledger.storage.queries.audit import AUDIT_COLUMNS
from ledger.storage.tables import (
    account_balances,
    accounts,
    audit_log,
    entries,
    hot_deltas,
    pending_expiry,
    transactions,
)

HEADER_COLUMNS = (
    "id",
    "client_id",
    "idempotency_key",
    "fingerprint",
    "reverses",
    "description",
    "metadata",
    "pending",
    "timeout_seconds",
    "resolves",
    "resolution",
)


def locked_accounts(among: Callable[[ColumnElement], ColumnElement]) -> Subquery:
    """The accounts whose id `among(id column)` selects, each with its
    balances, the balance rows of the ordinary ones locked in id order (a
    hot account's row is read, to learn that it is hot, never locked).
    Shared by a posting's first statement and a batch's locking read."""
    locked = (
        select(account_balances.c.account_id, *BALANCE_COLUMNS)
        .where(among(account_balances.c.account_id), account_balances.c.hot.is_(False))
        .order_by(account_balances.c.account_id)
        .with_for_update()
        .cte("locked")
    )
    return (
        select(
            *ACCOUNT_COLUMNS,
            account_balances.c.hot,
            *(
                func.coalesce(locked.c[c.name], literal_column("0")).label(c.name)
                for c in BALANCE_COLUMNS
            ),
        )
        .select_from(ACCOUNTS_WITH_HOT.outerjoin(locked, locked.c.account_id == accounts.c.id))
        .where(among(accounts.c.id))
        .subquery("found")
    )


@functools.cache
def open_posting(n: int):
    """A posting's first statement: insert its header and its audit row,
    and read its n accounts, with the balance rows of the ordinary ones
    locked in id order. The audit row rides along as a CTE (parameters
    `audit_<column>`), so recording it costs no round trip of its own.

    The header goes in first in the same statement, so a used idempotency
    key (or a resolution already made) fails the statement before any rule
    is judged. A hot account's row is read (to learn that it is hot) but not
    locked, so postings to it do not queue behind each other. One row per
    account found, or one row of NULLs (but the header's time) when none is.

    The ids are n bind parameters, not one array: with `= ANY(array)` a
    prepared statement's generic plan scanned the whole balance table, and
    under SERIALIZABLE a scan takes a predicate lock on all of it, so every
    concurrent posting conflicted."""
    ids = [bindparam(f"id_{i}", type_=String) for i in range(n)]
    # created_at is the database's now(): the transaction's start.
    header = (
        transactions.insert()
        .values({c: bindparam(c, type_=transactions.c[c].type) for c in HEADER_COLUMNS})
        .returning(transactions.c.created_at)
        .cte("header")
    )
    found = locked_accounts(lambda account_id: account_id.in_(ids))
    audit_row = audit_log.insert().values(
        {c: bindparam(f"audit_{c}", type_=audit_log.c[c].type) for c in AUDIT_COLUMNS}
    )
    return (
        select(header.c.created_at.label("header_created_at"), *found.c)
        .select_from(header.outerjoin(found, true()))
        .add_cte(audit_row.cte("audit_row"))
    )


ENTRY_COLUMNS = (
    "account_id",
    "entry_id",
    "transaction_id",
    "leg",
    "direction",
    "amount",
    "currency",
    "created_at",
    "pending",
)


@functools.cache
def insert_entries(n: int):
    """INSERT of n entries in one statement, with bind parameters
    `<column>_<i>`: built and compiled once per n, not once per posting."""
    return entries.insert().values(
        [
            {c: bindparam(f"{c}_{i}", type_=entries.c[c].type) for c in ENTRY_COLUMNS}
            for i in range(n)
        ]
    )


_DELTA_FIELDS = ("d", "c", "pd", "pc")


@functools.cache
def add_to_balances(n: int):
    """UPDATE account_balances ... FROM (VALUES (a_i, d_i, c_i, pd_i, pc_i),
    ...) for n accounts, built and compiled once per n."""
    changes = values(
        column("a_id", String), *(column(f, BigInteger) for f in _DELTA_FIELDS), name="v"
    ).data(
        [
            (
                bindparam(f"a_{i}", type_=String),
                *(bindparam(f"{f}_{i}", type_=BigInteger) for f in _DELTA_FIELDS),
            )
            for i in range(n)
        ]
    )
    b = account_balances.c
    return (
        update(account_balances)
        .where(b.account_id == changes.c.a_id)
        .values(
            posted_debits=b.posted_debits + changes.c.d,
            posted_credits=b.posted_credits + changes.c.c,
            pending_debits=b.pending_debits + changes.c.pd,
            pending_credits=b.pending_credits + changes.c.pc,
        )
    )


@functools.cache
def insert_hot_deltas(n: int):
    """INSERT of n hot-account deltas in one statement, compiled once per n."""
    return hot_deltas.insert().values(
        [
            {c.name: bindparam(f"h{c.name}_{i}", type_=c.type) for c in hot_deltas.c}
            for i in range(n)
        ]
    )


@functools.cache
def write_entries(entry_count: int, hot_count: int, balance_count: int = 0):
    """Everything a posting writes after its header, in one statement (one
    round trip): the balance UPDATE, with the entries' and the hot deltas'
    INSERTs riding along as CTEs. Any of the three may be absent (a void
    writes no entries; a posting among hot accounts updates no row)."""
    parts = []
    if entry_count:
        parts.append(insert_entries(entry_count))
    if hot_count:
        parts.append(insert_hot_deltas(hot_count))
    if balance_count:
        parts.append(add_to_balances(balance_count))
    main, *riders = reversed(parts)
    for i, rider in enumerate(riders):
        main = main.add_cte(rider.cte(f"w{i}"))
    return main


ENQUEUE_EXPIRY = pending_expiry.insert()
DEQUEUE_EXPIRY = pending_expiry.delete().where(
    pending_expiry.c.transaction_id == bindparam("resolves")
)
