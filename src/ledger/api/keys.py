"""HTTP handlers for API keys (scope `keys:admin`): thin, like the rest."""

from __future__ import annotations

from litestar import Controller, Request, Response, Router, get, post
from litestar.params import FromPath, FromQuery

from ledger.api import request as req
from ledger.api.access import requires
from ledger.api.decoding import decode_body
from ledger.api.openapi import body_operation
from ledger.engine import audit
from ledger.engine.access import KEYS_ADMIN, ApiKey, IssuedKey, NewKey
from ledger.engine.model import Page
from ledger.settings import Settings


class KeyController(Controller):
    path = "/keys"
    tags = ["keys"]

    @post(operation_class=body_operation(NewKey), **requires(KEYS_ADMIN, audit.KEY_CREATE))
    async def create_key(
        self, request: Request, ledger: req.LedgerDep, settings: req.SettingsDep
    ) -> Response[IssuedKey]:
        """Make an API key. The answer's `key` is the only time the secret is
        shown; the ledger keeps its SHA-256 alone. A key may make only keys
        under its own ceiling: scopes it holds, and `accounts` prefixes that
        each start with one of its own (a limited key cannot leave
        `accounts` out); anything more is 403. `client_id` is the
        idempotency scope: give a new key of the same client the same one,
        and its retries find the postings of the key it replaces."""
        cmd = decode_body(await request.body(), NewKey, settings.max_body_bytes)
        issued = await ledger.keys.create(cmd, req.actor(request))
        return Response(issued, status_code=201)

    @get(**requires(KEYS_ADMIN))
    async def list_keys(
        self,
        request: Request,
        ledger: req.LedgerDep,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int | None] = None,
    ) -> Page[ApiKey]:
        """Keys under the caller's ceiling (scopes it holds, prefixes within
        its own), in id order, revoked ones too; never their secrets."""
        return await ledger.keys.page(cursor, limit, req.actor(request))

    @get("/{key_id:str}", **requires(KEYS_ADMIN))
    async def get_key(
        self, key_id: FromPath[str], request: Request, ledger: req.LedgerDep
    ) -> ApiKey:
        """The key's name, client, scopes, reach and limits (never its
        secret); a key above the caller's ceiling is not found."""
        return await ledger.keys.get(key_id, req.actor(request))

    @post("/{key_id:str}/revoke", status_code=200, **requires(KEYS_ADMIN, audit.KEY_REVOKE))
    async def revoke_key(
        self, key_id: FromPath[str], request: Request, ledger: req.LedgerDep
    ) -> ApiKey:
        """Revoke a key under the caller's ceiling: it stops working in this
        service process at once, and in every other within
        `LEDGER_KEY_CACHE_SECONDS`, open event streams and long polls
        included; the webhook endpoints it registered pause. Revoking it
        again changes nothing."""
        return await ledger.keys.revoke(key_id, req.actor(request))


def router(settings: Settings) -> Router:
    """The API keys' routes."""
    return Router(path="/", route_handlers=[KeyController])
