"""Changing an account in place: lock it, let the engine judge the patch
against its current totals, write the fields that change, record each."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.engine.model import Account, AccountState, FieldChange
from ledger.storage.queries import accounts as accounts_q
from ledger.storage.queries import balances, hot
from ledger.storage.tables import accounts

# The fields the engine may change, each an `accounts` column of the same
# name; `hot` is the balance row's and has its own procedure.
COLUMNS = frozenset(
    {"status", "metadata", "debits_must_not_exceed_credits", "credits_must_not_exceed_debits"}
)


async def change(
    conn: AsyncConnection,
    account_id: str,
    plan: Callable[[AccountState], list[FieldChange]],
    reason: str | None,
) -> tuple[Account, list[FieldChange]] | None:
    """None if there is no such account. The balance row is locked first:
    a posting to an ordinary account locks it too, so it commits before
    the change or sees it; one to a hot account reads the row, and
    SERIALIZABLE orders the two."""
    if await hot.lock_balance_row(conn, account_id) is None:
        return None
    found = await balances.cached(conn, account_id)
    assert found is not None  # its balance row was just locked
    changes = plan(found[0])
    for c in changes:
        if c.field == "hot":
            await hot.set_hot(conn, account_id, c.new_value)
    columns = {c.field: c.new_value for c in changes if c.field != "hot"}
    assert columns.keys() <= COLUMNS, f"the engine asked to change {sorted(columns)}"
    if columns:
        await conn.execute(update(accounts).where(accounts.c.id == account_id).values(**columns))
    await accounts_q.record_changes(conn, account_id, changes, reason)
    account = await accounts_q.get(conn, account_id)
    assert account is not None
    return account, changes
