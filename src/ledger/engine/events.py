"""Every committed transaction as an event, read from the sealed journal.

An event exists exactly when its transaction committed: events are the
sealed sequence (`ledger.engine.journal`), read, never published beside a
commit, so a crash cannot lose one between the two. A transaction still
open holds the sequence back (the sequencer seals only what has ended) and
takes its place in it when it commits; one that rolls back has none.

An event's `data` is the transaction as it was when it committed (as
`GET /transactions/{id}` showed it then, with its place in the journal):
what a later transaction did to it (a reversal, a resolution) is an event
of its own. So an event's body never changes, whenever it is read or
delivered again.

Reconciliation exceptions are the feed's second stream
(`ledger.engine.reconcile.feed`), numbered in the commit order of the runs
that found them. The two streams are merged by time under one cursor: each
stream's events come in its own order, and the cursor holds a place in each.

The cursor is the (block, sequence) of the last transaction event read and
the number of the last reconciliation event, encoded: opaque to clients,
stable for ever, valid on every service process.
"""

from __future__ import annotations

import heapq
import itertools
from datetime import datetime
from typing import TYPE_CHECKING, Literal, NamedTuple

import msgspec

from ledger.engine import access, errors, paging, pending
from ledger.engine.access import DIRECT, RECONCILIATION_READ, Actor
from ledger.engine.journal_model import JournalRecord
from ledger.engine.model import PostedLeg, Transaction
from ledger.engine.reconcile.feed import (
    EXCEPTION,
    ExceptionEvent,
    StoredExceptionEvent,
    exception_event,
)

if TYPE_CHECKING:
    pass

POSTED = "transaction.posted"
PENDING = "transaction.pending"
RESOLVED = "transaction.resolved"  # posted, voided or expired: data.resolution
REVERSED = "transaction.reversed"
TRANSACTION_TYPES = (POSTED, PENDING, RESOLVED, REVERSED)
EVENT_TYPES = (*TRANSACTION_TYPES, EXCEPTION)
EventType = Literal[
    "transaction.posted", "transaction.pending", "transaction.resolved", "transaction.reversed"
]

# The longest a long poll may wait, in seconds.
MAX_WAIT_SECONDS = 30.0
# How many blocks one read of the feed scans at most, so that a filter
# that matches little cannot make one request walk the whole journal.
SCAN_BLOCKS = 50


class Position(NamedTuple):
    """A place in both streams: after (block, sequence) in the sealed
    sequence, and after `exception` in the reconciliation stream."""

    block: int
    sequence: int
    exception: int = 0


START = Position(0, 0)


class Event(msgspec.Struct, frozen=True, tag_field="stream", tag="transaction"):
    """A transaction's event. `stream` (the tag) tells it from a
    reconciliation event, whose `sequence` is another stream's."""

    id: str
    sequence: int
    type: EventType
    occurred_at: datetime
    data: Transaction
    # The cursor that continues after this event (the SSE id).
    cursor: str


AnyEvent = Event | ExceptionEvent


class EventPage(msgspec.Struct, frozen=True):
    """Events, each stream's in its order, and the cursor to continue after
    them: it moves on past what was read even when no event matched the
    filter."""

    events: list[AnyEvent]
    cursor: str


class SealedRecord(NamedTuple):
    record: JournalRecord
    block: int
    sequence: int


class EventFilter(msgspec.Struct, frozen=True):
    """What a reader asked for: some types only (None: all), and only the
    transactions with a leg on `account_id`."""

    types: tuple[str, ...] | None = None
    account_id: str | None = None

    def transactions(self) -> bool:
        return self.types is None or any(t in TRANSACTION_TYPES for t in self.types)

    def exceptions(self) -> bool:
        return self.types is None or EXCEPTION in self.types


# --- the rules ------------------------------------------------------------------------


def event_type(record: JournalRecord) -> EventType:
    """A resolution (post, void, expiry of a pending transaction) is
    `resolved`; a reversal `reversed`; a pending transaction `pending`;
    any other `posted`. Storage's filter on types mirrors this
    (`ledger.storage.queries.events`)."""
    if record.resolves is not None:
        return RESOLVED
    if record.reverses is not None:
        return REVERSED
    if record.pending:
        return PENDING
    return POSTED


def event_id(transaction_id: str) -> str:
    """The event's id, stable for ever: consumers dedupe on it, and it is
    the `webhook-id` of every delivery of the event."""
    return "evt_" + transaction_id.replace("-", "")


def event_of(sealed: SealedRecord, at: Position) -> Event:
    """The transaction's event; `at`: the place right after it in both
    streams (its cursor)."""
    record = sealed.record
    legs = sorted(record.entries, key=lambda e: e.leg)
    pending_fields = (
        pending.fields(record.created_at, record.timeout_seconds) if record.pending else {}
    )
    data = Transaction(
        id=record.id,
        entries=[
            PostedLeg(e.account_id, e.direction, e.amount, e.currency, e.entry_id)  # type: ignore[arg-type]
            for e in legs
        ],
        description=record.description,
        metadata=record.metadata,
        created_at=record.created_at,
        reverses=record.reverses,
        resolves=record.resolves,
        resolution=record.resolution,  # type: ignore[arg-type]
        sequence=sealed.sequence,
        block=sealed.block,
        **pending_fields,
    )
    return Event(
        id=event_id(record.id),
        sequence=sealed.sequence,
        type=event_type(record),
        occurred_at=record.created_at,
        data=data,
        cursor=encode_cursor(at),
    )


def visible(actor: Actor, record: JournalRecord) -> bool:
    """Whether `actor` may read this transaction (every leg in its reach)."""
    return actor.accounts is None or all(
        access.reaches(actor, e.account_id) for e in record.entries
    )


def encode_cursor(position: Position) -> str:
    text = f"{position.block}.{position.sequence}"
    if position.exception:
        text += f".{position.exception}"
    return paging.encode_cursor(text)


def decode_cursor(cursor: str | None) -> Position:
    """Raises InvalidCursor."""
    text = paging.decode_cursor(cursor)
    if text is None:
        return START
    parts = text.split(".")
    if not (2 <= len(parts) <= 3 and all(p.isdigit() and len(p) < 19 for p in parts)):
        raise errors.InvalidCursor(f"cursor {cursor!r} is not an event cursor", cursor=cursor)
    return Position(*(int(p) for p in parts))


def parse_filter(
    types: str | list[str] | None, account_id: str | None, actor: Actor = DIRECT
) -> EventFilter:
    """`types`: comma-separated (or a list of) event types. Raises
    InvalidValue, AccountOutOfReach (an account the key may not read),
    MissingScope (reconciliation events asked for by name by a key without
    `reconciliation:read`; unnamed, they are left out for such a key)."""
    names: tuple[str, ...] | None = None
    if types:
        given = types.split(",") if isinstance(types, str) else types
        names = tuple(dict.fromkeys(t.strip() for t in given if t.strip()))
        unknown = [t for t in names if t not in EVENT_TYPES]
        if unknown or not names:
            raise errors.InvalidValue(
                f"unknown event type {unknown[0] if unknown else ''!r}; "
                f"the types are {', '.join(EVENT_TYPES)}",
                field="types",
            )
        if EXCEPTION in names and not access.holds(actor, RECONCILIATION_READ):
            raise errors.MissingScope(
                f"the event type {EXCEPTION!r} needs the scope {RECONCILIATION_READ!r}",
                scope=RECONCILIATION_READ,
            )
    if account_id is not None and not 0 < len(account_id) <= 128:
        raise errors.InvalidValue("account_id must be 1 to 128 characters", field="account_id")
    if account_id is not None:
        access.check_reach(actor, [account_id])
    return EventFilter(names, account_id)


def merge(
    after: Position,
    journal: tuple[list[SealedRecord], Position],
    reconciliation: tuple[list[StoredExceptionEvent], int],
    limit: int,
    actor: Actor,
) -> tuple[list[AnyEvent], Position]:
    """The first `limit` of both streams' reads (each with where it
    reached), merged by time without reordering either, as the events
    `actor` may see; and the place after what was taken. A stream taken
    whole moves on to where its read reached; one cut short, to its last
    event taken. Each event's cursor is the place right after it."""
    sealed, reached = journal
    raised, exception_reached = reconciliation
    pairs = heapq.merge(
        ((s.record.created_at, s) for s in sealed),
        ((r.occurred_at, r) for r in raised),
        key=lambda pair: pair[0],
    )
    out: list[AnyEvent] = []
    block, sequence, exception = after
    taken_sealed = taken_raised = 0
    for _, item in itertools.islice(pairs, limit):
        if isinstance(item, SealedRecord):
            block, sequence = item.block, item.sequence
            taken_sealed += 1
            if visible(actor, item.record):
                out.append(event_of(item, Position(block, sequence, exception)))
        else:
            exception = item.sequence
            taken_raised += 1
            if access.reaches(actor, item.account_id):
                cursor = encode_cursor(Position(block, sequence, exception))
                out.append(exception_event(item, cursor))
    if taken_sealed == len(sealed):
        block, sequence = reached.block, reached.sequence
    if taken_raised == len(raised):
        exception = exception_reached
    return out, Position(block, sequence, exception)
