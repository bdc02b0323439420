"""What the free-form parts of a request (metadata, description) may hold:
limited in size and depth, valid Unicode, no NUL (which no text column can
store). Pure functions, like `ledger.engine.rules`."""

from __future__ import annotations

import msgspec

from ledger.engine import errors
from ledger.engine.limits import Limits


def _check_depth(value: object, limit: int) -> None:
    """Walk the metadata without recursion (a body nested a thousand deep
    must be refused, not overflow the stack). Raises InvalidValue."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = list(node.values())
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            raise errors.InvalidValue(
                f"metadata is nested more than {limit} levels deep", field="metadata"
            )
        stack.extend((child, depth + 1) for child in children)


def check_metadata(metadata: dict, description: str | None, limits: Limits) -> None:
    """Raises InvalidValue when metadata or description are larger than
    allowed, nested deeper than allowed, or hold a NUL character (which no
    text column can store)."""
    _check_depth(metadata, limits.max_metadata_depth)
    try:
        encoded = msgspec.json.encode(metadata)
        if description is not None:
            description.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise errors.InvalidValue(
            "text must be valid Unicode (no lone surrogates)", field="description/metadata"
        ) from exc
    size = len(encoded)
    if b"\\u0000" in encoded:
        raise errors.InvalidValue("metadata must not contain NUL characters", field="metadata")
    if description is not None and "\x00" in description:
        raise errors.InvalidValue(
            "description must not contain NUL characters", field="description"
        )
    if size > limits.max_metadata_bytes:
        raise errors.InvalidValue(
            f"metadata is {size} bytes encoded; the limit is {limits.max_metadata_bytes}",
            field="metadata",
        )
    if description is not None and len(description) > limits.max_description_chars:
        raise errors.InvalidValue(
            f"description has {len(description)} characters; "
            f"the limit is {limits.max_description_chars}",
            field="description",
        )


def check_text(value: str | None, field: str, max_chars: int = 255) -> None:
    """A short text a query filters by: at most `max_chars`, valid Unicode,
    no NUL (which no text column can store, and which would otherwise reach
    the database as an error instead of a refusal). Raises InvalidValue."""
    if value is None:
        return
    if len(value) > max_chars or "\x00" in value:
        raise errors.InvalidValue(
            f"{field} must be at most {max_chars} characters with no NUL", field=field
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise errors.InvalidValue(
            f"{field} must be valid Unicode (no lone surrogates)", field=field
        ) from exc
