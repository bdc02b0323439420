"""The one middleware every routed request passes: it names the request (an
X-Request-Id), admits it (`access.Gate`: key, scope, rate limits), refuses
bodies that are not JSON, and records in the audit trail what a write
request's own transaction could not: a refusal. A write that succeeds
records itself, in its own transaction, and a replay of an answer given
before is recorded by the engine that found it (`ledger.engine.audit`).

The audit row of a refusal is written before the response leaves, so a
client that saw the answer can find the row.
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from litestar import Request
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.params import QueryParameter
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from litestar.utils.empty import value_or_default
from litestar.utils.scope.state import ScopeState

from ledger.api import access, problems
from ledger.api import errors as wire
from ledger.engine import errors
from ledger.engine.access import Actor
from ledger.engine.audit import AuditRecord
from ledger.engine.reads import READ_FROM

log = logging.getLogger(__name__)

ACTOR_STATE = "ledger_actor"
RATE_STATE = "ledger_rate"  # the RateLimit headers of a key with a rate
REQUEST_ID_STATE = "ledger_request_id"
_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class AccessMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        headers = _headers(scope)
        state = scope["state"]
        state[_STARTED_STATE] = time.perf_counter()
        request = state[REQUEST_ID_STATE] = access.request_id(headers.get(b"x-request-id"))
        opt = scope["route_handler"].opt
        declared = opt.get(access.SCOPE_OPT)
        if declared == access.PUBLIC:
            await next_app(scope, receive, send)
            return
        if declared is None and scope["method"] == "OPTIONS":
            declared = access.AUTHENTICATED  # Litestar's own OPTIONS answers
        action = opt.get(access.ACTION_OPT)
        app_state = scope["litestar_app"].state
        gate = app_state.gate
        peer = scope["client"][0] if scope.get("client") else None
        source = gate.source(peer, headers.get(b"x-forwarded-for"), headers.get(b"forwarded"))
        reason = headers.get(b"ledger-reason")
        if action is not None:
            send = _Recorder(scope, send, action, request, source, reason)
        try:
            key = await gate.authenticate(headers.get(b"authorization"), source)
            state[ACTOR_STATE] = access.actor(key, request, source, reason)
            try:
                gate.admit(key, declared, reason)
            finally:
                if key.requests_per_second is not None:
                    state[RATE_STATE] = gate.rate_headers(key)
            _check_media_type(scope["method"], headers, opt.get(access.FILE_BODY_OPT))
            if scope["query_string"] and declared != access.AUTHENTICATED:
                _check_query(scope)
        except errors.LedgerError as exc:
            response = problems.ledger_error_response(exc, scope["path"])
            await response.to_asgi_response(None, Request(scope))(scope, receive, send)
            return
        await next_app(scope, receive, send)


def _headers(scope: Scope) -> dict[bytes, str]:
    """The few request headers this middleware reads, by lower-case name."""
    wanted = _WANTED
    found: dict[bytes, str] = {}
    for name, value in scope["headers"]:
        if name in wanted:
            found[name] = value.decode("latin-1")
    return found


_WANTED = frozenset(
    {
        b"authorization",
        b"x-request-id",
        b"ledger-reason",
        b"content-type",
        b"content-length",
        b"transfer-encoding",
        b"x-forwarded-for",
        b"forwarded",
    }
)


def _check_media_type(
    method: str, headers: dict[bytes, str], files: tuple[str, ...] | None
) -> None:
    """A write's body, when it has one, must be JSON, or, on a route that
    takes a file, one of its media types (`files`; `application/*+xml`
    stands for every XML type, the ISO 20022 ones among them). Never a
    type a browser may send cross-origin without asking first (text/plain,
    a form): a page on another site cannot post here. Raises
    UnsupportedMediaType."""
    if method not in _WRITE_METHODS:
        return
    has_body = headers.get(b"content-length", "0") != "0" or b"transfer-encoding" in headers
    if not has_body:
        return
    media = headers.get(b"content-type", "").split(";", 1)[0].strip().lower()
    if files:
        if media in files or (
            "application/*+xml" in files
            and media.startswith("application/")
            and media.endswith("+xml")
        ):
            return
        expected = ", ".join(files)
    elif media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    ):
        return
    else:
        expected = "application/json"
    raise wire.UnsupportedMediaType(
        f"send the body as Content-Type: {expected}; got {media or 'no Content-Type'!r}",
        content_type=media or None,
    )


def _check_query(scope: Scope) -> None:
    """Every query parameter is one the handler declares: a misspelt or
    unsupported filter (`order=desc`, `metadata.owner=`) must not be
    silently ignored. Raises UnknownQueryParameter."""
    handler = scope["route_handler"]
    allowed = _QUERY_NAMES.get(handler)
    if allowed is None:
        allowed = _QUERY_NAMES[handler] = frozenset(
            p.kwarg_definition.name or p.kwarg_definition.query or name
            for name, p in handler.parsed_fn_signature.parameters.items()
            if isinstance(p.kwarg_definition, QueryParameter)
        )
    given = {name for name, _ in parse_qsl(scope["query_string"].decode("latin-1"), True)}
    prefix = handler.opt.get(access.QUERY_PREFIX_OPT)
    unknown = sorted(n for n in given - allowed if prefix is None or not n.startswith(prefix))
    if unknown:
        raise wire.UnknownQueryParameter(
            f"unknown query parameter{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))}; this endpoint takes "
            f"{', '.join(sorted(allowed)) or 'none'}",
            unknown=unknown,
            allowed=sorted(allowed),
        )


_QUERY_NAMES: dict[Any, frozenset[str]] = {}


class _Recorder:
    """A `send` that holds back the answer to a write request when it is a
    refusal, records it in the audit trail, then sends it. (A replay is
    recorded by the engine, which found it: `ledger.engine.posting.answered`.)"""

    __slots__ = ("_held", "action", "reason", "request", "scope", "send", "source")

    def __init__(self, scope: Scope, send: Send, action: str, request: str, source, reason) -> None:
        self.scope = scope
        self.send = send
        self.action = action
        self.request = request
        self.source = source
        self.reason = reason
        self._held: list[Message] | None = None

    async def __call__(self, message: Message) -> None:
        if self._held is not None:
            self._held.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                await self._record()
                for held in self._held:
                    await self.send(held)
            return
        if message["type"] == "http.response.start" and message["status"] >= 400:
            self._held = [message]
            return
        await self.send(message)

    async def _record(self) -> None:
        assert self._held is not None
        start, *bodies = self._held
        body = b"".join(m.get("body", b"") for m in bodies)
        try:
            answer = msgspec.json.decode(body) if body else {}
        except msgspec.DecodeError:
            answer = {}
        if not isinstance(answer, dict):
            answer = {}
        status = start["status"]
        record = AuditRecord(
            actor=self._actor(),
            action=self.action,
            outcome="refused" if status < 500 else "failed",
            target=self._target(),
            fingerprint=self._fingerprint(),
            problem=_text(answer.get("code")) or str(status),
            detail=_text(answer.get("detail")),
        )
        try:
            await self.scope["litestar_app"].state.ledger.audit.record(record)
        except Exception:  # the answer still goes out; the log says what was lost
            log.exception(
                "could not record %s (%s) of request %s in the audit trail",
                record.action,
                record.outcome,
                self.request,
            )

    def _actor(self) -> Actor:
        actor = self.scope["state"].get(ACTOR_STATE)
        if actor is not None:
            return actor
        return access.actor(None, self.request, self.source, self.reason)

    def _target(self) -> str | None:
        params = self.scope.get("path_params") or {}
        for value in params.values():
            return str(value)[:255]
        return None

    def _fingerprint(self) -> str | None:
        """SHA-256 of the request body, when the handler read one."""
        body = value_or_default(ScopeState.from_scope(self.scope).body, None)
        return hashlib.sha256(body).hexdigest() if body else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


async def echo_request_id(message: Message, scope: Scope) -> None:
    """A `before_send` hook: every response carries the request's id (the
    client's X-Request-Id, or the one made for it), routed or not, and is
    written to the access log once its last byte is handed on. Async on
    purpose: Litestar runs a synchronous hook in a worker thread, which cost
    about 0.3 ms per request."""
    state = scope.get("state")
    if state is None:
        state = {}
    if message["type"] == "http.response.body":
        if not message.get("more_body", False) and _STATUS_STATE in state:
            status = state.pop(_STATUS_STATE)
            if _access.isEnabledFor(logging.INFO):
                _log_access(scope, state, status)
        return
    if message["type"] != "http.response.start":
        return
    state[_STATUS_STATE] = message["status"]
    source = READ_FROM.get()
    if source is not None:
        headers = message.setdefault("headers", [])
        headers.append((b"ledger-read-from", source.server.encode()))
        if source.lag_ms is not None:
            headers.append((b"ledger-replica-lag-ms", str(source.lag_ms).encode()))
    rate = state.get(RATE_STATE)
    if rate:
        headers = message.setdefault("headers", [])
        for name, value in rate:
            if isinstance(headers, list):
                headers.append((name, value))
            else:
                headers.add(name.decode(), value.decode())
    request = state.get(REQUEST_ID_STATE)
    if request is None:
        given = next(
            (v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"x-request-id"),
            None,
        )
        request = state[REQUEST_ID_STATE] = access.request_id(given)
    headers = message.setdefault("headers", [])
    if isinstance(headers, list):
        headers.append((b"x-request-id", request.encode()))
    else:
        headers.add(access.REQUEST_ID_HEADER, request)


# --- the access log ----------------------------------------------------------------------

_access = logging.getLogger("ledger.access")
_STARTED_STATE = "ledger_started"
_STATUS_STATE = "ledger_status"


def _log_access(scope: Scope, state: dict, status: int) -> None:
    """One JSON line: who asked what, the answer's status and how long it
    took. Never a secret: no header value, no query string, no body."""
    started = state.get(_STARTED_STATE)
    actor = state.get(ACTOR_STATE)
    _access.info(
        msgspec.json.encode(
            {
                "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "request_id": state.get(REQUEST_ID_STATE),
                "method": scope.get("method"),
                "route": scope.get("path_template"),
                "path": scope.get("path"),
                "status": status,
                "duration_ms": None
                if started is None
                else round((time.perf_counter() - started) * 1000, 3),
                "client_id": actor.client_id if actor is not None else None,
                "key_id": actor.key_id if actor is not None else None,
            }
        ).decode()
    )
