"""The webhooks port over SQL: endpoints, deliveries and the deliverers'
leases, each call one database transaction through the retry loop."""

from __future__ import annotations

from datetime import datetime, timedelta

from ledger.engine.audit import AuditRecord
from ledger.engine.webhook_model import (
    Delivery,
    NewWebhook,
    Progress,
    StoredWebhook,
    Webhook,
    WebhookChange,
)
from ledger.storage.methods import StoreMethods
from ledger.storage.queries import webhooks

# Attempts one pruning round deletes at most, per endpoint.
PRUNE_BATCH = 10_000


class WebhookMethods(StoreMethods):
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
