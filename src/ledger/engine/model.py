"""The ledger's vocabulary: what comes in (commands) and what goes out (records).

These are plain msgspec Structs. The API decodes request bodies straight into
the command types (so the wire schema and the engine's input are one
definition) and encodes the record types as responses. Field names are part
of the public contract: add fields freely, rename none.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

import msgspec

if TYPE_CHECKING:
    from ledger.engine.audit import AuditRecord

T = TypeVar("T")
Direction = Literal["debit", "credit"]
# active: postings may touch it; frozen: no new posting may (a pending one
# may still be voided or expire); closed: final, reached only with nothing
# posted or held on the account.
AccountStatus = Literal["active", "frozen", "closed"]


# --- commands ---------------------------------------------------------------------


class AccountFlags(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    debits_must_not_exceed_credits: bool = False
    credits_must_not_exceed_debits: bool = False


class NewAccount(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    currency: str
    normal_side: Direction
    # The currency's scale (ISO 4217's minor unit, or the ledger's for a code
    # ISO does not give one); stating it is optional, and another is refused.
    scale: int | None = None
    id: str | None = None
    flags: AccountFlags = AccountFlags()
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    # A hot account (fee, clearing, settlement: in most postings) keeps its
    # balance as snapshots plus deltas, so postings do not queue on it.
    hot: bool = False


class FlagsPatch(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    """Limit flags to set (true) or remove (false); an absent flag stays."""

    debits_must_not_exceed_credits: bool | None = None
    credits_must_not_exceed_debits: bool | None = None


class AccountPatch(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    """What may change after creation; absent fields stay as they are. The
    id, currency, scale and normal side never change.

    `metadata` is merged into the account's (RFC 7396): a key with a value
    sets it, a key with null removes it."""

    hot: bool | None = None
    status: AccountStatus | None = None
    metadata: dict[str, Any] | None = None
    flags: FlagsPatch | None = None


class Leg(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    account_id: str
    direction: Direction
    amount: int
    # Optional: when given, it must be the account's currency. Clients that
    # state it are protected from posting dollars into a euro account.
    currency: str | None = None


class NewTransaction(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    entries: list[Leg]
    description: str | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    # A pending transaction moves pending totals only, until it is posted
    # (possibly for less), voided, or expires after `timeout_seconds`.
    pending: bool = False
    timeout_seconds: int | None = None


class PostPendingRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Post a pending transaction: in full (no amounts), with one `amount`
    for both legs of a two-leg transaction, or with `amounts`, one per leg in
    leg order. Whatever is not posted is released."""

    amount: int | None = None
    amounts: list[int] | None = None
    description: str | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class VoidRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    description: str | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class ReversalRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    description: str | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class IdempotencyKey(msgspec.Struct, frozen=True):
    """A client's key; keys of different clients never collide."""

    client_id: str
    key: str


# --- records ----------------------------------------------------------------------


class Account(msgspec.Struct, frozen=True):
    id: str
    currency: str
    scale: int
    normal_side: Direction
    flags: AccountFlags
    metadata: dict[str, Any]
    created_at: datetime
    hot: bool = False
    status: AccountStatus = "active"


class AccountChange(msgspec.Struct, frozen=True):
    """A recorded change of an account's attribute."""

    change_id: str
    account_id: str
    changed_at: datetime
    field: str
    old_value: Any
    new_value: Any
    reason: str | None = None


class FieldChange(msgspec.Struct, frozen=True):
    """One attribute an account update changes: `field` is `hot`,
    `status`, `metadata` or a limit flag's name."""

    field: str
    old_value: Any
    new_value: Any


class PostedLeg(msgspec.Struct, frozen=True):
    account_id: str
    direction: Direction
    amount: int
    currency: str
    entry_id: str


Resolution = Literal["posted", "voided", "expired"]
PendingStatus = Literal["pending", "posted", "voided", "expired"]


class Transaction(msgspec.Struct, frozen=True):
    id: str
    entries: list[PostedLeg]
    description: str | None
    metadata: dict[str, Any]
    created_at: datetime
    reverses: str | None = None
    reversed_by: str | None = None
    # A pending transaction: its state, when it expires, what resolved it.
    pending: bool = False
    expires_at: datetime | None = None
    state: PendingStatus | None = None
    resolved_by: str | None = None
    # A resolution: the pending transaction it resolves, and how.
    resolves: str | None = None
    resolution: Resolution | None = None
    # Its place in the sealed journal: null until the sequencer seals it
    # (within about a second of commit).
    sequence: int | None = None
    block: int | None = None


class PostingResult(msgspec.Struct, frozen=True):
    transaction: Transaction
    # True when the answer is the stored result of an earlier request with the
    # same key and body: nothing new was written.
    replayed: bool


class BalanceTotals(msgspec.Struct, frozen=True):
    debits: int
    credits: int
    balance: int


class PendingTotals(msgspec.Struct, frozen=True):
    debits: int
    credits: int


class Balance(msgspec.Struct, frozen=True):
    account_id: str
    currency: str
    scale: int
    normal_side: Direction
    as_of: datetime
    # The ledger balance: what is posted.
    posted: BalanceTotals
    # Reserved by pending transactions, not yet posted.
    pending: PendingTotals
    # The posted balance less pending amounts that would reduce it (pending
    # amounts that would increase it count only once posted).
    available: int


class AccountEntry(msgspec.Struct, frozen=True):
    entry_id: str
    transaction_id: str
    account_id: str
    direction: Direction
    amount: int
    currency: str
    created_at: datetime
    # True for an entry of a pending transaction; `state` then says whether
    # it is still pending or was posted, voided or expired, by `resolved_by`.
    pending: bool = False
    state: PendingStatus = "posted"
    resolved_by: str | None = None


class Page(msgspec.Struct, Generic[T], frozen=True):
    """One page of a listing; follow `next_cursor` until it is null."""

    items: list[T]
    next_cursor: str | None


# --- what storage hands the engine ---------------------------------------------------


class AccountState(msgspec.Struct, frozen=True):
    """An account with its cached totals, read under a lock."""

    account: Account
    posted_debits: int
    posted_credits: int
    pending_debits: int = 0
    pending_credits: int = 0


class StoredPosting(msgspec.Struct, frozen=True):
    """What an idempotency key points at."""

    fingerprint: str
    transaction: Transaction


class NewEntry(msgspec.Struct, frozen=True):
    """One leg to write; storage assigns its id."""

    account_id: str
    leg: int
    direction: Direction
    amount: int
    currency: str
    pending: bool = False


class TransactionHeader(msgspec.Struct, frozen=True):
    """The transaction row to write; storage assigns its id."""

    client_id: str
    idempotency_key: str
    fingerprint: str
    description: str | None
    metadata: dict[str, Any]
    reverses: str | None = None
    pending: bool = False
    timeout_seconds: int | None = None
    resolves: str | None = None
    resolution: Resolution | None = None
    # The write's audit row, inserted in the same statement as the header.
    # Its `target` and `transaction_id`, when None, are the new transaction.
    audit: AuditRecord | None = None


class HeaderRef(msgspec.Struct, frozen=True):
    """The id and time storage gave a transaction row it inserted."""

    id: str
    created_at: datetime


class BalanceDelta(msgspec.Struct, frozen=True):
    """What one transaction adds to an account's totals (pending parts may
    be negative: a resolution releases what its pending transaction held)."""

    account_id: str
    debits: int
    credits: int
    pending_debits: int = 0
    pending_credits: int = 0
