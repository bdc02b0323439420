"""Who is asking, and may they: the scope every route declares, the bearer
key checked against it, the rate limits, and the actor a request acts as.

Every route handler declares its scope with `requires(...)` (or `PUBLIC`
for liveness and readiness); `AccessMiddleware` (in `middleware.py`)
enforces it. A handler that declares nothing is refused to every key, so a
route added later cannot be open by forgetting; `tests/api/test_routes.py`
walks the route table to make sure none forgets.
"""

from __future__ import annotations

import math
import os
import time

from limits import RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

from ledger.api.client_address import Network, client_address
from ledger.engine import Keys, audit, errors
from ledger.engine.access import Actor, ApiKey, key_id_of

SCOPE_OPT = "scope"  # the route handler's `opt` key holding its scope
ACTION_OPT = "audit_action"  # ... and, on a write, the audit action
IDEMPOTENCY_OPT = "idempotency"  # "required" or "optional": the Idempotency-Key header
ANSWERS_OPT = "answers"  # statuses beyond what the rest implies, for the document
FILE_BODY_OPT = "file_body"  # the body is a file, not JSON: the media types it may be
QUERY_PREFIX_OPT = "query_prefix"  # query parameters named <prefix><anything> are the handler's
PUBLIC = "public"  # no key needed: /health and /ready only
AUTHENTICATED = "authenticated"  # any valid key (the API documentation)

BEARER = "bearer"  # the OpenAPI security scheme's name

MAX_FAILING_SOURCES = 100_000

REQUEST_ID_HEADER = "X-Request-Id"
REASON_HEADER = "Ledger-Reason"
MAX_REQUEST_ID_CHARS = 128


def requires(
    scope: str,
    action: str | None = None,
    *,
    idempotency: str | None = None,
    answers: tuple[int, ...] = (),
    file_body: tuple[str, ...] = (),
    query_prefix: str | None = None,
) -> dict:
    """The route decorator arguments that declare `scope` (and, for a
    write, its audit `action`, and whether it takes an Idempotency-Key;
    `answers`: statuses beyond what those imply, for the document), for the
    middleware and the OpenAPI document alike."""
    opt: dict = {SCOPE_OPT: scope}
    if answers:
        opt[ANSWERS_OPT] = answers
    if action is not None:
        opt[ACTION_OPT] = action
    if idempotency is not None:
        opt[IDEMPOTENCY_OPT] = idempotency
    if file_body:
        opt[FILE_BODY_OPT] = file_body
    if query_prefix is not None:
        opt[QUERY_PREFIX_OPT] = query_prefix
    return {"opt": opt, "security": [{BEARER: [scope]}]}


def public() -> dict:
    return {"opt": {SCOPE_OPT: PUBLIC}, "security": []}


def request_id(given: str | None) -> str:
    """The client's X-Request-Id when it is a sensible one, else a new id."""
    if given and len(given) <= MAX_REQUEST_ID_CHARS and given.isascii() and given.isprintable():
        return given
    return os.urandom(16).hex()  # as unique as a UUID4, at a fifth of the cost


class Gate:
    """Authentication and authorisation for one service process.

    A presented key is always checked first (a SHA-256 and a cache lookup),
    so a valid key is never refused for what other requests did. Failures
    are counted, each in a moving window of a minute, per (source address,
    presented key id) and, separately, per source address for key ids the
    ledger does not know. Past `failures_per_minute` in either, a failing
    request gets 429 instead of 401, and an unknown key id this process
    has already looked up is refused without touching the database again.
    Behind a NAT or a load balancer (see `client_address`) one client's
    failures thus never lock out another's valid key.

    A key's own `requests_per_second` is a fixed one-second window in this
    process (with N service processes behind a balancer, a client may reach
    N times it: the limit protects each process); its answers carry
    `RateLimit-Policy` and `RateLimit` headers (draft-ietf-httpapi-
    ratelimit-headers) for the client to pace itself.
    """

    def __init__(
        self, keys: Keys, failures_per_minute: int, proxies: tuple[Network, ...] = ()
    ) -> None:
        self.keys = keys
        self.proxies = proxies
        storage = MemoryStorage()
        self._failures = MovingWindowRateLimiter(storage)
        self._failure_limit = RateLimitItemPerMinute(max(1, failures_per_minute))
        # Places (address and key id, or address and "unknown") that failed
        # lately: only theirs are looked up in the limiter.
        self._failed: set[str] = set()
        self._requests = FixedWindowRateLimiter(storage)
        self._request_limits: dict[int, RateLimitItemPerSecond] = {}

    def source(self, peer: str | None, forwarded_for: str | None, forwarded: str | None):
        """The client's address (see `client_address`)."""
        return client_address(peer, self.proxies, forwarded_for, forwarded)

    async def authenticate(self, authorization: str | None, source: str | None) -> ApiKey:
        """The live key the Authorization header carries. Raises
        Unauthenticated, or RateLimited when this address failed too often
        with this key id, or with unknown ones."""
        address = source or "unknown"
        by_address = f"{address} unknown"
        try:
            token = _bearer(authorization)
            key_id = key_id_of(token)
        except errors.Unauthenticated:
            # No key, or none of ours: counted with the unknown ones.
            self._fail(by_address, "unknown keys")
            raise
        by_key = f"{address} key {key_id}"
        if self.keys.known_missing(key_id) and self._over(by_address):
            raise self._limited(self._failures, self._failure_limit, by_address, "unknown keys")
        try:
            return await self.keys.authenticate(token)
        except errors.Unauthenticated:
            if self.keys.known_missing(key_id):
                self._fail(by_address, "unknown keys")
            else:
                self._fail(by_key, "failed attempts with this key")
            raise

    def _over(self, place: str) -> bool:
        return place in self._failed and not self._failures.test(self._failure_limit, place)

    def _fail(self, place: str, what: str) -> None:
        """Count a failure at `place`; past the limit, raise RateLimited
        (the caller re-raises Unauthenticated otherwise)."""
        if self._over(place):
            raise self._limited(self._failures, self._failure_limit, place, what) from None
        if len(self._failed) >= MAX_FAILING_SOURCES:
            self._failed.clear()  # the limiter itself still counts them
        self._failed.add(place)
        self._failures.hit(self._failure_limit, place)

    def admit(self, key: ApiKey, declared: str | None, reason: str | None) -> None:
        """Whether `key` may use a route declaring `declared` now. Raises
        MissingScope, RateLimited (the key's own rate), InvalidValue (the
        reason)."""
        check_scope(key, declared)
        rate = key.requests_per_second
        if rate is not None and not self._requests.hit(self._request_limit(rate), key.id):
            raise self._limited(self._requests, self._request_limit(rate), key.id, "requests")
        audit.check_reason(reason)

    def _request_limit(self, rate: int) -> RateLimitItemPerSecond:
        limit = self._request_limits.get(rate)
        if limit is None:
            limit = self._request_limits[rate] = RateLimitItemPerSecond(rate)
        return limit

    def rate_headers(self, key: ApiKey) -> list[tuple[bytes, bytes]]:
        """The RateLimit-Policy and RateLimit headers of an answer to `key`
        (none for a key without a rate of its own)."""
        rate = key.requests_per_second
        if rate is None:
            return []
        stats = self._requests.get_window_stats(self._request_limit(rate), key.id)
        reset = max(0, math.ceil(stats.reset_time - time.time()))
        return [
            (b"ratelimit-policy", f'"key";q={rate};w=1'.encode()),
            (b"ratelimit", f'"key";r={stats.remaining};t={reset}'.encode()),
        ]

    @staticmethod
    def _limited(limiter, item, who: str, what: str) -> errors.RateLimited:
        reset = limiter.get_window_stats(item, who).reset_time
        wait = max(1, math.ceil(reset - time.time()))
        return errors.RateLimited(
            f"too many {what} ({item.amount} per {item.GRANULARITY.name}); retry in {wait} s",
            retry_after_seconds=wait,
        )


def _bearer(authorization: str | None) -> str:
    if authorization is None:
        raise errors.Unauthenticated("send an API key: Authorization: Bearer lk_<key id>_<secret>")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise errors.Unauthenticated("the Authorization header must be 'Bearer <API key>'")
    return token.strip()


def actor(key: ApiKey | None, request: str, source: str | None, reason: str | None) -> Actor:
    """The actor of a request made with `key`, or of one no key was admitted
    for (its refusal is recorded all the same). A reason past its limit is
    left out here; `Gate.admit` refuses it."""
    if reason is not None and len(reason) > audit.MAX_REASON_CHARS:
        reason = None
    if key is None:
        return Actor(
            request_id=request,
            client_id="-",
            key_name="unauthenticated",
            source=source,
            reason=reason,
        )
    return Actor(
        request_id=request,
        client_id=key.client_id,
        key_id=key.id,
        key_name=key.name,
        source=source,
        reason=reason,
        accounts=tuple(key.accounts) if key.accounts is not None else None,
        scopes=tuple(key.scopes),
    )


def check_scope(key: ApiKey, declared: str | None) -> None:
    """Raises MissingScope unless `key` has what the route declares."""
    if declared == AUTHENTICATED:
        return
    if declared is None:
        raise errors.MissingScope("this route declares no scope, so no key may use it", scope=None)
    if declared not in key.scopes:
        raise errors.MissingScope(
            f"API key {key.id!r} lacks the scope {declared!r} this route needs",
            scope=declared,
        )
