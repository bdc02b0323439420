"""The one mapping from errors to HTTP: RFC 9457 problem JSON.

Every error response of the service is made here. The status comes from the
kind of refusal, the base class an error has in the engine's tree (see
`ledger.engine.errors`); no error is listed one by one. The `type` is a
stable URI reference `/problems/<code>`, and `code` repeats the engine's code
for clients that prefer a plain string. Extension members carry the facts of
the error (which key, which account, which field).
"""

from __future__ import annotations

import logging

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from ledger.api import errors as wire
from ledger.engine import errors

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

STATUS_BY_KIND: dict[type[errors.LedgerError], int] = {
    errors.RequestMalformed: 400,
    wire.UnsupportedMediaType: 415,
    errors.RequestTooLarge: 413,
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
    errors.RateLimited: 429,
    errors.RuleViolated: 422,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.Unavailable: 503,
}


def status_of(exc: errors.LedgerError) -> int:
    return status_of_kind(type(exc))


def status_of_kind(kind: type[errors.LedgerError]) -> int:
    """The status of the nearest kind among the error's base classes."""
    for cls in kind.__mro__:
        status = STATUS_BY_KIND.get(cls)
        if status is not None:
            return status
    return 500


def problem_body(
    status: int, code: str, title: str, detail: str, instance: str | None = None, /, **extra
) -> dict:
    """The problem JSON's members."""
    body = {
        "type": f"/problems/{code}",
        "code": code,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    # Extension members never replace the standard ones.
    body.update((k, v) for k, v in extra.items() if k not in body)
    return body


def error_body(exc: errors.LedgerError, instance: str | None = None) -> dict:
    """The problem JSON a refusal gets (a batch item's carries it inside a
    200 answer)."""
    return problem_body(status_of(exc), exc.code, exc.title, exc.detail, instance, **exc.details)


def problem(
    status: int, code: str, title: str, detail: str, instance: str | None = None, /, **extra
) -> Response:
    body = problem_body(status, code, title, detail, instance, **extra)
    headers = None
    if status == 503:
        headers = {"Retry-After": "1"}
    elif status == 429:
        headers = {"Retry-After": str(extra.get("retry_after_seconds", 1))}
    elif status == 401:
        headers = {"WWW-Authenticate": 'Bearer realm="ledger"'}
    return Response(
        content=msgspec.json.encode(body),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def ledger_error_response(exc: errors.LedgerError, instance: str | None = None) -> Response:
    return problem(status_of(exc), exc.code, exc.title, exc.detail, instance, **exc.details)


# --- exception handlers ---------------------------------------------------------------


def on_ledger_error(request: Request, exc: errors.LedgerError) -> Response:
    return ledger_error_response(exc, request.url.path)


def on_http_exception(request: Request, exc: HTTPException) -> Response:
    """Litestar's own refusals (no such route, wrong method, body over the
    server limit, a query parameter of the wrong type) as problems too."""
    status = exc.status_code
    if status == 413:
        limit = request.route_handler.resolve_request_max_body_size()
        return ledger_error_response(
            wire.BodyTooLarge(
                f"the request body is larger than the limit of {limit} bytes", max_bytes=limit
            ),
            request.url.path,
        )
    if isinstance(exc, ValidationException):
        details = [
            f"{e.get('key')}: {e.get('message')}" for e in (exc.extra or []) if isinstance(e, dict)
        ]
        return problem(
            400,
            wire.WrongType.code,
            wire.WrongType.title,
            "; ".join(details) or str(exc.detail),
            request.url.path,
        )
    code = {404: "not-found", 405: "method-not-allowed"}.get(status, "http-error")
    response = problem(status, code, str(exc.detail), str(exc.detail), request.url.path)
    if status == 405 and exc.headers and "allow" in exc.headers:
        # The methods the path has, as RFC 9110 asks of a 405.
        response.headers["Allow"] = exc.headers["allow"]
    return response


def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return problem(
        500,
        "internal-error",
        "Internal error",
        "the service failed unexpectedly. Retrying with the same Idempotency-Key is safe: "
        "it returns the posting if one was written, or writes it once",
        request.url.path,
    )


EXCEPTION_HANDLERS = {
    errors.LedgerError: on_ledger_error,
    HTTPException: on_http_exception,
    Exception: on_unexpected,
}
