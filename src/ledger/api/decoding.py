"""Strict decoding of request bodies: the wire format's one way in.

Litestar's own body parameter converts leniently ("1" for 1, 1.0 for 1),
which a ledger must not do, so handlers read their bodies through here.
"""

from __future__ import annotations

import json
import re

import msgspec
import msgspec.inspect as mi

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
        decoded = decoder.decode(body)
        # msgspec keeps the last of two equal keys; another parser may keep
        # the first. One body must not mean two things: refuse it.
        json.loads(body, object_pairs_hook=_refuse_duplicate_keys)
    except msgspec.ValidationError as exc:
        raise _classify_validation(str(exc), type_) from exc
    except msgspec.DecodeError as exc:
        raise wire.MalformedJson(str(exc)) from exc
    except RecursionError as exc:
        # The parser gives up on a body nested deeper than Python's stack allows.
        raise wire.MalformedJson("the body is nested too deeply to read") from exc
    return decoded


def _refuse_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    seen: dict[str, object] = {}
    for key, value in pairs:
        if key in seen:
            raise wire.DuplicateKey(
                f"the key {key!r} appears twice in one JSON object; send it once", key=key
            )
        seen[key] = value
    return seen


def _classify_validation(message: str, type_: type) -> errors.LedgerError:
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
    allowed = _literal_values(type_, path)
    if message.startswith("Invalid enum value") and allowed:
        return errors.InvalidValue(
            f"{message}; allowed: {', '.join(map(repr, allowed))}",
            pointer=pointer,
            allowed=list(allowed),
        )
    return errors.InvalidValue(message, pointer=pointer)


_STEP = re.compile(r"\.(?P<field>[A-Za-z_][A-Za-z0-9_]*)|\[(?P<index>\d+)\]")


def _literal_values(type_: type, path: str) -> tuple | None:
    """The values a Literal field at `path` ($.entries[0].direction) allows,
    found by walking the body's type; None when it is not one."""
    node: mi.Type = mi.type_info(type_)
    for step in _STEP.finditer(path.removeprefix("$")):
        node = _unwrap(node)
        if step.group("field") and isinstance(node, mi.StructType):
            by_name = {f.encode_name: f.type for f in node.fields}
            node = by_name.get(step.group("field"), mi.AnyType())
        elif step.group("index") and isinstance(node, mi.ListType):
            node = node.item_type
        else:
            return None
    node = _unwrap(node)
    return tuple(node.values) if isinstance(node, mi.LiteralType) else None


def _unwrap(node: mi.Type) -> mi.Type:
    """The one type of an optional (`X | None`)."""
    if isinstance(node, mi.UnionType):
        others = [t for t in node.types if not isinstance(t, mi.NoneType)]
        if len(others) == 1:
            return others[0]
    return node


def _json_pointer(path: str) -> str:
    """`$.entries[0].amount` -> `/entries/0/amount` (RFC 6901)."""
    pointer = path.removeprefix("$")
    pointer = re.sub(r"\[(\d+)\]", r"/\1", pointer).replace(".", "/")
    return pointer or "/"
