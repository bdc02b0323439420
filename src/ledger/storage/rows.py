"""Rows into the engine's records, and cursor keys into column values."""

from __future__ import annotations

import uuid
from typing import Any

from ledger.engine import errors, pending
from ledger.engine.model import (
    Account,
    AccountFlags,
    AccountState,
    HeaderRef,
    PostedLeg,
    Transaction,
    TransactionHeader,
)


def account(row: Any) -> Account:
    return Account(
        id=row.id,
        currency=row.currency,
        scale=row.scale,
        normal_side=row.normal_side,
        flags=AccountFlags(
            debits_must_not_exceed_credits=row.debits_must_not_exceed_credits,
            credits_must_not_exceed_debits=row.credits_must_not_exceed_debits,
        ),
        metadata=row.metadata,
        created_at=row.created_at,
        hot=getattr(row, "hot", False),
        status=row.status,
    )


def account_state(row: Any) -> AccountState:
    return AccountState(
        account(row),
        row.posted_debits,
        row.posted_credits,
        row.pending_debits,
        row.pending_credits,
    )


def parse_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return None


def uuid_after(after: str | None, listing: str) -> uuid.UUID | None:
    """The id a page continues after (the key in its cursor), or None for
    the first page. Raises InvalidCursor when the key is not an id."""
    if after is None:
        return None
    found = parse_uuid(after)
    if found is None:
        raise errors.InvalidCursor(f"cursor is not valid for {listing}")
    return found


def text_or_none(value: Any) -> str | None:
    """A column's value as text (a UUID's canonical form), None kept."""
    return None if value is None else str(value)


def transaction_record(
    ref: HeaderRef, header: TransactionHeader, written: list[dict]
) -> Transaction:
    """The record of the transaction just written."""
    return Transaction(
        id=ref.id,
        entries=[
            PostedLeg(
                r["account_id"], r["direction"], r["amount"], r["currency"], str(r["entry_id"])
            )
            for r in written
        ],
        description=header.description,
        metadata=header.metadata,
        created_at=ref.created_at,
        reverses=header.reverses,
        reversed_by=None,
        resolves=header.resolves,
        resolution=header.resolution,
        **(pending.fields(ref.created_at, header.timeout_seconds) if header.pending else {}),
    )
