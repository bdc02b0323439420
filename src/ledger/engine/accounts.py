"""The accounts' use cases: create, change, read, list; their balances
and history; and the compaction of hot accounts' deltas."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta

import msgspec

from ledger.engine import (
    access,
    account_changes,
    account_rules,
    audit,
    currencies,
    errors,
    paging,
    rules,
)
from ledger.engine.access import DIRECT, Actor
from ledger.engine.audit import AuditRecord
from ledger.engine.limits import Limits
from ledger.engine.model import (
    Account,
    AccountPatch,
    Balance,
    IdempotencyKey,
    NewAccount,
    Page,
    PendingTotals,
)
from ledger.engine.ports import AccountStore


class Accounts:
    def __init__(self, store: AccountStore, limits: Limits) -> None:
        self.store = store
        self.limits = limits

    async def create(
        self, cmd: NewAccount, actor: Actor = DIRECT, key: IdempotencyKey | None = None
    ) -> tuple[Account, bool]:
        """Create an account; returns it and whether it was created now.

        Creating an account whose id exists with identical attributes returns
        the existing one (created=False), so a client may retry safely. An
        account without an id needs an idempotency key, and gets an id
        derived from it: a retry under the key finds the account the first
        attempt made instead of making a second one.
        The scale is the currency's (see `ledger.engine.currencies`).
        Raises InvalidAccount, InvalidValue, AccountExists, AccountOutOfReach,
        CurrencyScaleMismatch, MissingIdempotencyKey, IdempotencyKeyReused.
        """
        account_rules.check_new_account(cmd, self.limits)
        if cmd.id is None and actor.accounts is not None:
            raise errors.AccountOutOfReach(
                "this API key is limited to account-id prefixes: give the new account an id "
                "that starts with one of them",
                account_id=None,
            )
        if cmd.id is not None:
            account_id = cmd.id
        elif key is None:
            raise errors.MissingIdempotencyKey(
                "an account without an id needs an idempotency key, so that a retry finds the "
                "account the first attempt made; or give the account an id"
            )
        else:
            rules.check_idempotency_key(key, self.limits)
            account_id = _derived_id(key)
        access.check_reach(actor, [account_id])
        in_ledger = await self.store.currency_scale(cmd.currency)
        scale = currencies.account_scale(cmd.currency, cmd.scale, in_ledger)
        cmd = msgspec.structs.replace(cmd, scale=scale)
        record = AuditRecord(
            actor=actor,
            action=audit.ACCOUNT_CREATE,
            outcome="created",
            target=account_id,
            fingerprint=rules.fingerprint("account", cmd),
            reach=(account_id,),
        )
        created = await self.store.insert_account(account_id, cmd, record)
        if created is not None:
            return created, True
        existing = await self.store.get_account(account_id)
        if existing is not None and _same_account(existing, cmd):
            await self.store.insert_audit(msgspec.structs.replace(record, outcome="replayed"))
            return existing, False
        if cmd.id is None:
            raise errors.IdempotencyKeyReused(
                f"idempotency key {key.key!r} was already used to create account "
                f"{account_id!r} with other attributes; use a new key for a new account",
                idempotency_key=key.key,
                account_id=account_id,
            )
        raise errors.AccountExists(
            f"account {account_id!r} already exists with other attributes",
            account_id=account_id,
        )

    async def update(
        self, account_id: str, patch: AccountPatch, actor: Actor = DIRECT
    ) -> tuple[Account, bool]:
        """Change what may change about an account (see
        `ledger.engine.account_changes`); returns it and whether anything
        changed. Each changed field is recorded (`/changes`) with the
        actor's reason; asking for what already is changes nothing, and its
        audit row says "unchanged".

        Raises AccountNotFound, AccountOutOfReach, NothingToChange, and what
        `account_changes.plan` raises.
        """
        account_changes.check_patch(patch, self.limits)
        await self.get(account_id, actor)
        record = AuditRecord(
            actor=actor,
            action=audit.ACCOUNT_UPDATE,
            outcome="updated",
            target=account_id,
            fingerprint=rules.fingerprint("account-update", patch),
            reach=(account_id,),
        )
        found = await self.store.change_account(
            account_id, lambda state: account_changes.plan(state, patch, self.limits), record
        )
        if found is None:
            raise errors.AccountNotFound(f"no account {account_id!r}", account_id=account_id)
        return found

    async def changes(
        self, account_id: str, cursor: str | None, limit: int | None = None, actor: Actor = DIRECT
    ) -> Page:
        """Recorded changes of the account's attributes, oldest first.
        Raises AccountNotFound, InvalidCursor, InvalidValue, AccountOutOfReach."""
        limit = self._page_size(limit)
        after = paging.decode_cursor(cursor)
        await self.get(account_id, actor)
        items = await self.store.account_changes(account_id, after, limit + 1)
        return paging.page(items, limit, lambda c: c.change_id)

    async def compact_hot(
        self, *, min_deltas: int, max_age_seconds: float, grace_seconds: float, batch: int
    ) -> int:
        """Fold the deltas of every hot account that has `min_deltas` of them,
        or one older than `max_age_seconds`, into a new snapshot; returns how
        many deltas were folded. Safe in many processes at once."""
        folded = 0
        grace = timedelta(seconds=grace_seconds)
        due = await self.store.hot_accounts_due(
            min_deltas, timedelta(seconds=max(max_age_seconds, grace_seconds)), batch
        )
        random.shuffle(due)  # compactors in other processes collide less
        for account_id in due:
            folded += await self.store.compact_hot(account_id, grace)
        return folded

    async def currencies(self) -> Page:
        """The currencies in use, with their one scale each, by code."""
        return Page(items=await self.store.currencies(), next_cursor=None)

    async def get(self, account_id: str, actor: Actor = DIRECT) -> Account:
        """Raises AccountOutOfReach, AccountNotFound."""
        access.check_reach(actor, [account_id])
        if not account_rules.known_account_id(account_id):
            raise errors.AccountNotFound(f"no account {account_id!r}", account_id=account_id)
        account = await self.store.get_account(account_id)
        if account is None:
            raise errors.AccountNotFound(f"no account {account_id!r}", account_id=account_id)
        return account

    async def page(
        self, cursor: str | None, limit: int | None = None, actor: Actor = DIRECT
    ) -> Page:
        """Accounts in id order (those the actor's key reaches). Raises
        InvalidCursor, InvalidValue."""
        limit = self._page_size(limit)
        items = await self.store.list_accounts(
            paging.decode_cursor(cursor), limit + 1, actor.accounts
        )
        return paging.page(items, limit, lambda a: a.id)

    async def balance(
        self,
        account_id: str,
        as_of: datetime | None = None,
        *,
        stale: bool = False,
        actor: Actor = DIRECT,
    ) -> Balance:
        """The account's posted, pending and available balances now (from the
        cached row) or as of a time (summed from the journal). `stale` allows
        a slightly old snapshot, for display only: no rule of the ledger reads
        balances this way. Raises AccountNotFound, AccountOutOfReach."""
        access.check_reach(actor, [account_id])
        if not account_rules.known_account_id(account_id):
            raise errors.AccountNotFound(f"no account {account_id!r}", account_id=account_id)
        if as_of is None:
            found = await self.store.cached_totals(account_id, stale=stale)
            if found is None:
                raise errors.AccountNotFound(f"no account {account_id!r}", account_id=account_id)
            state, read_at = found
        else:
            now = await self.store.now()
            if as_of > now:
                raise errors.InvalidValue(
                    f"as_of {as_of.isoformat()} is after the database's current time "
                    f"{now.isoformat()}: no balance is known there yet",
                    field="as_of",
                )
            state = await self.store.journal_totals(account_id, as_of)
            if state is None:
                raise errors.AccountNotFound(f"no account {account_id!r}", account_id=account_id)
            read_at = as_of
        account = state.account
        posted = rules.totals(account.normal_side, state.posted_debits, state.posted_credits)
        pending = PendingTotals(state.pending_debits, state.pending_credits)
        return Balance(
            account_id=account.id,
            currency=account.currency,
            scale=account.scale,
            normal_side=account.normal_side,
            as_of=read_at,
            posted=posted,
            pending=pending,
            available=rules.available(account.normal_side, posted, pending),
        )

    async def entries(
        self,
        account_id: str,
        cursor: str | None,
        limit: int | None = None,
        *,
        stale: bool = False,
        actor: Actor = DIRECT,
    ) -> Page:
        """The account's entries, oldest first. Raises AccountNotFound,
        InvalidCursor, InvalidValue, AccountOutOfReach."""
        limit = self._page_size(limit)
        after = paging.decode_cursor(cursor)
        await self.get(account_id, actor)
        items = await self.store.account_entries(account_id, after, limit + 1, stale=stale)
        return paging.page(items, limit, lambda e: e.entry_id)

    def _page_size(self, limit: int | None) -> int:
        return paging.page_size(limit, self.limits.default_page_size, self.limits.max_page_size)


# Ids made from idempotency keys: one per (client, key), the same on every
# retry; two clients using the same key get two accounts.
_KEYED_IDS = uuid.UUID("7b1c3e52-0d7f-4f5e-9a43-0c6a52a1e9d1")


def _derived_id(key: IdempotencyKey) -> str:
    return str(uuid.uuid5(_KEYED_IDS, f"{key.client_id}\0{key.key}"))


def _same_account(existing: Account, cmd: NewAccount) -> bool:
    # `hot` is left out: it may have been changed since (PATCH), and a
    # retried creation must neither fail for that nor undo it.
    return (
        existing.currency == cmd.currency
        and existing.scale == cmd.scale
        and existing.normal_side == cmd.normal_side
        and existing.flags == cmd.flags
        and existing.metadata == cmd.metadata
    )
