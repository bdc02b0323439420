"""Webhook endpoints as use cases: register, list, show, delete, rotate the
secret, list deliveries, replay. Each write carries its audit row into its
own database transaction. The records and rules are in `webhook_model`;
delivering is `ledger.engine.delivery`'s.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import msgspec

from ledger.engine import errors, paging, rules
from ledger.engine import events as ev
from ledger.engine.access import Actor
from ledger.engine.audit import (
    WEBHOOK_CREATE,
    WEBHOOK_DELETE,
    WEBHOOK_REPLAY,
    WEBHOOK_ROTATE,
    AuditRecord,
)
from ledger.engine.limits import Limits
from ledger.engine.model import Page
from ledger.engine.webhook_model import (
    IssuedWebhook,
    NewWebhook,
    ReplayRequest,
    StoredWebhook,
    Webhook,
    check_addresses,
    check_new_webhook,
    known_id,
    new_id,
    new_secret,
    readable_types,
)

if TYPE_CHECKING:
    from ledger.engine.ports import WebhookStore

Resolve = Callable[[str], Awaitable[list[str]]]


async def no_resolver(host: str) -> list[str]:
    """For a ledger built without one: every host is unknown, so no
    endpoint can be registered."""
    return []


class WebhookChange(msgspec.Struct, frozen=True, kw_only=True):
    """What an operator's change sets on an endpoint (absent: unchanged).
    Every change bumps the endpoint's generation, so a deliverer working
    from the old state stops and reloads."""

    deleted: bool = False
    secret: str | None = None
    # With a new secret: the old one signs too until this time.
    previous_until: datetime | None = None
    # A replay: the cursor moves here, and the endpoint is active again.
    replay_from: ev.Position | None = None


class Webhooks:
    def __init__(
        self,
        store: WebhookStore,
        limits: Limits,
        resolve: Resolve,
        *,
        allow_private: bool = False,
        rotation_overlap_seconds: float = 86_400.0,
    ) -> None:
        self.store = store
        self.limits = limits
        self.resolve = resolve
        self.allow_private = allow_private
        self.rotation_overlap = timedelta(seconds=rotation_overlap_seconds)

    async def create(self, cmd: NewWebhook, actor: Actor) -> IssuedWebhook:
        """Register an endpoint; it gets the events sealed after this
        moment. The answer carries its signing secret, shown this once.
        Raises InvalidValue (the URL, a private address, the types)."""
        host = check_new_webhook(cmd, allow_private=self.allow_private)
        cmd = msgspec.structs.replace(cmd, event_types=readable_types(cmd, actor))
        check_addresses(host, await self.resolve(host), allow_private=self.allow_private)
        webhook_id, secret = new_id(), new_secret()
        record = AuditRecord(
            actor=actor,
            action=WEBHOOK_CREATE,
            outcome="created",
            target=webhook_id,
            fingerprint=rules.fingerprint("webhook", cmd),
        )
        stored = await self.store.insert_webhook(
            webhook_id,
            cmd,
            secret,
            actor.client_id,
            list(actor.accounts) if actor.accounts is not None else None,
            record,
        )
        return _issued(stored.webhook, secret)

    async def get(self, webhook_id: str) -> Webhook:
        """Raises WebhookNotFound."""
        return (await self._stored(webhook_id)).webhook

    async def page(self, cursor: str | None, limit: int | None = None) -> Page[Webhook]:
        """Endpoints in id order (deleted ones left out). Raises
        InvalidCursor, InvalidValue."""
        size = paging.page_size(limit, self.limits.default_page_size, self.limits.max_page_size)
        items = await self.store.list_webhooks(paging.decode_cursor(cursor), size + 1)
        return paging.page(items, size, lambda w: w.id)

    async def delete(self, webhook_id: str, actor: Actor) -> None:
        """Stop delivering to the endpoint, for good. Raises WebhookNotFound."""
        await self._change(webhook_id, WebhookChange(deleted=True), actor, WEBHOOK_DELETE)

    async def rotate_secret(self, webhook_id: str, actor: Actor) -> IssuedWebhook:
        """A new signing secret, shown this once; the old one keeps signing
        beside it for `rotation_overlap_seconds`, so receivers can switch
        without losing a delivery. Raises WebhookNotFound."""
        now = await self.store.now()
        secret = new_secret()
        change = WebhookChange(secret=secret, previous_until=now + self.rotation_overlap)
        webhook = await self._change(webhook_id, change, actor, WEBHOOK_ROTATE)
        return _issued(webhook, secret)

    async def replay(self, webhook_id: str, cmd: ReplayRequest, actor: Actor) -> Webhook:
        """Deliver again, in order, every event after `cmd.after`; a
        disabled endpoint is active again. Raises WebhookNotFound,
        InvalidCursor."""
        position = ev.decode_cursor(cmd.after)
        change = WebhookChange(replay_from=position)
        return await self._change(webhook_id, change, actor, WEBHOOK_REPLAY)

    async def deliveries(
        self, webhook_id: str, cursor: str | None, limit: int | None = None
    ) -> Page:
        """The endpoint's delivery attempts, newest first. Raises
        WebhookNotFound, InvalidCursor, InvalidValue."""
        await self._stored(webhook_id)
        size = paging.page_size(limit, self.limits.default_page_size, self.limits.max_page_size)
        after = _delivery_key(cursor)
        items = await self.store.webhook_deliveries(webhook_id, after, size + 1)
        return paging.page(items, size, lambda d: f"{d.attempted_at.isoformat()} {d.id}")

    async def _stored(self, webhook_id: str) -> StoredWebhook:
        found = await self.store.get_webhook(webhook_id) if known_id(webhook_id) else None
        if found is None:
            raise errors.WebhookNotFound(f"no webhook {webhook_id!r}", webhook_id=webhook_id)
        return found

    async def _change(
        self, webhook_id: str, change: WebhookChange, actor: Actor, action: str
    ) -> Webhook:
        record = AuditRecord(actor=actor, action=action, outcome="updated", target=webhook_id)
        found = None
        if known_id(webhook_id):
            found = await self.store.change_webhook(webhook_id, change, record)
        if found is None:
            raise errors.WebhookNotFound(f"no webhook {webhook_id!r}", webhook_id=webhook_id)
        return found.webhook


def _issued(webhook: Webhook, secret: str) -> IssuedWebhook:
    return IssuedWebhook(
        **{f: getattr(webhook, f) for f in Webhook.__struct_fields__}, secret=secret
    )


def _delivery_key(cursor: str | None) -> tuple[datetime, str] | None:
    text = paging.decode_cursor(cursor)
    if text is None:
        return None
    at, _, delivery_id = text.partition(" ")
    try:
        return datetime.fromisoformat(at), str(uuid.UUID(delivery_id))
    except ValueError as exc:
        raise errors.InvalidCursor(f"cursor {cursor!r} is not valid", cursor=cursor) from exc
