"""Accounts: creating, reading, listing, and their recorded changes."""

from __future__ import annotations

import msgspec
from sqlalchemy import or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.engine.model import Account, AccountChange, FieldChange, NewAccount
from ledger.storage import ids, rows
from ledger.storage.fragments import ACCOUNT_COLUMNS, ACCOUNTS_WITH_HOT
from ledger.storage.queries import currencies
from ledger.storage.queries.hot import OPEN_SNAPSHOT
from ledger.storage.tables import account_balances, account_changes, accounts


async def insert(conn: AsyncConnection, account_id: str, cmd: NewAccount) -> Account | None:
    """The account with its zero balance row (and an opening snapshot when
    it is hot); None if the id is taken. Its currency is recorded with
    its scale first, if it is the currency's first account."""
    await currencies.adopt(conn, cmd.currency, cmd.scale)
    row = (
        await conn.execute(
            pg_insert(accounts)
            .values(
                id=account_id,
                currency=cmd.currency,
                scale=cmd.scale,
                normal_side=cmd.normal_side,
                debits_must_not_exceed_credits=cmd.flags.debits_must_not_exceed_credits,
                credits_must_not_exceed_debits=cmd.flags.credits_must_not_exceed_debits,
                metadata=cmd.metadata,
            )
            .on_conflict_do_nothing(index_elements=[accounts.c.id])
            .returning(*ACCOUNT_COLUMNS)
        )
    ).first()
    if row is None:
        return None
    await conn.execute(
        account_balances.insert().values(
            account_id=account_id, posted_debits=0, posted_credits=0, hot=cmd.hot
        )
    )
    if cmd.hot:
        await conn.execute(OPEN_SNAPSHOT, {"account_id": account_id})
    return msgspec.structs.replace(rows.account(row), hot=cmd.hot)


async def get(conn: AsyncConnection, account_id: str) -> Account | None:
    row = (
        await conn.execute(
            select(*ACCOUNT_COLUMNS, account_balances.c.hot)
            .select_from(ACCOUNTS_WITH_HOT)
            .where(accounts.c.id == account_id)
        )
    ).first()
    return None if row is None else rows.account(row)


async def listing(
    conn: AsyncConnection, after: str | None, limit: int, prefixes: tuple[str, ...] | None = None
) -> list[Account]:
    query = (
        select(*ACCOUNT_COLUMNS, account_balances.c.hot)
        .select_from(ACCOUNTS_WITH_HOT)
        .order_by(accounts.c.id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(accounts.c.id > after)
    if prefixes is not None:
        query = query.where(or_(*(accounts.c.id.startswith(p, autoescape=True) for p in prefixes)))
    return [rows.account(row) for row in await conn.execute(query)]


async def record_changes(
    conn: AsyncConnection, account_id: str, changed: list[FieldChange], reason: str | None
) -> None:
    """One row per changed field, in one statement. Time-ordered ids are
    random within a millisecond: drawn together and sorted, they list one
    update's changes in the engine's order."""
    if not changed:
        return
    change_ids = sorted(ids.new_entry_id() for _ in changed)
    await conn.execute(
        account_changes.insert(),
        [
            {
                "account_id": account_id,
                "change_id": change_id,
                "field": c.field,
                "old_value": msgspec.json.encode(c.old_value).decode(),
                "new_value": msgspec.json.encode(c.new_value).decode(),
                "reason": reason,
            }
            for c, change_id in zip(changed, change_ids, strict=True)
        ],
    )


async def changes(
    conn: AsyncConnection, account_id: str, after: str | None, limit: int
) -> list[AccountChange]:
    after_id = rows.uuid_after(after, "this account's changes")
    query = (
        select(account_changes)
        .where(account_changes.c.account_id == account_id)
        .order_by(account_changes.c.change_id)
        .limit(limit)
    )
    if after_id is not None:
        query = query.where(account_changes.c.change_id > after_id)
    return [
        AccountChange(
            change_id=str(r.change_id),
            account_id=r.account_id,
            changed_at=r.changed_at,
            field=r.field,
            old_value=msgspec.json.decode(r.old_value),
            new_value=msgspec.json.decode(r.new_value),
            reason=r.reason,
        )
        for r in await conn.execute(query)
    ]
