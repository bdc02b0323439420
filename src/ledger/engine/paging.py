"""Pages of a listing and the opaque cursors that continue them."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from ledger.engine import errors
from ledger.engine.model import Page


def encode_cursor(last_key: str) -> str:
    return base64.urlsafe_b64encode(last_key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    """The key a cursor continues after; None for the first page.
    Raises InvalidCursor when the cursor is not one `encode_cursor` made."""
    if cursor is None or cursor == "":
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        decoded = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise errors.InvalidCursor(f"cursor {cursor!r} is not valid", cursor=cursor) from exc
    if not decoded or not decoded.isprintable():
        raise errors.InvalidCursor(f"cursor {cursor!r} is not valid", cursor=cursor)
    return decoded


def page_size(limit: int | None, default: int, maximum: int) -> int:
    """`limit`, or `default` when none was asked for. Raises InvalidValue."""
    if limit is None:
        return default
    if not 1 <= limit <= maximum:
        raise errors.InvalidValue(
            f"limit must be between 1 and {maximum}", field="limit", value=limit
        )
    return limit


def page(items: list, limit: int, key: Callable[[Any], str]) -> Page:
    """A page of `limit` items from `items`, which holds one more when there
    is a next page (storage is asked for limit + 1)."""
    if len(items) > limit:
        items = items[:limit]
        return Page(items=items, next_cursor=encode_cursor(key(items[-1])))
    return Page(items=items, next_cursor=None)
