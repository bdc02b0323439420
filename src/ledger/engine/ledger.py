"""The ledger's use cases: what a caller can ask of it, and in which order the
rules are applied. Storage is reached only through `ledger.engine.ports`; the
steps postings share are in `ledger.engine.posting`."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta

from ledger.engine import errors, paging, pending, rules
from ledger.engine.limits import Limits
from ledger.engine.model import (
    Account,
    AccountPatch,
    Balance,
    IdempotencyKey,
    Leg,
    NewAccount,
    NewTransaction,
    Page,
    PendingTotals,
    PostingResult,
    PostPendingRequest,
    ReversalRequest,
    Transaction,
    VerifyReport,
    VoidRequest,
)
from ledger.engine.ports import PostingUnit, Store
from ledger.engine.posting import header, replay, replay_or_target, write
from ledger.engine.verify import judge


class Ledger:
    def __init__(self, store: Store, limits: Limits) -> None:
        self.store = store
        self.limits = limits

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

    async def set_hot(self, account_id: str, patch: AccountPatch) -> tuple[Account, bool]:
        """Make the account hot or ordinary; returns it and whether it
        changed (asking for what already is changes and records nothing).

        Raises AccountNotFound, HotAccountLimited.
        """
        account = await self.get_account(account_id)
        rules.check_hot(account_id, account.flags, patch.hot)
        found = await self.store.set_hot(account_id, patch.hot)
        if found is None:
            raise errors.AccountNotFound(f"no account {account_id!r}", account_id=account_id)
        return found

    async def account_changes(
        self, account_id: str, cursor: str | None, limit: int | None = None
    ) -> Page:
        """Recorded changes of the account's attributes, oldest first.
        Raises AccountNotFound, InvalidCursor, InvalidValue."""
        limit = self._page_size(limit)
        after = paging.decode_cursor(cursor)
        await self.get_account(account_id)
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

    async def get_account(self, account_id: str) -> Account:
        """Raises AccountNotFound."""
        account = await self.store.get_account(account_id)
        if account is None:
            raise errors.AccountNotFound(f"no account {account_id!r}", account_id=account_id)
        return account

    async def list_accounts(self, cursor: str | None, limit: int | None = None) -> Page:
        """Accounts in id order. Raises InvalidCursor, InvalidValue."""
        limit = self._page_size(limit)
        items = await self.store.list_accounts(paging.decode_cursor(cursor), limit + 1)
        return paging.page(items, limit, lambda a: a.id)

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
                    return replay(stored, fingerprint, key, unit.after_ambiguous)
            transaction = await write(
                unit,
                header(
                    key,
                    fingerprint,
                    cmd.description,
                    cmd.metadata,
                    pending=cmd.pending,
                    timeout_seconds=cmd.timeout_seconds,
                ),
                cmd.entries,
                pending=cmd.pending,
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
            found = await replay_or_target(unit, key, fingerprint, transaction_id)
            if isinstance(found, PostingResult):
                return found
            original = found
            rules.check_reversible(original)
            legs = rules.reversed_legs(
                Leg(e.account_id, e.direction, e.amount) for e in original.entries
            )
            description = cmd.description
            if description is None:
                description = f"reversal of {transaction_id}"
            transaction = await write(
                unit,
                header(key, fingerprint, description, cmd.metadata, reverses=transaction_id),
                legs,
            )
            return PostingResult(transaction, replayed=False)

        return await self.store.run(work)

    # --- pending transactions -------------------------------------------------------

    async def post_pending(
        self, transaction_id: str, cmd: PostPendingRequest, key: IdempotencyKey
    ) -> PostingResult:
        """Post a pending transaction, in full or in part, releasing the rest.

        Raises TransactionNotFound, NotPending, AlreadyResolved, PendingExpired,
        InvalidResolution, LimitExceeded, IdempotencyKeyReused,
        MissingIdempotencyKey, RetriesExhausted, OutcomeUnknown.
        """
        self._check_key(key)
        rules.check_metadata(cmd.metadata, cmd.description, self.limits)
        return await self._resolve(
            transaction_id, "posted", cmd, key, rules.fingerprint(f"post:{transaction_id}", cmd)
        )

    async def void_pending(
        self, transaction_id: str, cmd: VoidRequest, key: IdempotencyKey
    ) -> PostingResult:
        """Release a pending transaction without posting anything.

        Raises TransactionNotFound, NotPending, AlreadyResolved, PendingExpired,
        IdempotencyKeyReused, MissingIdempotencyKey, RetriesExhausted,
        OutcomeUnknown.
        """
        self._check_key(key)
        rules.check_metadata(cmd.metadata, cmd.description, self.limits)
        return await self._resolve(
            transaction_id, "voided", cmd, key, rules.fingerprint(f"void:{transaction_id}", cmd)
        )

    async def expire_due(self, limit: int = 100) -> int:
        """Void every pending transaction whose timeout has passed; returns how
        many this call expired. Safe to run in many processes at once: each
        expiry is keyed by the pending transaction's id, and the database
        admits one resolution per pending transaction, so a racing sweeper or
        post finds the work done and moves on."""
        expired = 0
        due = await self.store.due_for_expiry(limit)
        # Sweepers in other processes see the same oldest rows; taking them
        # in a different order makes them collide less.
        random.shuffle(due)
        for transaction_id in due:
            key = IdempotencyKey("ledger-expiry", f"expire:{transaction_id}")
            try:
                result = await self._resolve(
                    transaction_id,
                    "expired",
                    VoidRequest(description="expired"),
                    key,
                    rules.fingerprint(f"expire:{transaction_id}", VoidRequest()),
                )
            except (errors.AlreadyResolved, errors.PendingExpired, errors.TransactionNotFound):
                continue
            if not result.replayed:
                expired += 1
        return expired

    async def _resolve(
        self,
        transaction_id: str,
        resolution: str,
        cmd: PostPendingRequest | VoidRequest,
        key: IdempotencyKey,
        fingerprint: str,
    ) -> PostingResult:
        async def work(unit: PostingUnit) -> PostingResult:
            # The key is looked up before the pending transaction's state is
            # judged: a retry of a post that succeeded must get that post
            # back, not "already resolved".
            found = await replay_or_target(unit, key, fingerprint, transaction_id)
            if isinstance(found, PostingResult):
                return found
            original = found
            pending.check_resolvable(original, resolution, await unit.now())
            held = [Leg(e.account_id, e.direction, e.amount) for e in original.entries]
            to_post: list[Leg] = []
            if isinstance(cmd, PostPendingRequest):
                to_post = rules.resolution_legs(held, [e.currency for e in original.entries], cmd)
            resolving = header(
                key,
                fingerprint,
                cmd.description,
                cmd.metadata,
                resolves=transaction_id,
                resolution=resolution,
            )
            transaction = await write(unit, resolving, to_post, release=held)
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
        """The account's posted, pending and available balances now (from the
        cached row) or as of a time (summed from the journal). `stale` allows
        a slightly old snapshot, for display only: no rule of the ledger reads
        balances this way. Raises AccountNotFound."""
        if as_of is None:
            found = await self.store.cached_totals(account_id, stale=stale)
            if found is None:
                raise errors.AccountNotFound(f"no account {account_id!r}", account_id=account_id)
            state, read_at = found
        else:
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

    async def account_entries(
        self, account_id: str, cursor: str | None, limit: int | None = None, *, stale: bool = False
    ) -> Page:
        """The account's entries, oldest first. Raises AccountNotFound,
        InvalidCursor, InvalidValue."""
        limit = self._page_size(limit)
        after = paging.decode_cursor(cursor)
        await self.get_account(account_id)
        items = await self.store.account_entries(account_id, after, limit + 1, stale=stale)
        return paging.page(items, limit, lambda e: e.entry_id)

    async def ready(self) -> bool:
        """Whether the database answers."""
        return await self.store.ping()

    async def verify(self) -> VerifyReport:
        return judge(await self.store.journal_facts())

    # --- helpers -----------------------------------------------------------------

    def _check_key(self, key: IdempotencyKey) -> None:
        if not key.key:
            raise errors.MissingIdempotencyKey(
                "a posting needs an idempotency key: a unique string per posting, reused "
                "only to retry that same posting"
            )
        if len(key.key) > self.limits.max_idempotency_key_chars or not key.key.isprintable():
            raise errors.InvalidValue(
                f"the idempotency key must be 1 to {self.limits.max_idempotency_key_chars} "
                "printable characters",
                field="idempotency_key",
            )

    def _page_size(self, limit: int | None) -> int:
        return paging.page_size(limit, self.limits.default_page_size, self.limits.max_page_size)


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
