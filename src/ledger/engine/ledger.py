"""The ledger's use cases: what a caller can ask of it, and in which order the
rules are applied. Storage is reached only through `ledger.engine.ports`."""

from __future__ import annotations

import base64
import binascii
import random
import uuid
from datetime import datetime, timedelta

from ledger.engine import errors, rules
from ledger.engine.model import (
    Account,
    AccountPatch,
    Balance,
    IdempotencyKey,
    Leg,
    NewAccount,
    NewEntry,
    NewTransaction,
    Page,
    PendingTotals,
    PostingResult,
    PostPendingRequest,
    ReversalRequest,
    StoredPosting,
    Transaction,
    TransactionHeader,
    VerifyReport,
    VoidRequest,
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

    async def account_changes(self, account_id: str, cursor: str | None, limit: int) -> Page:
        """Recorded changes of the account's attributes, oldest first.
        Raises AccountNotFound, InvalidCursor, InvalidValue."""
        limit = self._page_size(limit)
        after = decode_cursor(cursor)
        await self.get_account(account_id)
        items = await self.store.account_changes(account_id, after, limit + 1)
        return _page(items, limit, lambda c: c.change_id)

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
            transaction = await _write(
                unit,
                TransactionHeader(
                    client_id=key.client_id,
                    idempotency_key=key.key,
                    fingerprint=fingerprint,
                    description=cmd.description,
                    metadata=cmd.metadata,
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
            found = await _replay_or_target(unit, key, fingerprint, transaction_id)
            if isinstance(found, PostingResult):
                return found
            original = found
            if original.pending or original.resolution in ("voided", "expired"):
                raise errors.NotReversible(
                    f"transaction {transaction_id!r} is "
                    + (
                        "pending: void it instead"
                        if original.pending
                        else "a void, which moved no posted amount"
                    ),
                    transaction_id=transaction_id,
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
            transaction = await _write(
                unit,
                TransactionHeader(
                    client_id=key.client_id,
                    idempotency_key=key.key,
                    fingerprint=fingerprint,
                    description=description,
                    metadata=cmd.metadata,
                    reverses=transaction_id,
                ),
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
            found = await _replay_or_target(unit, key, fingerprint, transaction_id)
            if isinstance(found, PostingResult):
                return found
            original = found
            if not original.pending:
                raise errors.NotPending(
                    f"transaction {transaction_id!r} is not pending", transaction_id=transaction_id
                )
            if original.resolved_by is not None:
                raise errors.AlreadyResolved(
                    f"pending transaction {transaction_id!r} was already {original.state} "
                    f"by {original.resolved_by}",
                    transaction_id=transaction_id,
                    state=original.state,
                    resolved_by=original.resolved_by,
                )
            now = await unit.now()
            overdue = original.expires_at is not None and now >= original.expires_at
            if resolution == "expired" and not overdue:
                raise errors.AlreadyResolved(
                    f"pending transaction {transaction_id!r} is not due to expire yet",
                    transaction_id=transaction_id,
                )
            if resolution != "expired" and overdue:
                raise errors.PendingExpired(
                    f"pending transaction {transaction_id!r} expired at "
                    f"{original.expires_at.isoformat()}",
                    transaction_id=transaction_id,
                    expires_at=original.expires_at.isoformat(),
                )
            held = [Leg(e.account_id, e.direction, e.amount) for e in original.entries]
            to_post: list[Leg] = []
            if isinstance(cmd, PostPendingRequest):
                to_post = rules.resolution_legs(held, [e.currency for e in original.entries], cmd)
            header = TransactionHeader(
                client_id=key.client_id,
                idempotency_key=key.key,
                fingerprint=fingerprint,
                description=cmd.description,
                metadata=cmd.metadata,
                resolves=transaction_id,
                resolution=resolution,
            )
            transaction = await _write(unit, header, to_post, release=held)
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


async def _write(
    unit: PostingUnit,
    header: TransactionHeader,
    legs: list[Leg],
    *,
    pending: bool = False,
    release: list[Leg] | None = None,
) -> Transaction:
    """Write the header, then lock, check and write the legs, inside `unit`.

    `legs` are written as entries (pending ones when `pending`); `release`
    are the legs of a pending transaction being resolved, taken out of the
    pending totals. The header goes first so that a used idempotency key (or
    a resolution already made) is found before any rule is judged: a replay
    must return the original even when, say, the limit it once fitted under
    is now used up.
    """
    release = release or []
    ref, states = await unit.open_posting(
        header, sorted({leg.account_id for leg in [*legs, *release]})
    )
    currencies = rules.check_accounts(legs, states)
    rules.check_balanced(legs, currencies)
    deltas = rules.merge_deltas(
        rules.balance_deltas(legs, pending=pending), rules.release_deltas(release)
    )
    rules.check_limits(states, deltas)
    ordinary, hot = rules.split_hot(states, deltas)
    entries = [
        NewEntry(leg.account_id, i, leg.direction, leg.amount, currency, pending)
        for i, (leg, currency) in enumerate(zip(legs, currencies, strict=True))
    ]
    return await unit.append_entries(ref, header, entries, ordinary, hot)


async def _replay_or_target(
    unit: PostingUnit, key: IdempotencyKey, fingerprint: str, transaction_id: str
) -> PostingResult | Transaction:
    """For an action on an existing transaction: the stored answer if this
    key was used already, else the transaction acted on. Raises
    IdempotencyKeyReused, TransactionNotFound."""
    stored = await unit.find_by_key(key)
    if stored is not None:
        return _replay(stored, fingerprint, key, unit.after_ambiguous)
    target = await unit.get_transaction(transaction_id)
    if target is None:
        raise errors.TransactionNotFound(
            f"no transaction {transaction_id!r}", transaction_id=transaction_id
        )
    return target


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
    # `hot` is left out: it may have been changed since (PATCH), and a
    # retried creation must neither fail for that nor undo it.
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
