"""HTTP handlers for accounts: thin. Each decodes, calls one engine method,
encodes."""

from __future__ import annotations

from litestar import Controller, Request, Response, Router, get, patch, post
from litestar.params import FromPath, FromQuery

from ledger.api import request as req
from ledger.api.access import requires
from ledger.api.decoding import decode_body
from ledger.api.openapi import body_operation
from ledger.engine import audit
from ledger.engine.access import ACCOUNTS_READ, ACCOUNTS_WRITE
from ledger.engine.model import (
    Account,
    AccountChange,
    AccountEntry,
    AccountPatch,
    Balance,
    NewAccount,
    Page,
)
from ledger.settings import Settings


class AccountController(Controller):
    path = "/accounts"
    tags = ["accounts"]

    @post(
        operation_class=body_operation(NewAccount),
        **requires(ACCOUNTS_WRITE, audit.ACCOUNT_CREATE, idempotency="optional"),
    )
    async def create_account(
        self, request: Request, ledger: req.LedgerDep, settings: req.SettingsDep
    ) -> Response[Account]:
        """Create an account. Creating it again with identical attributes returns
        it with status 200 and `Idempotent-Replayed: true`. Without an `id`,
        the request needs an `Idempotency-Key` header: the account's id is
        derived from it, so a retry finds the account instead of making another."""
        cmd = decode_body(await request.body(), NewAccount, settings.max_body_bytes)
        key = req.idempotency_key(request)
        account, created = await ledger.accounts.create(cmd, req.actor(request), key)
        if created:
            return Response(account, status_code=201)
        return Response(account, status_code=200, headers={req.REPLAYED_HEADER: "true"})

    @get("/{account_id:str}", **requires(ACCOUNTS_READ))
    async def get_account(
        self, account_id: FromPath[str], request: Request, ledger: req.LedgerDep
    ) -> Account:
        """The account: its currency and scale, normal side, limit flags,
        metadata, whether it is hot, and its status."""
        return await ledger.accounts.get(account_id, req.actor(request))

    @patch(
        "/{account_id:str}",
        operation_class=body_operation(AccountPatch),
        **requires(ACCOUNTS_WRITE, audit.ACCOUNT_UPDATE),
    )
    async def patch_account(
        self,
        account_id: FromPath[str],
        request: Request,
        ledger: req.LedgerDep,
        settings: req.SettingsDep,
    ) -> Account:
        """Change what may change; absent fields stay. `hot`: a hot account's
        postings take no lock on it (its balance is a snapshot plus deltas).
        `status`: `frozen` refuses every new posting that touches the account
        (what is pending may still be voided or expire), `active` lifts that,
        `closed` is final and needs nothing posted or held. `metadata` is
        merged (a key set to null is removed). `flags`: set a limit (only if
        the balance already keeps it) or remove one. Each changed field is
        recorded (`/changes`) with the `Ledger-Reason` header; asking for
        what already is changes nothing."""
        cmd = decode_body(await request.body(), AccountPatch, settings.max_body_bytes)
        account, _changed = await ledger.accounts.update(account_id, cmd, req.actor(request))
        return account

    @get("/{account_id:str}/changes", **requires(ACCOUNTS_READ))
    async def list_account_changes(
        self,
        account_id: FromPath[str],
        request: Request,
        ledger: req.LedgerDep,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int | None] = None,
    ) -> Page[AccountChange]:
        """Recorded changes of the account's attributes, oldest first."""
        return await ledger.accounts.changes(account_id, cursor, limit, req.actor(request))

    @get(**requires(ACCOUNTS_READ))
    async def list_accounts(
        self,
        request: Request,
        ledger: req.LedgerDep,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int | None] = None,
    ) -> Page[Account]:
        """Accounts in id order; follow `next_cursor` until it is null. A key
        limited to account-id prefixes lists only the accounts it reaches."""
        return await ledger.accounts.page(cursor, limit, req.actor(request))

    @get("/{account_id:str}/balance", **requires(ACCOUNTS_READ))
    async def get_balance(
        self,
        account_id: FromPath[str],
        request: Request,
        ledger: req.LedgerDep,
        as_of: FromQuery[str | None] = None,
        consistency: FromQuery[str] = "strong",
    ) -> Balance:
        """Posted debits, credits and the balance on the account's normal side;
        with `as_of` (RFC 3339), summed exactly from the journal up to that time;
        with `consistency=stale`, possibly a few seconds old (for display)."""
        return await ledger.accounts.balance(
            account_id,
            req.as_of(as_of),
            stale=req.stale(consistency),
            actor=req.actor(request),
        )

    @get("/{account_id:str}/entries", **requires(ACCOUNTS_READ))
    async def list_entries(
        self,
        account_id: FromPath[str],
        request: Request,
        ledger: req.LedgerDep,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int | None] = None,
        consistency: FromQuery[str] = "strong",
    ) -> Page[AccountEntry]:
        """The account's entries, oldest first; follow `next_cursor`.
        `consistency=stale` may omit the last few seconds."""
        return await ledger.accounts.entries(
            account_id, cursor, limit, stale=req.stale(consistency), actor=req.actor(request)
        )


def router(settings: Settings) -> Router:
    """The accounts' routes."""
    return Router(path="/", route_handlers=[AccountController])
