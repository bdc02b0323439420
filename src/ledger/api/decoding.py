"""Strict decoding of request bodies: the wire format's one way in.

Litestar's own body parameter converts leniently ("1" for 1, 1.0 for 1),
which a ledger must not do, so handlers read their bodies through here.
"""

from __future__ import annotations

import re

import msgspec

from ledger.api import errors as wire
from ledger.engine import errors

_AT = re.compile(r" - at `(?P<path>[^`]*)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<field>[^`]*)`")
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]*)`")
_EXPECTED = re.compile(r"^Expected `(?P<expected>[^`]*)`, got `(?P<got>[^`]*)`")

_decoders: dict[type, msgspec.json.Decoder] = {}


def decode_body(body: bytes, type_: type, max_bytes: int, *, allow_empty: bool = False):
    """Decode a JSON body strictly (no "1" for 1, no 1.0 for 1) into `type_`.

    Raises BodyTooLarge, MalformedJson, UnknownField, MissingField,
    FloatAmount, WrongType, InvalidValue.
    """
    if len(body) > max_bytes:
        raise wire.BodyTooLarge(
            f"the body is {len(body)} bytes; the limit is {max_bytes}", max_bytes=max_bytes
        )
    if not body.strip():
        if allow_empty:
            body = b"{}"
        else:
            raise wire.MalformedJson("the body is empty; send a JSON object")
    decoder = _decoders.get(type_)
    if decoder is None:
        decoder = _decoders[type_] = msgspec.json.Decoder(type_)
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise _classify_validation(str(exc)) from exc
    except msgspec.DecodeError as exc:
        raise wire.MalformedJson(str(exc)) from exc
    except RecursionError as exc:
        # msgspec gives up on a body nested deeper than Python's stack allows.
        raise wire.MalformedJson("the body is nested too deeply to read") from exc


def _classify_validation(message: str) -> errors.LedgerError:
    at = _AT.search(message)
    path = at.group("path") if at else "$"
    pointer = _json_pointer(path)
    if m := _UNKNOWN.match(message):
        field = m.group("field")
        return wire.UnknownField(
            f"unknown field {field!r} at {path}", pointer=f"{pointer}/{field}".replace("//", "/")
        )
    if m := _MISSING.match(message):
        field = m.group("field")
        return wire.MissingField(
            f"missing required field {field!r} at {path}",
            pointer=f"{pointer}/{field}".replace("//", "/"),
        )
    if m := _EXPECTED.match(message):
        expected, got = m.group("expected"), m.group("got")
        if expected == "int" and got == "float":
            return wire.FloatAmount(
                f"{path} must be an integer count of minor units, not a float", pointer=pointer
            )
        return wire.WrongType(
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
