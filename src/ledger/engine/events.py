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

The cursor is the (block, sequence) of the last event read, encoded: opaque
to clients, stable for ever, valid on every service process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Literal, NamedTuple

import msgspec

from ledger.engine import access, errors, paging, pending
from ledger.engine.access import DIRECT, Actor
from ledger.engine.journal_model import JournalRecord
from ledger.engine.limits import Limits
from ledger.engine.model import PostedLeg, Transaction

if TYPE_CHECKING:
    from ledger.engine.ports import EventStore

log = logging.getLogger(__name__)

POSTED = "transaction.posted"
PENDING = "transaction.pending"
RESOLVED = "transaction.resolved"  # posted, voided or expired: data.resolution
REVERSED = "transaction.reversed"
EVENT_TYPES = (POSTED, PENDING, RESOLVED, REVERSED)
EventType = Literal[
    "transaction.posted", "transaction.pending", "transaction.resolved", "transaction.reversed"
]

# The longest a long poll may wait, in seconds.
MAX_WAIT_SECONDS = 30.0
# How many blocks one read of the feed scans at most, so that a filter
# that matches little cannot make one request walk the whole journal.
SCAN_BLOCKS = 50


class Position(NamedTuple):
    """A place in the sealed sequence: after (block, sequence)."""

    block: int
    sequence: int


START = Position(0, 0)


class Event(msgspec.Struct, frozen=True):
    id: str
    sequence: int
    type: EventType
    occurred_at: datetime
    data: Transaction
    # The cursor that continues after this event (the SSE id).
    cursor: str


class EventPage(msgspec.Struct, frozen=True):
    """Events in sequence order, and the cursor to continue after them: it
    moves on past what was read even when no event matched the filter."""

    events: list[Event]
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


def event_of(sealed: SealedRecord) -> Event:
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
        cursor=encode_cursor(Position(sealed.block, sealed.sequence)),
    )


def visible(actor: Actor, record: JournalRecord) -> bool:
    """Whether `actor` may read this transaction (every leg in its reach)."""
    return actor.accounts is None or all(
        access.reaches(actor, e.account_id) for e in record.entries
    )


def encode_cursor(position: Position) -> str:
    return paging.encode_cursor(f"{position.block}.{position.sequence}")


def decode_cursor(cursor: str | None) -> Position:
    """Raises InvalidCursor."""
    text = paging.decode_cursor(cursor)
    if text is None:
        return START
    block, _, sequence = text.partition(".")
    if not (block.isdigit() and sequence.isdigit() and len(block) < 19 and len(sequence) < 19):
        raise errors.InvalidCursor(f"cursor {cursor!r} is not an event cursor", cursor=cursor)
    return Position(int(block), int(sequence))


def parse_filter(
    types: str | list[str] | None, account_id: str | None, actor: Actor = DIRECT
) -> EventFilter:
    """`types`: comma-separated (or a list of) event types. Raises
    InvalidValue, AccountOutOfReach (an account the key may not read)."""
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
    if account_id is not None and not 0 < len(account_id) <= 128:
        raise errors.InvalidValue("account_id must be 1 to 128 characters", field="account_id")
    if account_id is not None:
        access.check_reach(actor, [account_id])
    return EventFilter(names, account_id)


# --- waiting for the sequence to grow -------------------------------------------------


class Tail:
    """The newest sealed sequence as this process last saw it, and a wait
    for it to pass a point. One poller per process reads the head while
    anyone waits (however many long polls and streams are open), and none
    while no one does."""

    def __init__(self, read_head: Callable[[], Awaitable[int]], poll_seconds: float) -> None:
        self.read_head = read_head
        self.poll_seconds = poll_seconds
        self.latest = -1
        self._moved = asyncio.Event()
        self._waiting = 0
        self._poller: asyncio.Task | None = None

    async def wait_past(self, sequence: int, seconds: float) -> bool:
        """Wait up to `seconds` for a sealed sequence past
        `sequence`; whether one came."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        self._waiting += 1
        try:
            if self._poller is None or self._poller.done():
                self._poller = asyncio.create_task(self._poll())
            while self.latest <= sequence:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return False
                moved = self._moved
                try:
                    await asyncio.wait_for(moved.wait(), remaining)
                except TimeoutError:
                    return self.latest > sequence
            return True
        finally:
            self._waiting -= 1

    async def _poll(self) -> None:
        while self._waiting > 0:
            try:
                latest = await self.read_head()
            except Exception:
                log.exception("reading the journal's head failed")
                latest = self.latest
            if latest != self.latest:
                self.latest = latest
                moved, self._moved = self._moved, asyncio.Event()
                moved.set()
            await asyncio.sleep(self.poll_seconds)


# --- the use cases --------------------------------------------------------------------


class Events:
    def __init__(self, store: EventStore, limits: Limits, *, poll_seconds: float) -> None:
        self.store = store
        self.limits = limits
        self.tail = Tail(store.journal_head_sequence, poll_seconds)

    async def read(
        self, after: Position, where: EventFilter, limit: int, actor: Actor = DIRECT
    ) -> tuple[list[Event], Position]:
        """Up to `limit` events after `after` that match and `actor` may
        read, and the position the read reached."""
        found, reached = await self.store.sealed_after(after, SCAN_BLOCKS, limit, where)
        return [event_of(s) for s in found if visible(actor, s.record)], reached

    async def feed(
        self,
        cursor: str | None,
        *,
        limit: int | None = None,
        types: str | list[str] | None = None,
        account_id: str | None = None,
        wait: float | None = None,
        actor: Actor = DIRECT,
    ) -> EventPage:
        """Events after `cursor` in sequence order. With `wait` (seconds, up
        to 30), a long poll: it answers as soon as there is one, or empty
        when the wait is over. Raises InvalidCursor, InvalidValue."""
        size = paging.page_size(limit, self.limits.default_page_size, self.limits.max_page_size)
        where = parse_filter(types, account_id, actor)
        position = decode_cursor(cursor)
        seconds = check_wait(wait)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            events, position = await self.read(position, where, size, actor)
            remaining = deadline - loop.time()
            if events or remaining <= 0:
                return EventPage(events, encode_cursor(position))
            if self.tail.latest <= position.sequence:
                await self.tail.wait_past(position.sequence, remaining)

    async def stream(
        self,
        cursor: str | None,
        *,
        types: str | list[str] | None = None,
        account_id: str | None = None,
        actor: Actor = DIRECT,
        heartbeat_seconds: float = 15.0,
        stopping: Callable[[], bool] = lambda: False,
    ) -> AsyncIterator[Event | None]:
        """Events after `cursor`, for ever (until `stopping()`); None when
        `heartbeat_seconds` passed without one, for the caller to keep the
        connection alive with. Validate the arguments with `check_stream`
        first: this raises only once iterated."""
        where = parse_filter(types, account_id, actor)
        position = decode_cursor(cursor)
        loop = asyncio.get_running_loop()
        quiet_since = loop.time()
        moved = True  # whether more may be sealed than the last read reached
        while not stopping():
            if moved:
                events, position = await self.read(
                    position, where, self.limits.max_page_size, actor
                )
                for event in events:
                    yield event
                if events:
                    quiet_since = loop.time()
                    continue
            moved = self.tail.latest > position.sequence
            if moved:
                continue
            due = quiet_since + heartbeat_seconds - loop.time()
            if due <= 0:
                yield None
                quiet_since = loop.time()
                continue
            moved = await self.tail.wait_past(position.sequence, min(due, 1.0))

    @staticmethod
    def check_stream(
        cursor: str | None, types, account_id: str | None, actor: Actor = DIRECT
    ) -> None:
        """Raises InvalidCursor, InvalidValue, AccountOutOfReach: before a
        stream's answer starts."""
        parse_filter(types, account_id, actor)
        decode_cursor(cursor)


def check_wait(wait: float | None) -> float:
    """Raises InvalidValue."""
    if wait is None:
        return 0.0
    if not 0 <= wait <= MAX_WAIT_SECONDS:
        raise errors.InvalidValue(
            f"wait must be between 0 and {MAX_WAIT_SECONDS:g} seconds", field="wait", value=wait
        )
    return float(wait)
