"""The ports of posting: one database transaction of a posting (or a
batch of them), and the store that runs such units."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Protocol, TypeVar

from ledger.engine.batch_model import BatchWrite, StoredBatch
from ledger.engine.model import (
    AccountState,
    BalanceDelta,
    HeaderRef,
    IdempotencyKey,
    NewEntry,
    StoredPosting,
    Transaction,
    TransactionHeader,
)
from ledger.engine.ports.audit import AuditStore

T = TypeVar("T")


class PostingUnit(Protocol):
    """One database transaction of a posting. Everything done through it
    commits together or not at all."""

    def wrote_earlier(self, transaction_id: str) -> bool:
        """An earlier attempt of this same unit wrote this transaction and
        its commit was ambiguous: found now, it is our own write, not a
        replay of someone else's."""
        ...

    async def find_by_key(self, key: IdempotencyKey) -> StoredPosting | None: ...

    async def get_transaction(self, transaction_id: str) -> Transaction | None: ...

    async def now(self) -> datetime:
        """The database's time for this transaction (expiry is judged by it,
        never by a service's clock)."""
        ...

    @property
    def first_attempt(self) -> bool:
        """True on the first attempt of a unit: no earlier attempt can have
        written anything under this idempotency key."""
        ...

    async def open_posting(
        self, header: TransactionHeader, account_ids: Sequence[str]
    ) -> tuple[HeaderRef, dict[str, AccountState]]:
        """Insert the transaction row, and read the accounts with their cached
        totals, locking the balance rows of the ordinary ones in account-id
        order (a hot account's is read, not locked). One round trip. Missing
        accounts are absent from the result.

        The header's key doubles as the idempotency check: a key already in
        use makes the whole unit retry (and the retry looks the key up).
        Raises AlreadyReversed or AlreadyResolved when `header.reverses` or
        `header.resolves` was acted on by a transaction committed meanwhile."""
        ...

    async def append_entries(
        self,
        ref: HeaderRef,
        header: TransactionHeader,
        entries: Sequence[NewEntry],
        deltas: Sequence[BalanceDelta],
        hot: Sequence[BalanceDelta] = (),
    ) -> Transaction:
        """Insert the entries, add `deltas` to the (locked) balance rows of
        ordinary accounts, and append `hot` as deltas of hot accounts, whose
        rows are neither locked nor updated. Raises BalanceOverflow."""
        ...

    # --- a batch of postings (`ledger.engine.batch`) ---

    async def lock_accounts(
        self, account_ids: Sequence[str]
    ) -> tuple[datetime, dict[str, AccountState]]:
        """The transaction's time, and the accounts with their cached totals,
        the balance rows of the ordinary ones locked in id order (a hot
        account's is read, not locked). One statement whatever the number."""
        ...

    async def find_by_keys(self, keys: Sequence[IdempotencyKey]) -> dict[str, StoredPosting]:
        """The stored postings of those keys that were used, by key."""
        ...

    async def find_batch(self, key: IdempotencyKey) -> StoredBatch | None: ...

    async def load_transactions(self, transaction_ids: Sequence[str]) -> list[Transaction]:
        """The transactions, in the order asked, with their journal places."""
        ...

    async def write_batch(self, write: BatchWrite) -> list[Transaction]:
        """Write everything `write` holds; the new transactions, in the order
        of `write.postings`. An item key (or the batch's) taken meanwhile
        makes the whole unit retry. Raises BalanceOverflow."""
        ...


class PostingStore(AuditStore, Protocol):
    """Runs posting units; reads a transaction; finds what is due to expire."""

    async def run(self, work: Callable[[PostingUnit], Awaitable[T]]) -> T:
        """Run `work` in one SERIALIZABLE database transaction, retrying the
        whole of it on conflicts. Raises RetriesExhausted or OutcomeUnknown
        when it cannot get an answer."""
        ...

    # `stale=True` allows a slightly old snapshot (a follower read on
    # CockroachDB) for reads that feed no decision.
    async def get_transaction(
        self, transaction_id: str, *, stale: bool = False
    ) -> Transaction | None: ...

    async def due_for_expiry(self, limit: int) -> list[str]:
        """Ids of pending transactions whose timeout has passed and that are
        not resolved, oldest deadline first."""
        ...

    async def now(self) -> datetime:
        """The database's current time."""
        ...
