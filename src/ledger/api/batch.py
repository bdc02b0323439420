"""`POST /transactions/batch`: many postings in one request and one
database transaction (`ledger.engine.batch`). Its body has a limit of its
own (`LEDGER_MAX_BATCH_BODY_BYTES`), set on the router that holds it."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, Router, post

from ledger.api import request as req
from ledger.api.access import requires
from ledger.api.decoding import decode_body
from ledger.api.openapi import body_operation
from ledger.api.problems import error_body
from ledger.engine import audit
from ledger.engine.access import TRANSACTIONS_WRITE
from ledger.engine.batch_model import BatchResult, ItemOutcome, NewBatch
from ledger.engine.model import Transaction
from ledger.settings import Settings


class ItemResult(msgspec.Struct, omit_defaults=True):
    """One item's answer: `status` is what a single posting would have been
    answered (201 new, 200 replayed, 4xx refused), with its transaction or
    its problem JSON."""

    index: int
    status: int
    transaction: Transaction | None = None
    problem: dict[str, Any] | None = None


class BatchAnswer(msgspec.Struct):
    results: list[ItemResult]


@post(
    "/batch",
    tags=["transactions"],
    status_code=200,
    operation_class=body_operation(NewBatch),
    **requires(
        TRANSACTIONS_WRITE, audit.TRANSACTION_BATCH, idempotency="optional", answers=(409, 422)
    ),
)
async def post_batch(
    request: Request, ledger: req.LedgerDep, settings: req.SettingsDep
) -> Response[BatchAnswer]:
    """Post 1 to `LEDGER_MAX_BATCH` transactions, each with its own
    `idempotency_key`, in one database transaction. Answers 200 with one
    result per item, in request order.

    Not atomic (the default): each item stands alone, with the outcome
    posting them one by one in request order would give, limits included; a
    refused item writes nothing and stops nothing. `"atomic": true` (needs
    an `Idempotency-Key` header for the batch): every item commits or none,
    a refused item makes the whole batch 422 or 409 naming its `index`, and
    the same key and body again answers the stored batch (200 with
    `Idempotent-Replayed: true`)."""
    cmd = decode_body(await request.body(), NewBatch, settings.max_batch_body_bytes)
    key = req.idempotency_key(request)
    result = await ledger.batches.post(cmd, key, req.actor(request))
    headers = {req.REPLAYED_HEADER: "true"} if result.replayed else None
    return Response(_answer(result, request.url.path), status_code=200, headers=headers)


def _answer(result: BatchResult, path: str) -> BatchAnswer:
    return BatchAnswer([_item(o, path) for o in result.outcomes])


def _item(outcome: ItemOutcome, path: str) -> ItemResult:
    if outcome.error is not None:
        body = error_body(outcome.error, path)
        return ItemResult(outcome.index, body["status"], problem=body)
    return ItemResult(outcome.index, 200 if outcome.replayed else 201, outcome.transaction)


def router(settings: Settings) -> Router:
    """The batch route, under /transactions, with the batch body limit."""
    return Router(
        path="/transactions",
        route_handlers=[post_batch],
        request_max_body_size=settings.max_batch_body_bytes,
    )
