"""What the handlers read from a request besides its body (who asks, the
idempotency key, the consistency asked for, a point in time) and how a
posting is answered. HTTP names live here, not in the engine."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from litestar import Request, Response
from litestar.di import NamedDependency

from ledger.api.access import IDEMPOTENCY_OPT
from ledger.api.middleware import ACTOR_STATE
from ledger.engine import Ledger, errors
from ledger.engine.access import Actor
from ledger.engine.model import IdempotencyKey, PostingResult, Transaction
from ledger.settings import Settings

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"

# What `ledger.app.create_app` injects into the handlers, by name.
LedgerDep = NamedDependency[Ledger]
SettingsDep = NamedDependency[Settings]


def actor(request: Request) -> Actor:
    """Who the request acts as: set by `middleware.AccessMiddleware` once
    the key was admitted."""
    return request.scope["state"][ACTOR_STATE]


def idempotency_key(request: Request) -> IdempotencyKey | None:
    """The client's idempotency key, scoped by the API key's client id: the
    keys of one client share it (so rotating a key keeps replays working),
    and two clients may use the same key. Whether the route needs one is
    declared once, on the route (`access.requires(idempotency=...)`), which
    the OpenAPI document reads too: a missing key is named here where it is
    "required", and is None where it is "optional" (the engine says when
    it is needed after all). The engine judges the key itself."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is not None:
        return IdempotencyKey(actor(request).client_id, key)
    declared = request.route_handler.opt.get(IDEMPOTENCY_OPT)
    assert declared in ("required", "optional"), "the route declares no Idempotency-Key"
    if declared == "required":
        raise errors.MissingIdempotencyKey(
            f"send an {IDEMPOTENCY_HEADER} header: a unique string per request, reused only "
            "to retry that same request"
        )
    return None


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


def as_of(raw: str | None, field: str = "as_of") -> datetime | None:
    """An RFC 3339 time with its offset, or a date (YYYY-MM-DD: its
    midnight UTC), or None. Raises InvalidValue naming `field`."""
    if raw is None:
        return None
    if len(raw) == len("YYYY-MM-DD"):
        try:
            return datetime.combine(date.fromisoformat(raw), time(), UTC)
        except ValueError:
            pass
    try:
        value = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise errors.InvalidValue(
            f"{field} must be an RFC 3339 time such as 2026-01-31T23:59:59Z, or a date such as "
            f"2026-01-31; got {raw!r}",
            field=field,
        ) from exc
    if value.tzinfo is None:
        raise errors.InvalidValue(
            f"{field} must carry a time zone offset (Z or +hh:mm), or be a date alone",
            field=field,
        )
    return value
