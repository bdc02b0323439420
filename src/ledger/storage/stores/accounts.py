"""The accounts port over SQL: accounts, currencies, changes, balances,
history, and the hot accounts' compaction."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import msgspec
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.engine import errors
from ledger.engine.audit import AuditRecord
from ledger.engine.currencies import CurrencyScale
from ledger.engine.model import (
    Account,
    AccountChange,
    AccountEntry,
    AccountState,
    FieldChange,
    NewAccount,
)
from ledger.storage import failures
from ledger.storage.methods import StoreMethods
from ledger.storage.queries import (
    account_update,
    accounts,
    balances,
    currencies,
    history,
    hot,
)
from ledger.storage.retry import run_transaction
from ledger.storage.tables import CURRENCY_SCALE_CONSTRAINT


class AccountMethods(StoreMethods):
    async def insert_account(
        self, account_id: str, cmd: NewAccount, record: AuditRecord
    ) -> Account | None:
        try:
            return await self._write(
                lambda conn: accounts.insert(conn, account_id, cmd),
                lambda made: record if made else None,
            )
        except sa_exc.IntegrityError as exc:
            # Another account fixed the currency's scale between the
            # engine's check and this insert.
            if failures.constraint_name(exc) != CURRENCY_SCALE_CONSTRAINT:
                raise
            raise errors.CurrencyScaleMismatch(
                f"{cmd.currency} has another scale in this ledger than {cmd.scale}",
                currency=cmd.currency,
                asked=cmd.scale,
            ) from exc

    async def currency_scale(self, code: str) -> int | None:
        return await self._read(lambda conn: currencies.scale_of(conn, code))

    async def currencies(self) -> list[CurrencyScale]:
        return await self._read(currencies.listing)

    async def get_account(self, account_id: str) -> Account | None:
        return await self._read(lambda conn: accounts.get(conn, account_id))

    async def list_accounts(
        self, after: str | None, limit: int, prefixes: tuple[str, ...] | None = None
    ) -> list[Account]:
        return await self._read(lambda conn: accounts.listing(conn, after, limit, prefixes))

    async def account_changes(
        self, account_id: str, after: str | None, limit: int
    ) -> list[AccountChange]:
        return await self._read(lambda conn: accounts.changes(conn, account_id, after, limit))

    async def change_account(
        self,
        account_id: str,
        plan: Callable[[AccountState], list[FieldChange]],
        record: AuditRecord,
    ) -> tuple[Account, bool] | None:
        async def change(conn: AsyncConnection):
            return await account_update.change(conn, account_id, plan, record.actor.reason)

        def row(done) -> AuditRecord | None:
            if done is None:
                return None
            outcome = "updated" if done[1] else "unchanged"
            return msgspec.structs.replace(record, outcome=outcome)

        done = await self._write(change, row)
        return None if done is None else (done[0], bool(done[1]))

    async def hot_accounts_due(self, min_deltas: int, max_age: timedelta, limit: int) -> list[str]:
        return await self._read(lambda conn: hot.due(conn, min_deltas, max_age, limit))

    async def compact_hot(self, account_id: str, grace: timedelta) -> int:
        """Fold the account's deltas created before now - `grace` into a new
        snapshot (see `hot.fold`); 0 when another process folded them first."""
        try:
            return await run_transaction(
                self.engine,
                self.policy,
                lambda conn, attempt: hot.fold(conn, attempt, account_id, grace),
            )
        except hot.LostFold:
            return 0

    async def cached_totals(
        self, account_id: str, *, stale: bool = False
    ) -> tuple[AccountState, datetime] | None:
        return await self._read(lambda conn: balances.cached(conn, account_id), stale=stale)

    async def journal_totals(self, account_id: str, as_of: datetime) -> AccountState | None:
        return await self._read(lambda conn: balances.as_of(conn, account_id, as_of))

    async def account_entries(
        self, account_id: str, after: str | None, limit: int, *, stale: bool = False
    ) -> list[AccountEntry]:
        return await self._read(
            lambda conn: history.entries_of(conn, account_id, after, limit), stale=stale
        )
