"""The ledger's use cases for accounts: create, change, read, list, and
the compaction of hot accounts' deltas. `ledger.engine.ledger.Ledger`
offers them beside the postings."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

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
from ledger.engine.model import Account, AccountPatch, IdempotencyKey, NewAccount, Page
from ledger.engine.ports import AccountStore


class AccountCases:
    store: AccountStore
    limits: Limits

    async def create_account(
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

    async def update_account(
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
        await self.get_account(account_id, actor)
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

    async def account_changes(
        self, account_id: str, cursor: str | None, limit: int | None = None, actor: Actor = DIRECT
    ) -> Page:
        """Recorded changes of the account's attributes, oldest first.
        Raises AccountNotFound, InvalidCursor, InvalidValue, AccountOutOfReach."""
        limit = self._page_size(limit)
        after = paging.decode_cursor(cursor)
        await self.get_account(account_id, actor)
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

    async def list_currencies(self) -> Page:
        """The currencies in use, with their one scale each, by code."""
        return Page(items=await self.store.currencies(), next_cursor=None)

    async def get_account(self, account_id: str, actor: Actor = DIRECT) -> Account:
        """Raises AccountOutOfReach, AccountNotFound."""
        access.check_reach(actor, [account_id])
        if not account_rules.known_account_id(account_id):
            raise errors.AccountNotFound(f"no account {account_id!r}", account_id=account_id)
        account = await self.store.get_account(account_id)
        if account is None:
            raise errors.AccountNotFound(f"no account {account_id!r}", account_id=account_id)
        return account

    async def list_accounts(
        self, cursor: str | None, limit: int | None = None, actor: Actor = DIRECT
    ) -> Page:
        """Accounts in id order (those the actor's key reaches). Raises
        InvalidCursor, InvalidValue."""
        limit = self._page_size(limit)
        items = await self.store.list_accounts(
            paging.decode_cursor(cursor), limit + 1, actor.accounts
        )
        return paging.page(items, limit, lambda a: a.id)

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
