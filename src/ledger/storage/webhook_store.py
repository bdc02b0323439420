"""The store's side of events and webhooks (`EventStore`, `WebhookStore`),
mixed into `SqlStore`: each call one database transaction through the retry
loop."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.engine.audit import AuditRecord
from ledger.engine.events import EventFilter, Position, SealedRecord
from ledger.engine.reconcile.feed import StoredExceptionEvent
from ledger.engine.webhook_model import (
    Delivery,
    NewWebhook,
    Progress,
    StoredWebhook,
    Webhook,
    WebhookChange,
)
from ledger.storage import dialect
from ledger.storage.methods import StoreMethods
from ledger.storage.queries import events, webhooks
from ledger.storage.reconcile import feed
from ledger.storage.retry import run_transaction

# Attempts one pruning round deletes at most, per endpoint.
PRUNE_BATCH = 10_000


class WebhookMethods(StoreMethods):
    # --- events ---------------------------------------------------------------------

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

    # --- endpoints ------------------------------------------------------------------

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
        return await self._write(
            lambda conn: webhooks.insert(
                conn, webhook_id, cmd, secret, client_id, accounts, key_id
            ),
            audit,
        )

    async def get_webhook(self, webhook_id: str) -> StoredWebhook | None:
        return await self._read(lambda conn: webhooks.get(conn, webhook_id))

    async def list_webhooks(self, after: str | None, limit: int) -> list[Webhook]:
        return await self._read(lambda conn: webhooks.listing(conn, after, limit))

    async def change_webhook(
        self, webhook_id: str, change: WebhookChange, audit: AuditRecord
    ) -> StoredWebhook | None:
        return await self._write(
            lambda conn: webhooks.change(conn, webhook_id, change),
            lambda found: audit if found is not None else None,
        )

    async def webhook_deliveries(
        self, webhook_id: str, after: tuple[datetime, str] | None, limit: int
    ) -> list[Delivery]:
        return await self._read(lambda conn: webhooks.deliveries(conn, webhook_id, after, limit))

    # --- the deliverers -------------------------------------------------------------

    async def claim_webhooks(
        self, owner: str, lease_seconds: float, limit: int, serving: list[str]
    ) -> list[StoredWebhook]:
        return await self._write(
            lambda conn: webhooks.claim(conn, owner, lease_seconds, limit, serving),
            None,
        )

    async def report_progress(
        self, owner: str, webhook_id: str, generation: int, progress: Progress, lease_seconds: float
    ) -> bool:
        return await self._write(
            lambda conn: webhooks.report(
                conn, owner, webhook_id, generation, progress, lease_seconds
            ),
            None,
        )

    async def release_webhook(self, owner: str, webhook_id: str) -> None:
        await self._write(lambda conn: webhooks.release(conn, owner, webhook_id), None)

    async def prune_deliveries(self, webhook_id: str, older_than: timedelta) -> int:
        return await self._write(
            lambda conn: webhooks.prune(conn, webhook_id, older_than, PRUNE_BATCH),
            None,
        )
