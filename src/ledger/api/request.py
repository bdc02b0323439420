"""What the handlers read from a request besides its body (the idempotency
key, the consistency asked for, a point in time) and how a posting is
answered. HTTP names live here, not in the engine."""

from __future__ import annotations

from datetime import datetime

from litestar import Request, Response
from litestar.di import NamedDependency

from ledger.engine import errors
from ledger.engine.ledger import Ledger
from ledger.engine.model import IdempotencyKey, PostingResult, Transaction
from ledger.settings import Settings

IDEMPOTENCY_HEADER = "Idempotency-Key"
CLIENT_HEADER = "Ledger-Client-Id"
REPLAYED_HEADER = "Idempotent-Replayed"

# What `ledger.app.create_app` injects into the handlers, by name.
LedgerDep = NamedDependency[Ledger]
SettingsDep = NamedDependency[Settings]


def idempotency_key(request: Request, settings: Settings) -> IdempotencyKey:
    """The client's idempotency key. Keys are scoped by the `Ledger-Client-Id`
    header (default "default"): two clients may use the same key. The engine
    judges the key itself; a missing header is named here."""
    client = request.headers.get(CLIENT_HEADER, "default")
    limit = settings.max_client_id_chars
    if not client or len(client) > limit or not client.isprintable():
        raise errors.InvalidValue(
            f"{CLIENT_HEADER} must be 1 to {limit} printable characters", field=CLIENT_HEADER
        )
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        raise errors.MissingIdempotencyKey(
            f"send an {IDEMPOTENCY_HEADER} header: a unique string per posting, reused only "
            "to retry that same posting"
        )
    return IdempotencyKey(client_id=client, key=key)


def posting_response(result: PostingResult) -> Response[Transaction]:
    """201 for a new posting; 200 and `Idempotent-Replayed: true` for the
    stored answer to a key used before."""
    if result.replayed:
        return Response(result.transaction, status_code=200, headers={REPLAYED_HEADER: "true"})
    return Response(result.transaction, status_code=201)


def stale(consistency: str) -> bool:
    """`strong` (default): the latest committed state. `stale`: may be a few
    seconds old, served without contention (a follower read on CockroachDB)."""
    if consistency not in ("strong", "stale"):
        raise errors.InvalidValue(
            f"consistency must be 'strong' or 'stale'; got {consistency!r}", field="consistency"
        )
    return consistency == "stale"


def as_of(raw: str | None) -> datetime | None:
    """An RFC 3339 time with its offset, or None. Raises InvalidValue."""
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
