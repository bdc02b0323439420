"""The accounts port: accounts, their currencies, changes, balances and
history, and the hot accounts' compaction."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

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
from ledger.engine.ports.audit import AuditStore


class AccountStore(AuditStore, Protocol):
    """Accounts and what is read of them."""

    async def insert_account(
        self, account_id: str, cmd: NewAccount, audit: AuditRecord
    ) -> Account | None:
        """Insert the account, its zero balance row and `audit`, and its
        currency with the account's scale if it is the currency's first;
        None (and nothing written) if the id is taken. Raises
        CurrencyScaleMismatch when the currency got another scale meanwhile."""
        ...

    async def get_account(self, account_id: str) -> Account | None: ...

    async def currency_scale(self, code: str) -> int | None:
        """The scale the ledger holds for currency `code`; None before its
        first account."""
        ...

    async def currencies(self) -> list[CurrencyScale]:
        """Every currency in use with its scale, by code."""
        ...

    async def change_account(
        self,
        account_id: str,
        plan: Callable[[AccountState], list[FieldChange]],
        audit: AuditRecord,
    ) -> tuple[Account, bool] | None:
        """In one transaction: lock the account's balance row, read the
        account with its current totals, ask `plan` what changes (it may
        raise a refusal, and then nothing is written), write those fields
        (a change of `hot` opens or closes its snapshots), record each in
        `account_changes` with `audit.actor.reason`, and write `audit` (its
        outcome "unchanged" when nothing changed). Returns the account and
        whether it changed, or None if there is no such account."""
        ...

    async def hot_accounts_due(self, min_deltas: int, max_age: timedelta, limit: int) -> list[str]:
        """Hot accounts with at least `min_deltas` unfolded deltas, or one
        older than `max_age`."""
        ...

    async def compact_hot(self, account_id: str, grace: timedelta) -> int:
        """Fold the account's deltas created before now - `grace` into a new
        snapshot; returns how many. Safe to run in many processes at once."""
        ...

    async def account_changes(
        self, account_id: str, after: str | None, limit: int
    ) -> list[AccountChange]: ...

    async def list_accounts(
        self, after: str | None, limit: int, prefixes: tuple[str, ...] | None = None
    ) -> list[Account]:
        """Accounts in id order after `after`; only those whose id starts
        with one of `prefixes` when given."""
        ...

    # `stale=True` allows a slightly old snapshot (a follower read on
    # CockroachDB) for reads that feed no decision.

    async def cached_totals(
        self, account_id: str, *, stale: bool = False
    ) -> tuple[AccountState, datetime] | None:
        """The account with its cached totals, and the time read."""
        ...

    async def journal_totals(self, account_id: str, as_of: datetime) -> AccountState | None:
        """The account with its totals as of `as_of`, summed from the journal:
        posted entries created by then, and pending entries created by then
        whose transaction was not yet resolved then."""
        ...

    async def account_entries(
        self, account_id: str, after: str | None, limit: int, *, stale: bool = False
    ) -> list[AccountEntry]: ...

    async def now(self) -> datetime:
        """The database's current time."""
        ...
