"""What the engine needs from storage, as Protocols. Storage implements them;
the engine never imports storage."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from ledger.engine.access import ApiKey, NewKey, StoredKey
from ledger.engine.audit import AuditEntry, AuditFilter, AuditRecord
from ledger.engine.batch_model import BatchWrite, StoredBatch
from ledger.engine.currencies import CurrencyScale
from ledger.engine.delivery import Progress
from ledger.engine.events import EventFilter, Position, SealedRecord
from ledger.engine.journal_check import JournalCheck, JournalReport
from ledger.engine.journal_model import Block, BlockDetail, JournalRecord
from ledger.engine.model import (
    Account,
    AccountChange,
    AccountEntry,
    AccountState,
    BalanceDelta,
    FieldChange,
    HeaderRef,
    IdempotencyKey,
    NewAccount,
    NewEntry,
    StoredPosting,
    Transaction,
    TransactionHeader,
)
from ledger.engine.reconcile.feed import StoredExceptionEvent
from ledger.engine.reconcile.ports import ReconciliationStore
from ledger.engine.reports import ReportStore
from ledger.engine.verify import AccountSums, JournalFacts
from ledger.engine.webhook_model import Delivery, NewWebhook, StoredWebhook, Webhook
from ledger.engine.webhooks import WebhookChange

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


BuildBlock = Callable[[Block | None, list[JournalRecord], datetime], Awaitable[BlockDetail]]


class JournalStore(Protocol):
    """The sealed journal's reads and its one write."""

    async def seal_block(self, max_transactions: int, build: BuildBlock) -> int:
        """Hand the transactions that may be sealed next (up to
        `max_transactions`, in commit order) to `build` with the newest
        block and the database's time, and append the block it makes,
        all or nothing. Returns how many were sealed: 0 when none was
        waiting, or another process appended that block first."""
        ...

    async def head_block(self) -> Block | None: ...

    async def block_detail(self, number: int) -> BlockDetail | None: ...

    async def blocks_after(self, number: int, limit: int) -> list[Block]: ...

    async def proof_material(
        self, transaction_id: str, max_blocks: int
    ) -> tuple[JournalRecord, BlockDetail | None, list[Block], bool] | None:
        """The transaction's record; its block with the block's sealed
        transactions (None while unsealed); up to `max_blocks` blocks after
        it, and whether those reach the head. None when no such transaction."""
        ...

    async def walk_journal(
        self, since_block: int, make_check: Callable[[Block | None], JournalCheck]
    ) -> JournalReport:
        """In one snapshot: feed every block from `since_block` on, with its
        rows, to a check made with the block before it, then finish it with
        what was left out."""
        ...


class EventStore(Protocol):
    """The sealed sequence read as events (`ledger.engine.events`)."""

    async def sealed_after(
        self, after: Position, scan_blocks: int, limit: int, where: EventFilter
    ) -> tuple[list[SealedRecord], Position]:
        """Up to `limit` sealed transactions after `after` that match
        `where`, in sequence order, looking at most `scan_blocks` blocks
        ahead; and the position the read reached (the last one returned
        when `limit` were found, else the end of the blocks looked at)."""
        ...

    async def exception_events_after(
        self, after: int, limit: int, account_id: str | None
    ) -> tuple[list[StoredExceptionEvent], int]:
        """Up to `limit` reconciliation events after number `after` (of the
        sources of `account_id`), in order; and the number the read
        reached (the last one returned when `limit` were found, else the
        stream's end)."""
        ...

    async def event_heads(self) -> Position:
        """Where both streams end: the last sealed (block, sequence) and
        the last reconciliation event's number (0 before the first)."""
        ...


class WebhookStore(Protocol):
    """Webhook endpoints, their leases and their delivery log
    (`ledger.engine.webhooks`, `ledger.engine.delivery`)."""

    async def now(self) -> datetime: ...

    async def insert_webhook(
        self,
        webhook_id: str,
        cmd: NewWebhook,
        secret: str,
        client_id: str,
        accounts: list[str] | None,
        key_id: str | None,
        audit: AuditRecord,
    ) -> StoredWebhook:
        """Insert the endpoint (owned by `key_id`) with its cursor at the
        journal's head, and its audit row, in one transaction."""
        ...

    async def get_webhook(self, webhook_id: str) -> StoredWebhook | None:
        """None for an unknown or deleted endpoint."""
        ...

    async def list_webhooks(self, after: str | None, limit: int) -> list[Webhook]: ...

    async def change_webhook(
        self, webhook_id: str, change: WebhookChange, audit: AuditRecord
    ) -> StoredWebhook | None:
        """Apply `change`, bump the generation and write the audit row, in
        one transaction; None (and nothing written) for an unknown or
        deleted endpoint."""
        ...

    async def webhook_deliveries(
        self, webhook_id: str, after: tuple[datetime, str] | None, limit: int
    ) -> list[Delivery]:
        """Attempts newest first, after (attempted_at, id) `after`."""
        ...

    async def claim_webhooks(
        self, owner: str, lease_seconds: float, limit: int, serving: list[str]
    ) -> list[StoredWebhook]:
        """Take the lease of up to `limit` active endpoints whose lease is
        free, expired or `owner`'s already (but those in `serving`)."""
        ...

    async def report_progress(
        self, owner: str, webhook_id: str, generation: int, progress: Progress, lease_seconds: float
    ) -> bool:
        """Write the progress and the attempts, and renew the lease, in one
        transaction, if `owner` still holds the lease of this generation of
        an active endpoint; whether it did."""
        ...

    async def release_webhook(self, owner: str, webhook_id: str) -> None: ...

    async def prune_deliveries(self, webhook_id: str, older_than: timedelta) -> int: ...


class Store(JournalStore, EventStore, WebhookStore, ReconciliationStore, ReportStore, Protocol):
    async def run(self, work: Callable[[PostingUnit], Awaitable[T]]) -> T:
        """Run `work` in one SERIALIZABLE database transaction, retrying the
        whole of it on conflicts. Raises RetriesExhausted or OutcomeUnknown
        when it cannot get an answer."""
        ...

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

    async def get_transaction(
        self, transaction_id: str, *, stale: bool = False
    ) -> Transaction | None: ...

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

    async def ping(self) -> bool:
        """True when the database answers a trivial query."""
        ...

    async def due_for_expiry(self, limit: int) -> list[str]:
        """Ids of pending transactions whose timeout has passed and that are
        not resolved, oldest deadline first."""
        ...

    async def account_sums(self, after: str | None, limit: int) -> dict[str, AccountSums]:
        """The `limit` accounts after `after`: cached and journal totals."""
        ...

    async def journal_facts(self) -> JournalFacts:
        """All the sums `verify` judges, read in one consistent snapshot."""
        ...

    # --- API keys and the audit trail ---------------------------------------------------

    async def get_key(self, key_id: str) -> StoredKey | None: ...

    async def insert_key(
        self, key_id: str, secret_sha256: bytes, cmd: NewKey, audit: AuditRecord
    ) -> ApiKey:
        """Insert the key and `audit` in one transaction."""
        ...

    async def insert_first_key(
        self, key_id: str, secret_sha256: bytes, cmd: NewKey, audit: AuditRecord
    ) -> ApiKey | None:
        """Insert the key and `audit` only if there is no key at all; None
        when there is one. Many processes at once make one key."""
        ...

    async def list_keys(self, after: str | None, limit: int) -> list[ApiKey]: ...

    async def revoke_key(self, key_id: str, audit: AuditRecord) -> ApiKey | None:
        """Set the key's revocation time (kept if it was set) and pause the
        webhook endpoints it owns, with `audit`; None if there is no such
        key."""
        ...

    async def insert_audit(self, record: AuditRecord) -> None:
        """One audit row in a transaction of its own."""
        ...

    async def audit_rows(
        self, where: AuditFilter, after: tuple[datetime, str] | None, limit: int
    ) -> list[AuditEntry]:
        """Rows matching `where`, oldest first, after (time, id)."""
        ...
