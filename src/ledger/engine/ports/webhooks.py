"""The webhooks port: endpoints, their deliveries and the deliverers' leases."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from ledger.engine.audit import AuditRecord
from ledger.engine.webhook_model import (
    Delivery,
    NewWebhook,
    Progress,
    StoredWebhook,
    Webhook,
    WebhookChange,
)


class WebhookStore(Protocol):
    """Webhook endpoints, their leases and their delivery log
    (`ledger.engine.webhooks`, `ledger.engine.delivery`)."""

    async def now(self) -> datetime: ...

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
        """Insert the endpoint (owned by `key_id`) with its cursor at the
        journal's head, and its audit row, in one transaction."""
        ...

    async def get_webhook(self, webhook_id: str) -> StoredWebhook | None:
        """None for an unknown or deleted endpoint."""
        ...

    async def list_webhooks(self, after: str | None, limit: int) -> list[Webhook]: ...

    async def change_webhook(
        self, webhook_id: str, change: WebhookChange, audit: AuditRecord
    ) -> StoredWebhook | None:
        """Apply `change`, bump the generation and write the audit row, in
        one transaction; None (and nothing written) for an unknown or
        deleted endpoint."""
        ...

    async def webhook_deliveries(
        self, webhook_id: str, after: tuple[datetime, str] | None, limit: int
    ) -> list[Delivery]:
        """Attempts newest first, after (attempted_at, id) `after`."""
        ...

    async def claim_webhooks(
        self, owner: str, lease_seconds: float, limit: int, serving: list[str]
    ) -> list[StoredWebhook]:
        """Take the lease of up to `limit` active endpoints whose lease is
        free, expired or `owner`'s already (but those in `serving`)."""
        ...

    async def report_progress(
        self, owner: str, webhook_id: str, generation: int, progress: Progress, lease_seconds: float
    ) -> bool:
        """Write the progress and the attempts, and renew the lease, in one
        transaction, if `owner` still holds the lease of this generation of
        an active endpoint; whether it did."""
        ...

    async def release_webhook(self, owner: str, webhook_id: str) -> None: ...

    async def prune_deliveries(self, webhook_id: str, older_than: timedelta) -> int: ...
