"""HTTP handlers: thin. Each decodes, calls one engine method, encodes."""

from __future__ import annotations

from datetime import datetime

from litestar import Request, Response, get, patch, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ledger.api.openapi import body_operation
from ledger.api.problems import decode_body
from ledger.engine import errors
from ledger.engine.ledger import Ledger
from ledger.engine.model import (
    Account,
    AccountPatch,
    Balance,
    IdempotencyKey,
    NewAccount,
    NewTransaction,
    Page,
    PostingResult,
    PostPendingRequest,
    ReversalRequest,
    Transaction,
    VoidRequest,
)
from ledger.settings import Settings

IDEMPOTENCY_HEADER = "Idempotency-Key"
CLIENT_HEADER = "Ledger-Client-Id"
REPLAYED_HEADER = "Idempotent-Replayed"
_MAX_CLIENT_ID = 128


def _ledger(state: State) -> Ledger:
    return state.ledger


def _settings(state: State) -> Settings:
    return state.settings


def _key(request: Request) -> IdempotencyKey:
    """The client's idempotency key. Keys are scoped by the `Ledger-Client-Id`
    header (default "default"): two clients may use the same key."""
    client = request.headers.get(CLIENT_HEADER, "default")
    if not client or len(client) > _MAX_CLIENT_ID or not client.isprintable():
        raise errors.InvalidValue(
            f"{CLIENT_HEADER} must be 1 to {_MAX_CLIENT_ID} printable characters",
            field=CLIENT_HEADER,
        )
    return IdempotencyKey(client_id=client, key=request.headers.get(IDEMPOTENCY_HEADER, ""))


def _posting_response(result: PostingResult) -> Response[Transaction]:
    if result.replayed:
        return Response(result.transaction, status_code=200, headers={REPLAYED_HEADER: "true"})
    return Response(result.transaction, status_code=201)


def _stale(consistency: str) -> bool:
    """`strong` (default): the latest committed state. `stale`: may be a few
    seconds old, served without contention (a follower read on CockroachDB)."""
    if consistency not in ("strong", "stale"):
        raise errors.InvalidValue(
            f"consistency must be 'strong' or 'stale'; got {consistency!r}", field="consistency"
        )
    return consistency == "stale"


def _as_of(raw: str | None) -> datetime | None:
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise errors.InvalidValue(
            f"as_of must be an RFC 3339 time such as 2026-01-31T23:59:59Z; got {raw!r}",
            field="as_of",
        ) from exc
    if value.tzinfo is None:
        raise errors.InvalidValue(
            "as_of must carry a time zone offset (Z or +hh:mm)", field="as_of"
        )
    return value


# --- accounts -------------------------------------------------------------------------


@post("/accounts", operation_class=body_operation(NewAccount), tags=["accounts"])
async def create_account(request: Request, state: State) -> Response[Account]:
    """Create an account. Creating it again with identical attributes returns
    it with status 200 and `Idempotent-Replayed: true`."""
    cmd = decode_body(await request.body(), NewAccount, _settings(state).max_body_bytes)
    account, created = await _ledger(state).create_account(cmd)
    if created:
        return Response(account, status_code=201)
    return Response(account, status_code=200, headers={REPLAYED_HEADER: "true"})


@get("/accounts/{account_id:str}", tags=["accounts"])
async def get_account(account_id: FromPath[str], state: State) -> Account:
    return await _ledger(state).get_account(account_id)


@patch(
    "/accounts/{account_id:str}", operation_class=body_operation(AccountPatch), tags=["accounts"]
)
async def patch_account(account_id: FromPath[str], request: Request, state: State) -> Account:
    """Change whether the account is hot (`{"hot": true}`), the one attribute
    that may change. A hot account's postings take no lock on it; its balance
    is a snapshot plus deltas. Each change is recorded (`/changes`); asking
    for what already is changes nothing."""
    cmd = decode_body(await request.body(), AccountPatch, _settings(state).max_body_bytes)
    account, _changed = await _ledger(state).set_hot(account_id, cmd)
    return account


@get("/accounts/{account_id:str}/changes", tags=["accounts"])
async def list_account_changes(
    account_id: FromPath[str],
    state: State,
    cursor: FromQuery[str | None] = None,
    limit: FromQuery[int] = 50,
) -> Page:
    """Recorded changes of the account's attributes, oldest first."""
    return await _ledger(state).account_changes(account_id, cursor, limit)


@get("/accounts", tags=["accounts"])
async def list_accounts(
    state: State, cursor: FromQuery[str | None] = None, limit: FromQuery[int] = 50
) -> Page:
    """Accounts in id order; follow `next_cursor` until it is null."""
    return await _ledger(state).list_accounts(cursor, limit)


@get("/accounts/{account_id:str}/balance", tags=["accounts"])
async def get_balance(
    account_id: FromPath[str],
    state: State,
    as_of: FromQuery[str | None] = None,
    consistency: FromQuery[str] = "strong",
) -> Balance:
    """Posted debits, credits and the balance on the account's normal side;
    with `as_of` (RFC 3339), summed exactly from the journal up to that time;
    with `consistency=stale`, possibly a few seconds old (for display)."""
    return await _ledger(state).balance(account_id, _as_of(as_of), stale=_stale(consistency))


@get("/accounts/{account_id:str}/entries", tags=["accounts"])
async def list_entries(
    account_id: FromPath[str],
    state: State,
    cursor: FromQuery[str | None] = None,
    limit: FromQuery[int] = 50,
    consistency: FromQuery[str] = "strong",
) -> Page:
    """The account's entries, oldest first; follow `next_cursor`.
    `consistency=stale` may omit the last few seconds."""
    return await _ledger(state).account_entries(
        account_id, cursor, limit, stale=_stale(consistency)
    )


# --- transactions ---------------------------------------------------------------------


@post("/transactions", operation_class=body_operation(NewTransaction), tags=["transactions"])
async def post_transaction(request: Request, state: State) -> Response[Transaction]:
    """Post a balanced transaction. Requires an `Idempotency-Key` header:
    the same key and body again returns the original with status 200 and
    `Idempotent-Replayed: true`; the same key with another body is 409."""
    cmd = decode_body(await request.body(), NewTransaction, _settings(state).max_body_bytes)
    return _posting_response(await _ledger(state).post_transaction(cmd, _key(request)))


@get("/transactions/{transaction_id:str}", tags=["transactions"])
async def get_transaction(
    transaction_id: FromPath[str], state: State, consistency: FromQuery[str] = "strong"
) -> Transaction:
    return await _ledger(state).get_transaction(transaction_id, stale=_stale(consistency))


@post(
    "/transactions/{transaction_id:str}/reversal",
    operation_class=body_operation(ReversalRequest, required=False),
    tags=["transactions"],
)
async def reverse_transaction(
    transaction_id: FromPath[str], request: Request, state: State
) -> Response[Transaction]:
    """Append a transaction with every leg swapped. Requires an
    `Idempotency-Key`; a second reversal of the same transaction is 409."""
    return await _act_on(
        transaction_id, request, state, ReversalRequest, Ledger.reverse_transaction
    )


@post(
    "/transactions/{transaction_id:str}/post",
    operation_class=body_operation(PostPendingRequest, required=False),
    tags=["transactions"],
)
async def post_pending(
    transaction_id: FromPath[str], request: Request, state: State
) -> Response[Transaction]:
    """Post a pending transaction: in full (empty body), or for less with
    `amount` (two legs) or `amounts` (one per leg), releasing the rest.
    Requires an `Idempotency-Key`. A second resolution, or one after expiry,
    is 409 with the reason."""
    return await _act_on(transaction_id, request, state, PostPendingRequest, Ledger.post_pending)


@post(
    "/transactions/{transaction_id:str}/void",
    operation_class=body_operation(VoidRequest, required=False),
    tags=["transactions"],
)
async def void_pending(
    transaction_id: FromPath[str], request: Request, state: State
) -> Response[Transaction]:
    """Release a pending transaction. Requires an `Idempotency-Key`."""
    return await _act_on(transaction_id, request, state, VoidRequest, Ledger.void_pending)


async def _act_on(transaction_id: str, request: Request, state: State, body_type, action):
    """Decode an optional body, act on one transaction under the request's
    idempotency key, and answer 201 (or 200 for a replay)."""
    cmd = decode_body(
        await request.body(), body_type, _settings(state).max_body_bytes, allow_empty=True
    )
    return _posting_response(await action(_ledger(state), transaction_id, cmd, _key(request)))


# --- operations -----------------------------------------------------------------------


@get("/health", tags=["operations"])
async def health(state: State, ready: FromQuery[int] = 0) -> Response[dict]:
    """Process up. With `?ready=1` (what HAProxy asks), the same as /ready."""
    if ready:
        return await _readiness(state)
    return Response({"status": "ok"})


@get("/ready", tags=["operations"])
async def ready_endpoint(state: State) -> Response[dict]:
    """The database answers, and the process is not shutting down."""
    return await _readiness(state)


async def _readiness(state: State) -> Response[dict]:
    if getattr(state, "draining", False):
        return Response({"status": "draining"}, status_code=503)
    if await _ledger(state).ready():
        return Response({"status": "ready"})
    return Response({"status": "database unreachable"}, status_code=503)


@get("/metrics", tags=["operations"], include_in_schema=False)
async def metrics() -> Response[bytes]:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


HANDLERS = [
    create_account,
    get_account,
    patch_account,
    list_account_changes,
    list_accounts,
    get_balance,
    list_entries,
    post_transaction,
    get_transaction,
    reverse_transaction,
    post_pending,
    void_pending,
    health,
    ready_endpoint,
    metrics,
]
