"""The event feed's use cases: a page of events after a cursor (with a long
poll), and a stream of them for as long as a connection lasts. What an
event is, and the cursor, are `ledger.engine.events`'.

A long poll or a stream outlives the request that authenticated it: it
asks whether its key is still live every `recheck_seconds` and ends with
Unauthenticated once the key is revoked.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from ledger.engine import access, errors, paging
from ledger.engine.access import DIRECT, RECONCILIATION_READ, Actor
from ledger.engine.event_tail import Tail
from ledger.engine.events import (
    MAX_WAIT_SECONDS,
    SCAN_BLOCKS,
    AnyEvent,
    EventFilter,
    EventPage,
    Position,
    decode_cursor,
    encode_cursor,
    merge,
    parse_filter,
)
from ledger.engine.limits import Limits

if TYPE_CHECKING:
    from ledger.engine.ports import EventStore


async def _always_live(key_id: str) -> bool:
    return True


class Events:
    """`key_live` says whether a key is still live (not revoked): a long
    poll or a stream asks it every `recheck_seconds` and ends with
    Unauthenticated once the key that opened it is revoked."""

    def __init__(
        self,
        store: EventStore,
        limits: Limits,
        *,
        poll_seconds: float,
        key_live: Callable[[str], Awaitable[bool]] = _always_live,
        recheck_seconds: float = 5.0,
    ) -> None:
        self.store = store
        self.limits = limits
        self.tail = Tail(store.event_heads, poll_seconds)
        self.key_live = key_live
        self.recheck_seconds = recheck_seconds

    async def _recheck(self, actor: Actor, checked_at: float) -> float:
        """When the actor's key was last found live: now, if it was due for
        a check. Raises Unauthenticated once the key is revoked."""
        now = asyncio.get_running_loop().time()
        if actor.key_id is None or now - checked_at < self.recheck_seconds:
            return checked_at
        if not await self.key_live(actor.key_id):
            raise errors.Unauthenticated(
                f"API key {actor.key_id!r} was revoked; this stream has ended"
            )
        return now

    async def read(
        self, after: Position, where: EventFilter, limit: int, actor: Actor = DIRECT
    ) -> tuple[list[AnyEvent], Position]:
        """Up to `limit` events after `after` that match and `actor` may
        read, the two streams merged by time, and the place the read
        reached. A stream the filter leaves out (reconciliation events also
        for a key without `reconciliation:read`) is passed over to its end."""
        transactions = where.transactions()
        exceptions = where.exceptions() and access.holds(actor, RECONCILIATION_READ)
        # Where a stream left out ends (both read: not needed).
        end = after if transactions and exceptions else await self.store.event_heads()
        if transactions:
            sealed, reached = await self.store.sealed_after(after, SCAN_BLOCKS, limit, where)
        else:
            sealed, reached = [], max(after, end._replace(exception=after.exception))
        if exceptions:
            raised, exception_reached = await self.store.exception_events_after(
                after.exception, limit, where.account_id
            )
        else:
            raised, exception_reached = [], max(after.exception, end.exception)
        return merge(after, (sealed, reached), (raised, exception_reached), limit, actor)

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
        """Events after `cursor`, each stream's in its order. With `wait`
        (seconds, up to 30), a long poll: it answers as soon as there is
        one, or empty when the wait is over. Raises InvalidCursor,
        InvalidValue, MissingScope."""
        size = paging.page_size(limit, self.limits.default_page_size, self.limits.max_page_size)
        where = parse_filter(types, account_id, actor)
        position = decode_cursor(cursor)
        seconds = check_wait(wait)
        loop = asyncio.get_running_loop()
        checked_at = loop.time()
        deadline = checked_at + seconds
        while True:
            checked_at = await self._recheck(actor, checked_at)
            events, position = await self.read(position, where, size, actor)
            remaining = deadline - loop.time()
            if events or remaining <= 0:
                return EventPage(events, encode_cursor(position))
            if not self.tail.passed(position):
                await self.tail.wait_past(position, min(remaining, self.recheck_seconds))

    async def stream(
        self,
        cursor: str | None,
        *,
        types: str | list[str] | None = None,
        account_id: str | None = None,
        actor: Actor = DIRECT,
        heartbeat_seconds: float = 15.0,
        stopping: Callable[[], bool] = lambda: False,
    ) -> AsyncIterator[AnyEvent | None]:
        """Events after `cursor`, for ever (until `stopping()`); None when
        `heartbeat_seconds` passed without one, for the caller to keep the
        connection alive with. Validate the arguments with `check_stream`
        first: this raises only once iterated, Unauthenticated too, once the
        actor's key is revoked."""
        where = parse_filter(types, account_id, actor)
        position = decode_cursor(cursor)
        loop = asyncio.get_running_loop()
        quiet_since = checked_at = loop.time()
        moved = True  # whether more may be sealed than the last read reached
        while not stopping():
            checked_at = await self._recheck(actor, checked_at)
            if moved:
                events, position = await self.read(
                    position, where, self.limits.max_page_size, actor
                )
                for event in events:
                    yield event
                if events:
                    quiet_since = loop.time()
                    continue
            moved = self.tail.passed(position)
            if moved:
                continue
            due = quiet_since + heartbeat_seconds - loop.time()
            if due <= 0:
                yield None
                quiet_since = loop.time()
                continue
            moved = await self.tail.wait_past(position, min(due, 1.0))

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
