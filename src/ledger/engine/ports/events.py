"""The events port: the sealed sequence and reconciliation exceptions, read
from a position on."""

from __future__ import annotations

from typing import Protocol

from ledger.engine.events import EventFilter, Position, SealedRecord
from ledger.engine.reconcile.feed import StoredExceptionEvent


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
