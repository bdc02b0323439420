"""The ledger's use cases: what a caller can ask of it, and in which order the
rules are applied. Storage is reached only through `ledger.engine.ports`."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime

from ledger.engine import errors, rules
from ledger.engine.model import (
    Account,
    Balance,
    IdempotencyKey,
    Leg,
    NewAccount,
    NewEntry,
    NewTransaction,
    Page,
    PostingResult,
    ReversalRequest,
    StoredPosting,
    Transaction,
    TransactionHeader,
    VerifyReport,
)
from ledger.engine.ports import PostingUnit, Store


def encode_cursor(last_key: str) -> str:
    return base64.urlsafe_b64encode(last_key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    """Raises InvalidCursor when the cursor is not one `encode_cursor` made."""
    if cursor is None or cursor == "":
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        decoded = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise errors.InvalidCursor(f"cursor {cursor!r} is not valid", cursor=cursor) from exc
    if not decoded:
        raise errors.InvalidCursor(f"cursor {cursor!r} is not valid", cursor=cursor)
    return decoded


class Ledger:
    def __init__(
        self,
        store: Store,
        limits: rules.Limits,
        *,
        max_page_size: int = 500,
        max_idempotency_key_chars: int = 255,
    ) -> None:
        self.store = store
        self.limits = limits
        self.max_page_size = max_page_size
        self.max_idempotency_key_chars = max_idempotency_key_chars

    # --- accounts ----------------------------------------------------------------

    async def create_account(self, cmd: NewAccount) -> tuple[Account, bool]:
        """Create an account; returns it and whether it was created now.

        Creating an account whose id exists with identical attributes returns
        the existing one (created=False), so a client may retry safely.
        Raises InvalidAccount, InvalidValue, AccountExists.
        """
        rules.check_new_account(cmd, self.limits)
        account_id = cmd.id if cmd.id is not None else str(uuid.uuid4())
        created = await self.store.insert_account(account_id, cmd)
        if created is not None:
            return created, True
        existing = await self.store.get_account(account_id)
        if existing is not None and _same_account(existing, cmd):
            return existing, False
        raise errors.AccountExists(
            f"account {account_id!r} already exists with other attributes",
            account_id=account_id,
        )

    async def get_account(self, account_id: str) -> Account:
        """Raises AccountNotFound."""
        account = await self.store.get_account(account_id)
        if account is None:
            raise errors.AccountNotFound(f"no account {account_id!r}", account_id=account_id)
        return account

    async def list_accounts(self, cursor: str | None, limit: int) -> Page:
        """Accounts in id order. Raises InvalidCursor, InvalidValue."""
        limit = self._page_size(limit)
        items = await self.store.list_accounts(decode_cursor(cursor), limit + 1)
        return _page(items, limit, lambda a: a.id)

    # --- postings ----------------------------------------------------------------

    async def post_transaction(self, cmd: NewTransaction, key: IdempotencyKey) -> PostingResult:
        """Post a balanced transaction exactly once per idempotency key.

        Raises TooFewLegs, TooManyLegs, InvalidAmount, InvalidValue,
        UnknownAccount, CurrencyMismatch, UnbalancedTransaction,
        LimitExceeded, BalanceOverflow, IdempotencyKeyReused,
        MissingIdempotencyKey, RetriesExhausted, OutcomeUnknown.
        """
        self._check_key(key)
        rules.check_transaction_shape(cmd, self.limits)
        fingerprint = rules.fingerprint("post", cmd)

        async def work(unit: PostingUnit) -> PostingResult:
            # On a first attempt the header insert is the key check (a used
            # key fails it and the retry lands below), which saves a lookup on
            # every new posting. Later attempts look the key up first.
            if not unit.first_attempt:
                stored = await unit.find_by_key(key)
                if stored is not None:
                    return _replay(stored, fingerprint, key, unit.after_ambiguous)
            transaction = await _append(
                unit,
                cmd.entries,
                TransactionHeader(
                    client_id=key.client_id,
                    idempotency_key=key.key,
                    fingerprint=fingerprint,
                    description=cmd.description,
                    metadata=cmd.metadata,
                ),
            )
            return PostingResult(transaction, replayed=False)

        return await self.store.run(work)

    async def reverse_transaction(
        self, transaction_id: str, cmd: ReversalRequest, key: IdempotencyKey
    ) -> PostingResult:
        """Append a transaction with every leg of the original swapped.

        The original is never changed. The reversal is subject to the same
        limit checks as any posting: it cannot overdraw a limited account.
        Raises TransactionNotFound, AlreadyReversed, LimitExceeded,
        IdempotencyKeyReused, MissingIdempotencyKey, RetriesExhausted,
        OutcomeUnknown.
        """
        self._check_key(key)
        rules.check_metadata(cmd.metadata, cmd.description, self.limits)
        fingerprint = rules.fingerprint(f"reverse:{transaction_id}", cmd)

        async def work(unit: PostingUnit) -> PostingResult:
            stored = await unit.find_by_key(key)
            if stored is not None:
                return _replay(stored, fingerprint, key, unit.after_ambiguous)
            original = await unit.get_transaction(transaction_id)
            if original is None:
                raise errors.TransactionNotFound(
                    f"no transaction {transaction_id!r}", transaction_id=transaction_id
                )
            if original.reversed_by is not None:
                raise errors.AlreadyReversed(
                    f"transaction {transaction_id!r} was already reversed by "
                    f"{original.reversed_by!r}",
                    transaction_id=transaction_id,
                    reversed_by=original.reversed_by,
                )
            legs = rules.reversed_legs(
                Leg(e.account_id, e.direction, e.amount) for e in original.entries
            )
            description = cmd.description
            if description is None:
                description = f"reversal of {transaction_id}"
            transaction = await _append(
                unit,
                legs,
                TransactionHeader(
                    client_id=key.client_id,
                    idempotency_key=key.key,
                    fingerprint=fingerprint,
                    description=description,
                    metadata=cmd.metadata,
                    reverses=transaction_id,
                ),
            )
            return PostingResult(transaction, replayed=False)

        return await self.store.run(work)

    async def get_transaction(self, transaction_id: str, *, stale: bool = False) -> Transaction:
        """Raises TransactionNotFound. `stale` allows a slightly old snapshot."""
        transaction = await self.store.get_transaction(transaction_id, stale=stale)
        if transaction is None:
            raise errors.TransactionNotFound(
                f"no transaction {transaction_id!r}", transaction_id=transaction_id
            )
        return transaction

    # --- balances and history -----------------------------------------------------

    async def balance(
        self, account_id: str, as_of: datetime | None = None, *, stale: bool = False
    ) -> Balance:
        """The account's posted totals now (from the cached row) or as of a
        time (summed from the journal). `stale` allows a slightly old snapshot,
        for display only: no rule of the ledger reads balances this way.
        Raises AccountNotFound."""
        if as_of is None:
            found = await self.store.cached_totals(account_id, stale=stale)
            if found is None:
                raise errors.AccountNotFound(f"no account {account_id!r}", account_id=account_id)
            account, debits, credits, read_at = found
        else:
            found_at = await self.store.journal_totals(account_id, as_of)
            if found_at is None:
                raise errors.AccountNotFound(f"no account {account_id!r}", account_id=account_id)
            account, debits, credits = found_at
            read_at = as_of
        return Balance(
            account_id=account.id,
            currency=account.currency,
            scale=account.scale,
            normal_side=account.normal_side,
            as_of=read_at,
            posted=rules.totals(account.normal_side, debits, credits),
        )

    async def account_entries(
        self, account_id: str, cursor: str | None, limit: int, *, stale: bool = False
    ) -> Page:
        """The account's entries, oldest first. Raises AccountNotFound,
        InvalidCursor, InvalidValue."""
        limit = self._page_size(limit)
        after = decode_cursor(cursor)
        await self.get_account(account_id)
        items = await self.store.account_entries(account_id, after, limit + 1, stale=stale)
        return _page(items, limit, lambda e: e.entry_id)

    async def ready(self) -> bool:
        """Whether the database answers."""
        return await self.store.ping()

    async def verify(self) -> VerifyReport:
        return rules.judge(await self.store.journal_facts())

    # --- helpers -----------------------------------------------------------------

    def _check_key(self, key: IdempotencyKey) -> None:
        if not key.key:
            raise errors.MissingIdempotencyKey(
                "send an Idempotency-Key header: a unique string per posting, reused only "
                "to retry that same posting"
            )
        if len(key.key) > self.max_idempotency_key_chars or not key.key.isprintable():
            raise errors.InvalidValue(
                f"Idempotency-Key must be 1 to {self.max_idempotency_key_chars} printable "
                "characters",
                field="Idempotency-Key",
            )

    def _page_size(self, limit: int) -> int:
        if not 1 <= limit <= self.max_page_size:
            raise errors.InvalidValue(
                f"limit must be between 1 and {self.max_page_size}", field="limit", value=limit
            )
        return limit


async def _append(unit: PostingUnit, legs: list[Leg], header: TransactionHeader) -> Transaction:
    """Write the header, then lock, check and write the legs, inside `unit`.

    The header goes first so that a used idempotency key is found before any
    rule is judged: a replay must return the original even when, say, the
    limit it once fitted under is now used up.
    """
    ref = await unit.insert_header(header)
    states = await unit.lock_accounts(sorted({leg.account_id for leg in legs}))
    currencies = rules.check_accounts(legs, states)
    rules.check_balanced(legs, currencies)
    deltas = rules.balance_deltas(legs)
    rules.check_limits(states, deltas)
    entries = [
        NewEntry(leg.account_id, i, leg.direction, leg.amount, currency)
        for i, (leg, currency) in enumerate(zip(legs, currencies, strict=True))
    ]
    return await unit.append_entries(ref, header, entries, deltas)


def _replay(
    stored: StoredPosting, fingerprint: str, key: IdempotencyKey, after_ambiguous: bool
) -> PostingResult:
    if stored.fingerprint != fingerprint:
        raise errors.IdempotencyKeyReused(
            f"Idempotency-Key {key.key!r} was already used for a different request "
            f"(transaction {stored.transaction.id}); use a new key for a new posting",
            idempotency_key=key.key,
            transaction_id=stored.transaction.id,
        )
    # After an ambiguous commit the stored posting is, as far as the client can
    # tell, the one this very request wrote: answer as the first answer.
    return PostingResult(stored.transaction, replayed=not after_ambiguous)


def _same_account(existing: Account, cmd: NewAccount) -> bool:
    return (
        existing.currency == cmd.currency
        and existing.scale == cmd.scale
        and existing.normal_side == cmd.normal_side
        and existing.flags == cmd.flags
        and existing.metadata == cmd.metadata
    )


def _page(items: list, limit: int, key) -> Page:
    if len(items) > limit:
        items = items[:limit]
        return Page(items=items, next_cursor=encode_cursor(key(items[-1])))
    return Page(items=items, next_cursor=None)
