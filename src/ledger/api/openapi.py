"""OpenAPI for the request bodies the API decodes itself.

Handlers read their bodies with a strict msgspec decoder (see
`problems.decode_body`), so Litestar cannot see the body type. This module
turns msgspec's JSON Schema for a command Struct into Litestar's OpenAPI
objects, so `/schema` still documents every body. The schema is inlined, not
referenced: Litestar replaces `components.schemas` with its own registry when
it builds the document, dropping any configured there.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)

_ALIASES = {(f.metadata.get("alias") or f.name): f.name for f in dataclasses.fields(Schema)}
_NESTED_ONE = {"items", "additionalProperties", "not"}
_NESTED_MANY = {"anyOf", "oneOf", "allOf", "prefixItems"}


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """Replace every `$ref` by the definition it points at (the command types
    are not recursive, so this ends)."""
    if isinstance(node, dict):
        if "$ref" in node:
            return _inline(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
        return {k: _inline(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def _to_schema(node: dict[str, Any]) -> Schema:
    kwargs: dict[str, Any] = {}
    for key, value in node.items():
        name = _ALIASES.get(key)
        if name is None:
            continue
        if key == "type":
            value = (
                [OpenAPIType(v) for v in value] if isinstance(value, list) else OpenAPIType(value)
            )
        elif key == "properties":
            value = {k: _to_schema(v) for k, v in value.items()}
        elif key in _NESTED_ONE and isinstance(value, dict):
            value = _to_schema(value)
        elif key in _NESTED_MANY:
            value = [_to_schema(v) for v in value]
        kwargs[name] = value
    return Schema(**kwargs)


def request_schema(type_: type) -> Schema:
    raw = msgspec.json.schema(type_)
    return _to_schema(_inline(raw, raw.pop("$defs", {})))


# One example body per command, shown in the documentation.
EXAMPLES: dict[str, dict[str, Any]] = {
    "NewAccount": {
        "id": "wallet:alice",
        "currency": "USD",
        "normal_side": "credit",
        "flags": {"debits_must_not_exceed_credits": True},
        "metadata": {"owner": "alice"},
    },
    "AccountPatch": {"status": "frozen", "metadata": {"case": "KYC-7"}},
    "NewTransaction": {
        "entries": [
            {"account_id": "wallet:alice", "direction": "debit", "amount": 1250},
            {"account_id": "merchant:acme", "direction": "credit", "amount": 1200},
            {"account_id": "fees", "direction": "credit", "amount": 50},
        ],
        "description": "order 4711",
        "metadata": {"order": "4711"},
    },
    "NewBatch": {
        "atomic": False,
        "transactions": [
            {
                "idempotency_key": "payout-2026-11-22-0001",
                "entries": [
                    {"account_id": "merchant:acme", "direction": "debit", "amount": 120000},
                    {"account_id": "bank:payouts", "direction": "credit", "amount": 120000},
                ],
                "metadata": {"payout": "po_0001"},
            },
            {
                "idempotency_key": "payout-2026-11-22-0002",
                "entries": [
                    {"account_id": "merchant:zeta", "direction": "debit", "amount": 8000},
                    {"account_id": "bank:payouts", "direction": "credit", "amount": 8000},
                ],
            },
        ],
    },
    "PostPendingRequest": {"amount": 900, "description": "captured for less"},
    "VoidRequest": {"description": "customer cancelled"},
    "ReversalRequest": {"description": "refund of order 4711"},
    "NewKey": {
        "name": "checkout service",
        "client_id": "checkout",
        "scopes": ["accounts:read", "transactions:write", "transactions:read"],
    },
    "NewWebhook": {
        "url": "https://hooks.example.com/ledger",
        "event_types": ["transaction.posted", "transaction.reversed"],
        "description": "payouts pipeline",
    },
    "ReplayRequest": {"after": None},
}


def body_operation(type_: type, *, required: bool = True) -> type[Operation]:
    """An Operation class whose request body is `type_`, for `operation_class=`."""
    schema = request_schema(type_)
    example = EXAMPLES.get(type_.__name__)

    @dataclasses.dataclass
    class _WithBody(Operation):
        def __post_init__(self) -> None:
            self.request_body = RequestBody(
                content={"application/json": OpenAPIMediaType(schema=schema, example=example)},
                required=required,
                description=f"A JSON {type_.__name__}; unknown fields are refused.",
            )

    _WithBody.__name__ = f"{type_.__name__}Operation"
    return _WithBody


def file_operation(media_types: tuple[str, ...], description: str) -> type[Operation]:
    """An Operation class whose request body is a file, as one of
    `media_types`, for `operation_class=`."""
    binary = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
    content = {m: OpenAPIMediaType(schema=binary) for m in media_types if "*" not in m}

    @dataclasses.dataclass
    class _WithFile(Operation):
        def __post_init__(self) -> None:
            self.request_body = RequestBody(content=content, required=True, description=description)

    _WithFile.__name__ = "FileOperation"
    return _WithFile
