"""What the store's mixins (journal, webhooks, reconciliation) lean on:
`SqlStore`'s engine, retry policy, and its read and audited-write helpers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger.engine.audit import AuditRecord
from ledger.storage.replica import Replica
from ledger.storage.retry import RetryPolicy


class StoreMethods:
    engine: AsyncEngine
    policy: RetryPolicy
    replica: Replica | None = None

    async def _read(self, fn: Callable[[AsyncConnection], Any], *, stale: bool = False) -> Any:
        raise NotImplementedError  # SqlStore's

    async def _write(
        self, fn: Callable[[AsyncConnection], Awaitable[Any]], record: AuditRecord, wrote
    ) -> Any:
        raise NotImplementedError  # SqlStore's
