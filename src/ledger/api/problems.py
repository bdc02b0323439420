"""The one mapping from errors to HTTP: RFC 9457 problem JSON.

Every error response of the service is made here. The `type` is a stable URI
reference `/problems/<code>`, and `code` repeats the engine's code for clients
that prefer a plain string. Extension members carry the facts of the error
(which key, which account, which field).
"""

from __future__ import annotations

import logging
import re

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from ledger.engine import errors

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

# Most specific class first: the first match decides the status.
_STATUS: list[tuple[type[errors.LedgerError], int]] = [
    (errors.BodyTooLarge, 413),
    (errors.InvalidAmount, 422),
    (errors.TooFewLegs, 422),
    (errors.TooManyLegs, 422),
    (errors.UnbalancedTransaction, 422),
    (errors.InvalidAccount, 422),
    (errors.HotAccountLimited, 422),
    (errors.InvalidResolution, 422),
    (errors.UnknownAccount, 422),
    (errors.CurrencyMismatch, 422),
    (errors.LimitExceeded, 422),
    (errors.BalanceOverflow, 422),
    (errors.InvalidValue, 422),
    (errors.InvalidRequest, 400),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.Unavailable, 503),
]


def status_of(exc: errors.LedgerError) -> int:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def problem(
    status: int, code: str, title: str, detail: str, instance: str | None = None, **extra
) -> Response:
    body = {
        "type": f"/problems/{code}",
        "code": code,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    headers = {"Retry-After": "1"} if status == 503 else None
    return Response(
        content=msgspec.json.encode(body),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def ledger_error_response(exc: errors.LedgerError, instance: str | None = None) -> Response:
    return problem(status_of(exc), exc.code, exc.title, exc.detail, instance, **exc.details)


# --- strict decoding of request bodies ------------------------------------------------

_AT = re.compile(r" - at `(?P<path>[^`]*)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<field>[^`]*)`")
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]*)`")
_EXPECTED = re.compile(r"^Expected `(?P<expected>[^`]*)`, got `(?P<got>[^`]*)`")

_decoders: dict[type, msgspec.json.Decoder] = {}


def decode_body(body: bytes, type_: type, max_bytes: int, *, allow_empty: bool = False):
    """Decode a JSON body strictly (no "1" for 1, no 1.0 for 1) into `type_`.

    Litestar's own body parameter converts leniently, which a ledger must not
    do, so bodies are decoded here. Raises BodyTooLarge, MalformedJson,
    UnknownField, MissingField, FloatAmount, WrongType, InvalidValue.
    """
    if len(body) > max_bytes:
        raise errors.BodyTooLarge(
            f"the body is {len(body)} bytes; the limit is {max_bytes}", max_bytes=max_bytes
        )
    if not body.strip():
        if allow_empty:
            body = b"{}"
        else:
            raise errors.MalformedJson("the body is empty; send a JSON object")
    decoder = _decoders.get(type_)
    if decoder is None:
        decoder = _decoders[type_] = msgspec.json.Decoder(type_)
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise _classify_validation(str(exc)) from exc
    except msgspec.DecodeError as exc:
        raise errors.MalformedJson(str(exc)) from exc


def _classify_validation(message: str) -> errors.LedgerError:
    at = _AT.search(message)
    path = at.group("path") if at else "$"
    pointer = _json_pointer(path)
    if m := _UNKNOWN.match(message):
        field = m.group("field")
        return errors.UnknownField(
            f"unknown field {field!r} at {path}", pointer=f"{pointer}/{field}".replace("//", "/")
        )
    if m := _MISSING.match(message):
        field = m.group("field")
        return errors.MissingField(
            f"missing required field {field!r} at {path}",
            pointer=f"{pointer}/{field}".replace("//", "/"),
        )
    if m := _EXPECTED.match(message):
        expected, got = m.group("expected"), m.group("got")
        if expected == "int" and got == "float":
            return errors.FloatAmount(
                f"{path} must be an integer count of minor units, not a float", pointer=pointer
            )
        return errors.WrongType(
            f"{path} must be of type {expected}, got {got}",
            pointer=pointer,
            expected=expected,
            got=got,
        )
    return errors.InvalidValue(message, pointer=pointer)


def _json_pointer(path: str) -> str:
    """`$.entries[0].amount` -> `/entries/0/amount` (RFC 6901)."""
    pointer = path.removeprefix("$")
    pointer = re.sub(r"\[(\d+)\]", r"/\1", pointer).replace(".", "/")
    return pointer or "/"


# --- exception handlers ---------------------------------------------------------------


def on_ledger_error(request: Request, exc: errors.LedgerError) -> Response:
    return ledger_error_response(exc, request.url.path)


def on_http_exception(request: Request, exc: HTTPException) -> Response:
    """Litestar's own refusals (no such route, wrong method, body over the
    server limit, a query parameter of the wrong type) as problems too."""
    status = exc.status_code
    if status == 413:
        return ledger_error_response(
            errors.BodyTooLarge("the request body is larger than allowed"), request.url.path
        )
    if isinstance(exc, ValidationException):
        details = [
            f"{e.get('key')}: {e.get('message')}" for e in (exc.extra or []) if isinstance(e, dict)
        ]
        return problem(
            400,
            errors.WrongType.code,
            errors.WrongType.title,
            "; ".join(details) or str(exc.detail),
            request.url.path,
        )
    code = {404: "not-found", 405: "method-not-allowed"}.get(status, "http-error")
    return problem(status, code, str(exc.detail), str(exc.detail), request.url.path)


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
