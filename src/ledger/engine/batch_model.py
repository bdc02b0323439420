"""What a batch of postings is made of: the request, what each item came
to, and what storage writes for the whole batch in one go."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from ledger.engine.audit import AuditRecord
from ledger.engine.errors import LedgerError
from ledger.engine.model import (
    BalanceDelta,
    Leg,
    NewEntry,
    NewTransaction,
    Transaction,
    TransactionHeader,
)


class BatchItem(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One posting of a batch: a `NewTransaction` with its own key."""

    idempotency_key: str
    entries: list[Leg]
    description: str | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    pending: bool = False
    timeout_seconds: int | None = None

    def transaction(self) -> NewTransaction:
        """The single posting this item is: same rules, same fingerprint,
        so its key replays across `POST /transactions` and a batch alike."""
        return NewTransaction(
            self.entries, self.description, self.metadata, self.pending, self.timeout_seconds
        )


class NewBatch(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """`atomic`: every item commits or none does (needs a key for the
    batch). Otherwise each item stands alone, judged in request order."""

    transactions: list[BatchItem]
    atomic: bool = False


@dataclass(frozen=True)
class ItemOutcome:
    """What one item came to: a new transaction, the stored one its key
    already named (`replayed`), or the refusal a single posting would get."""

    index: int
    transaction: Transaction | None = None
    replayed: bool = False
    error: LedgerError | None = None


@dataclass(frozen=True)
class BatchResult:
    """One outcome per item, in request order. `replayed`: the stored
    answer of an atomic batch sent again under the same key."""

    outcomes: list[ItemOutcome]
    replayed: bool = False


class StoredBatch(msgspec.Struct, frozen=True):
    """What an atomic batch's key points at: its fingerprint and its items'
    transactions, in request order."""

    fingerprint: str
    transaction_ids: list[str]


class BatchPosting(msgspec.Struct, frozen=True):
    """One new transaction of a batch: its header (with its audit row) and
    its entries."""

    header: TransactionHeader
    entries: list[NewEntry]


@dataclass
class BatchWrite:
    """Everything a batch writes, in one database transaction: the new
    transactions, each balance row's net change (`ordinary`), one delta per
    hot account (`hot`), the audit rows of the items that wrote nothing
    (refused or replayed), and for an atomic batch its key's record, whose
    `slots` are the items' transaction ids in request order (None where a
    new posting's id goes, in the order of `postings`)."""

    created_at: datetime | None
    postings: list[BatchPosting] = field(default_factory=list)
    ordinary: list[BalanceDelta] = field(default_factory=list)
    hot: list[BalanceDelta] = field(default_factory=list)
    records: list[AuditRecord] = field(default_factory=list)
    batch: BatchKeyRecord | None = None


@dataclass(frozen=True)
class BatchKeyRecord:
    client_id: str
    idempotency_key: str
    fingerprint: str
    slots: list[str | None]
