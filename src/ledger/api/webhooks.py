"""HTTP handlers for webhook endpoints (scope `webhooks:admin`): thin, like
the rest; `ledger.engine.webhooks` has the rules, `ledger.engine.delivery`
the delivering."""

from __future__ import annotations

from litestar import Controller, Request, Response, Router, delete, get, post
from litestar.params import FromPath, FromQuery

from ledger.api import request as req
from ledger.api.access import requires
from ledger.api.decoding import decode_body
from ledger.api.openapi import body_operation
from ledger.engine import audit
from ledger.engine.access import WEBHOOKS_ADMIN
from ledger.engine.model import Page
from ledger.engine.webhook_model import (
    Delivery,
    IssuedWebhook,
    NewWebhook,
    ReplayRequest,
    Webhook,
)
from ledger.settings import Settings


class WebhookController(Controller):
    path = "/webhooks"
    tags = ["webhooks"]

    @post(
        operation_class=body_operation(NewWebhook),
        **requires(WEBHOOKS_ADMIN, audit.WEBHOOK_CREATE),
    )
    async def create_webhook(
        self, request: Request, ledger: req.LedgerDep, settings: req.SettingsDep
    ) -> Response[IssuedWebhook]:
        """Register an endpoint for the events committed from now on (of
        `event_types`, absent: all). Deliveries are signed the Standard
        Webhooks way with the answer's `secret`, shown this once. The URL
        must be https and resolve to public addresses only. A key limited
        to account prefixes makes an endpoint that gets only the events it
        could read itself."""
        cmd = decode_body(await request.body(), NewWebhook, settings.max_body_bytes)
        made = await ledger.webhooks.create(cmd, req.actor(request))
        return Response(made, status_code=201)

    @get(**requires(WEBHOOKS_ADMIN))
    async def list_webhooks(
        self,
        request: Request,
        ledger: req.LedgerDep,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int | None] = None,
    ) -> Page[Webhook]:
        """Endpoints the key reaches (whose account prefixes lie within its
        own), in id order, never their secrets."""
        return await ledger.webhooks.page(cursor, limit, req.actor(request))

    @get("/{webhook_id:str}", **requires(WEBHOOKS_ADMIN))
    async def get_webhook(
        self, webhook_id: FromPath[str], request: Request, ledger: req.LedgerDep
    ) -> Webhook:
        """The endpoint: where its deliveries stand (`cursor`, the last
        event acknowledged), whether it is failing and since when, and
        whether it is active, paused or disabled and why."""
        return await ledger.webhooks.get(webhook_id, req.actor(request))

    @delete("/{webhook_id:str}", **requires(WEBHOOKS_ADMIN, audit.WEBHOOK_DELETE))
    async def delete_webhook(
        self, webhook_id: FromPath[str], request: Request, ledger: req.LedgerDep
    ) -> None:
        """Stop delivering to the endpoint, for good (204)."""
        await ledger.webhooks.delete(webhook_id, req.actor(request))

    @post(
        "/{webhook_id:str}/rotate-secret",
        status_code=200,
        **requires(WEBHOOKS_ADMIN, audit.WEBHOOK_ROTATE),
    )
    async def rotate_secret(
        self, webhook_id: FromPath[str], request: Request, ledger: req.LedgerDep
    ) -> IssuedWebhook:
        """A new signing secret, shown this once. Both secrets sign every
        delivery until `previous_secret_until`
        (`LEDGER_WEBHOOK_ROTATION_OVERLAP_SECONDS`), so the receiver can
        switch to the new one without a failed delivery."""
        return await ledger.webhooks.rotate_secret(webhook_id, req.actor(request))

    @get("/{webhook_id:str}/deliveries", **requires(WEBHOOKS_ADMIN))
    async def list_deliveries(
        self,
        webhook_id: FromPath[str],
        request: Request,
        ledger: req.LedgerDep,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int | None] = None,
    ) -> Page[Delivery]:
        """The endpoint's delivery attempts, newest first: each event's
        id and sequence, the attempt's number, the receiver's status (or
        why there was none) and how long it took."""
        return await ledger.webhooks.deliveries(webhook_id, cursor, limit, req.actor(request))

    @post(
        "/{webhook_id:str}/resume",
        status_code=200,
        **requires(WEBHOOKS_ADMIN, audit.WEBHOOK_RESUME, answers=(409,)),
    )
    async def resume(
        self, webhook_id: FromPath[str], request: Request, ledger: req.LedgerDep
    ) -> Webhook:
        """Turn on again an endpoint paused because the key that registered
        it was revoked (409 for one that is not paused). It belongs to the
        calling key from then on, and its deliveries go on from its cursor."""
        return await ledger.webhooks.resume(webhook_id, req.actor(request))

    @post(
        "/{webhook_id:str}/replay",
        status_code=200,
        operation_class=body_operation(ReplayRequest, required=False),
        **requires(WEBHOOKS_ADMIN, audit.WEBHOOK_REPLAY),
    )
    async def replay(
        self,
        webhook_id: FromPath[str],
        request: Request,
        ledger: req.LedgerDep,
        settings: req.SettingsDep,
    ) -> Webhook:
        """Deliver again, in order, every event after the cursor `after`
        (absent: from the first event). A disabled endpoint becomes active
        again: this is how one is turned back on once its receiver is
        fixed. A paused one stays paused until it is resumed."""
        raw = await request.body()
        cmd = (
            decode_body(raw, ReplayRequest, settings.max_body_bytes)
            if raw.strip()
            else ReplayRequest()
        )
        return await ledger.webhooks.replay(webhook_id, cmd, req.actor(request))


def router(settings: Settings) -> Router:
    """The webhooks' routes."""
    return Router(path="/", route_handlers=[WebhookController])
