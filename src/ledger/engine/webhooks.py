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

from ledger.engine import errors, paging, reach, rules
from ledger.engine import events as ev
from ledger.engine.access import DIRECT, Actor
from ledger.engine.audit import (
    WEBHOOK_CREATE,
    WEBHOOK_DELETE,
    WEBHOOK_REPLAY,
    WEBHOOK_RESUME,
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
    WebhookChange,
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
            reach=actor.accounts,
        )
        stored = await self.store.insert_webhook(
            webhook_id,
            cmd,
            secret,
            actor.client_id,
            list(actor.accounts) if actor.accounts is not None else None,
            actor.key_id,
            record,
        )
        return _issued(stored.webhook, secret)

    async def get(self, webhook_id: str, actor: Actor = DIRECT) -> Webhook:
        """An endpoint `actor` reaches: one whose prefixes lie within the
        actor's (an endpoint of every account, for unlimited keys only).
        Raises WebhookNotFound (for one out of reach too)."""
        return (await self._stored(webhook_id, actor)).webhook

    async def page(
        self, cursor: str | None, limit: int | None = None, actor: Actor = DIRECT
    ) -> Page[Webhook]:
        """Endpoints `actor` reaches, in id order (deleted ones left out).
        Raises InvalidCursor, InvalidValue."""
        size = paging.page_size(limit, self.limits.default_page_size, self.limits.max_page_size)
        return await reach.filtered_page(
            self.store.list_webhooks,
            lambda w: reach.sees(actor, w.accounts),
            cursor,
            size,
            lambda w: w.id,
        )

    async def resume(self, webhook_id: str, actor: Actor) -> Webhook:
        """Deliver again to an endpoint paused because its key was revoked;
        it belongs to `actor`'s key from now on, and goes on from where it
        stopped. Raises WebhookNotFound, WebhookNotPaused."""
        found = await self._stored(webhook_id, actor)
        if found.webhook.status != "paused":
            raise errors.WebhookNotPaused(
                f"webhook {webhook_id!r} is {found.webhook.status}, not paused",
                webhook_id=webhook_id,
                status=found.webhook.status,
            )
        change = WebhookChange(resumed_by=actor.key_id)
        return await self._change(webhook_id, change, actor, WEBHOOK_RESUME)

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
        self,
        webhook_id: str,
        cursor: str | None,
        limit: int | None = None,
        actor: Actor = DIRECT,
    ) -> Page:
        """The endpoint's delivery attempts, newest first. Raises
        WebhookNotFound, InvalidCursor, InvalidValue."""
        await self._stored(webhook_id, actor)
        size = paging.page_size(limit, self.limits.default_page_size, self.limits.max_page_size)
        after = _delivery_key(cursor)
        items = await self.store.webhook_deliveries(webhook_id, after, size + 1)
        return paging.page(items, size, lambda d: f"{d.attempted_at.isoformat()} {d.id}")

    async def _stored(self, webhook_id: str, actor: Actor) -> StoredWebhook:
        found = await self.store.get_webhook(webhook_id) if known_id(webhook_id) else None
        if found is None or not reach.sees(actor, found.webhook.accounts):
            raise errors.WebhookNotFound(f"no webhook {webhook_id!r}", webhook_id=webhook_id)
        return found

    async def _change(
        self, webhook_id: str, change: WebhookChange, actor: Actor, action: str
    ) -> Webhook:
        reached = await self._stored(webhook_id, actor)
        record = AuditRecord(
            actor=actor,
            action=action,
            outcome="updated",
            target=webhook_id,
            reach=None if reached.webhook.accounts is None else tuple(reached.webhook.accounts),
        )
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
