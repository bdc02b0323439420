"""The events port over SQL: the sealed sequence and reconciliation
exceptions, read from a position on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.engine.events import EventFilter, Position, SealedRecord
from ledger.engine.reconcile.feed import StoredExceptionEvent
from ledger.storage import dialect
from ledger.storage.methods import StoreMethods
from ledger.storage.queries import events
from ledger.storage.queries.reconciliation import feed
from ledger.storage.retry import run_transaction


class EventMethods(StoreMethods):
    async def _read_sealed(self, fn: Callable[[AsyncConnection], Awaitable[Any]]) -> Any:
        """A read of the sealed journal, which never changes: on PostgreSQL
        without the predicate locks a SERIALIZABLE read would leave for
        every posting's writes to check against (see
        `dialect.sealed_read_options`)."""
        options = dialect.sealed_read_options(self.engine.dialect.name)
        return await run_transaction(
            self.engine.execution_options(**options), self.policy, lambda conn, _: fn(conn)
        )

    async def sealed_after(
        self, after: Position, scan_blocks: int, limit: int, where: EventFilter
    ) -> tuple[list[SealedRecord], Position]:
        return await self._read_sealed(
            lambda conn: events.sealed_after(conn, after, scan_blocks, limit, where)
        )

    async def exception_events_after(
        self, after: int, limit: int, account_id: str | None
    ) -> tuple[list[StoredExceptionEvent], int]:
        return await self._read_sealed(
            lambda conn: feed.events_after(conn, after, limit, account_id)
        )

    async def event_heads(self) -> Position:
        return await self._read_sealed(events.heads)
