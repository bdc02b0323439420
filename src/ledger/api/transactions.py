"""HTTP handlers for transactions: thin. Each decodes, calls one engine
method, encodes."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Request, Response, Router, get, post
from litestar.params import FromPath, FromQuery, QueryParameter

from ledger.api import request as req
from ledger.api.access import requires
from ledger.api.decoding import decode_body
from ledger.api.openapi import body_operation
from ledger.engine import Postings, audit
from ledger.engine.access import REPORTS_READ, TRANSACTIONS_READ, TRANSACTIONS_WRITE
from ledger.engine.model import (
    NewTransaction,
    Page,
    PostPendingRequest,
    ReversalRequest,
    Transaction,
    VoidRequest,
)
from ledger.engine.report_model import TransactionQuery
from ledger.settings import Settings

# `GET /transactions?metadata.<key>=<value>`: a metadata equality filter.
METADATA_PREFIX = "metadata."


class TransactionController(Controller):
    path = "/transactions"
    tags = ["transactions"]

    @post(
        operation_class=body_operation(NewTransaction),
        **requires(TRANSACTIONS_WRITE, audit.TRANSACTION_CREATE, idempotency="required"),
    )
    async def post_transaction(
        self, request: Request, ledger: req.LedgerDep, settings: req.SettingsDep
    ) -> Response[Transaction]:
        """Post a balanced transaction. Requires an `Idempotency-Key` header:
        the same key and body again returns the original with status 200 and
        `Idempotent-Replayed: true`; the same key with another body is 409."""
        cmd = decode_body(await request.body(), NewTransaction, settings.max_body_bytes)
        key = req.idempotency_key(request)
        return req.posting_response(await ledger.postings.post(cmd, key, req.actor(request)))

    @get(**requires(REPORTS_READ, query_prefix=METADATA_PREFIX))
    async def search_transactions(
        self,
        request: Request,
        ledger: req.LedgerDep,
        start: Annotated[str | None, QueryParameter(name="from")] = None,
        to: FromQuery[str | None] = None,
        account_id: FromQuery[str | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int | None] = None,
    ) -> Page[Transaction]:
        """Transactions with a leg on `account_id`, and/or whose metadata has
        each `metadata.<key>=<value>` given (string values, compared exactly;
        up to 8), created in [`from`, `to`) when given (RFC 3339), oldest
        first; follow `next_cursor`. At least an account or one metadata
        filter is needed."""
        metadata = {
            name[len(METADATA_PREFIX) :]: value
            for name, value in request.query_params.items()
            if name.startswith(METADATA_PREFIX)
        }
        where = TransactionQuery(
            account_id=account_id,
            metadata=metadata,
            start=req.as_of(start, "from"),
            end=req.as_of(to, "to"),
        )
        return await ledger.reports.search(where, cursor, limit, req.actor(request))

    @get("/{transaction_id:str}", **requires(TRANSACTIONS_READ))
    async def get_transaction(
        self,
        transaction_id: FromPath[str],
        request: Request,
        ledger: req.LedgerDep,
        consistency: FromQuery[str] = "strong",
    ) -> Transaction:
        """The transaction with its legs; for a pending one, its state and
        what resolved it. `consistency=stale` may be a few seconds old."""
        return await ledger.postings.get(
            transaction_id, stale=req.stale(consistency), actor=req.actor(request)
        )

    @post(
        "/{transaction_id:str}/reversal",
        operation_class=body_operation(ReversalRequest, required=False),
        **requires(TRANSACTIONS_WRITE, audit.TRANSACTION_REVERSE, idempotency="required"),
    )
    async def reverse_transaction(
        self,
        transaction_id: FromPath[str],
        request: Request,
        ledger: req.LedgerDep,
        settings: req.SettingsDep,
    ) -> Response[Transaction]:
        """Append a transaction with every leg swapped. Requires an
        `Idempotency-Key`; a second reversal of the same transaction is 409."""
        return await _act_on(
            transaction_id, request, ledger, settings, ReversalRequest, Postings.reverse
        )

    @post(
        "/{transaction_id:str}/post",
        operation_class=body_operation(PostPendingRequest, required=False),
        **requires(TRANSACTIONS_WRITE, audit.PENDING_POST, idempotency="required"),
    )
    async def post_pending(
        self,
        transaction_id: FromPath[str],
        request: Request,
        ledger: req.LedgerDep,
        settings: req.SettingsDep,
    ) -> Response[Transaction]:
        """Post a pending transaction: in full (empty body), or for less with
        `amount` (two legs) or `amounts` (one per leg), releasing the rest.
        Requires an `Idempotency-Key`. A second resolution, or one after expiry,
        is 409 with the reason."""
        return await _act_on(
            transaction_id, request, ledger, settings, PostPendingRequest, Postings.post_pending
        )

    @post(
        "/{transaction_id:str}/void",
        operation_class=body_operation(VoidRequest, required=False),
        **requires(TRANSACTIONS_WRITE, audit.PENDING_VOID, idempotency="required"),
    )
    async def void_pending(
        self,
        transaction_id: FromPath[str],
        request: Request,
        ledger: req.LedgerDep,
        settings: req.SettingsDep,
    ) -> Response[Transaction]:
        """Release a pending transaction. Requires an `Idempotency-Key`."""
        return await _act_on(
            transaction_id, request, ledger, settings, VoidRequest, Postings.void_pending
        )


async def _act_on(transaction_id, request, ledger, settings, body_type, action):
    """Decode an optional body, act on one transaction under the request's
    idempotency key, and answer 201 (or 200 for a replay)."""
    cmd = decode_body(await request.body(), body_type, settings.max_body_bytes, allow_empty=True)
    key = req.idempotency_key(request)
    return req.posting_response(
        await action(ledger.postings, transaction_id, cmd, key, req.actor(request))
    )


def router(settings: Settings) -> Router:
    """The transactions' routes (a batch's are `ledger.api.batch`'s)."""
    return Router(path="/", route_handlers=[TransactionController])
