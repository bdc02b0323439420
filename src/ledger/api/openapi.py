"""OpenAPI for the request bodies the API decodes itself.

Handlers read their bodies with a strict msgspec decoder (see
`problems.decode_body`), so Litestar cannot see the body type. This module
turns msgspec's JSON Schema for the command Structs into Litestar's OpenAPI
objects, so `/schema` still documents every body.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec
from litestar.openapi.spec import (
    Components,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    Reference,
    RequestBody,
    Schema,
)

PREFIX = "Request"
_ALIASES = {(f.metadata.get("alias") or f.name): f.name for f in dataclasses.fields(Schema)}


def _to_schema(node: Any) -> Schema | Reference:
    if "$ref" in node:
        return Reference(ref=node["$ref"])
    kwargs: dict[str, Any] = {}
    for key, value in node.items():
        name = _ALIASES.get(key)
        if name is None:
            continue
        if key == "type":
            value = (
                [OpenAPIType(v) for v in value] if isinstance(value, list) else OpenAPIType(value)
            )
        elif key in ("properties",):
            value = {k: _to_schema(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            value = _to_schema(value)
        elif key in ("anyOf", "oneOf", "allOf"):
            value = [_to_schema(v) for v in value]
        kwargs[name] = value
    return Schema(**kwargs)


def components(*types: type) -> Components:
    _, defs = msgspec.json.schema_components(
        types, ref_template=f"#/components/schemas/{PREFIX}{{name}}"
    )
    return Components(schemas={f"{PREFIX}{name}": _to_schema(d) for name, d in defs.items()})


def body_operation(type_: type, *, required: bool = True) -> type[Operation]:
    """An Operation class whose request body is `type_`, for `operation_class=`."""
    ref = Reference(ref=f"#/components/schemas/{PREFIX}{type_.__name__}")

    @dataclasses.dataclass
    class _WithBody(Operation):
        def __post_init__(self) -> None:
            self.request_body = RequestBody(
                content={"application/json": OpenAPIMediaType(schema=ref)}, required=required
            )

    _WithBody.__name__ = f"{type_.__name__}Operation"
    return _WithBody
