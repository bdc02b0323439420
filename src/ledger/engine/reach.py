"""The one rule of reach: what a key limited to account-id prefixes may see
and touch, for every resource that belongs to an account.

A resource's *reach* is the tuple of account ids or account-id prefixes it
concerns: a transaction's legs, a reconciliation source's account, a
webhook endpoint's prefixes, a key's prefixes, an audit row's targets. A
key reaches a resource when every one of them lies within the key's own
prefixes; a resource whose reach is None (it concerns every account, or
nobody knows which) is for unlimited keys only.

Outside reach reads as not found (its existence is not confirmed); a write
that would touch it is refused as forbidden, naming the account.

Keys have a *ceiling* too: a key may make, list, read and revoke only keys
whose scopes are a subset of its own and whose prefixes lie within its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from ledger.engine import errors, paging
from ledger.engine.access import Actor, check_reach, reaches
from ledger.engine.model import Page

__all__ = [
    "check_ceiling",
    "check_reach",
    "filtered_page",
    "reaches",
    "sees",
    "within",
    "within_ceiling",
]

# How many rows a filtered listing reads past the ones it keeps before it
# answers a short page with a cursor to go on from (bounds a page's work
# when most rows are out of reach).
MAX_SCANNED_PAGES = 20


def within(reach: Sequence[str] | None, prefixes: Sequence[str] | None) -> bool:
    """Whether every account or prefix of `reach` starts with one of
    `prefixes`. None prefixes reach everything; a None reach (every
    account) lies within None alone; an empty reach within nothing but
    None."""
    if prefixes is None:
        return True
    if not reach:
        return False
    bounds = tuple(prefixes)
    return all(item.startswith(bounds) for item in reach)


def sees(actor: Actor, reach: Sequence[str] | None) -> bool:
    """Whether `actor` may see a resource of `reach`."""
    return within(reach, actor.accounts)


def within_ceiling(actor: Actor, scopes: Iterable[str], accounts: Sequence[str] | None) -> bool:
    """Whether a key of `scopes` and `accounts` lies under `actor`'s key."""
    held = actor.scopes
    return (held is None or set(scopes) <= set(held)) and within(accounts, actor.accounts)


def check_ceiling(actor: Actor, scopes: Iterable[str], accounts: Sequence[str] | None) -> None:
    """Raises Forbidden when a new key would hold a scope `actor` lacks or
    reach an account `actor` does not (the field named in `details`)."""
    if actor.scopes is not None:
        missing = sorted(set(scopes) - set(actor.scopes))
        if missing:
            raise errors.Forbidden(
                f"a key may give only scopes it holds; this one lacks {missing[0]!r}",
                field="scopes",
                scope=missing[0],
            )
    if not within(accounts, actor.accounts):
        limited = ", ".join(repr(p) for p in actor.accounts or ())
        raise errors.Forbidden(
            "a key may give only accounts within its own prefixes "
            f"({limited}); list prefixes that start with one of them",
            field="accounts",
        )


async def filtered_page(
    fetch: Callable[[str | None, int], Awaitable[list[Any]]],
    keep: Callable[[Any], bool],
    cursor: str | None,
    size: int,
    key: Callable[[Any], str],
) -> Page:
    """A page of up to `size` items that `keep` admits, read from `fetch`
    (after, limit) in its order. Rows left out still move the cursor on, so
    a page never repeats one and a listing mostly out of reach costs at
    most MAX_SCANNED_PAGES reads per page (a short page with a cursor
    then says there may be more)."""
    after = paging.decode_cursor(cursor)
    kept: list[Any] = []
    for _ in range(MAX_SCANNED_PAGES):
        rows = await fetch(after, size + 1)
        for row in rows:
            if keep(row):
                if len(kept) == size:
                    return Page(items=kept, next_cursor=paging.encode_cursor(key(kept[-1])))
                kept.append(row)
            after = key(row)
        if len(rows) <= size:
            return Page(items=kept, next_cursor=None)
    return Page(items=kept, next_cursor=paging.encode_cursor(after) if after else None)
