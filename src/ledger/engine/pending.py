"""Pending transactions: their state and deadline, derived here once, and
what may be done to one. Storage reads the raw facts (the timeout, the
resolution that points at it) and builds its records with these functions."""

from __future__ import annotations

from datetime import datetime, timedelta

from ledger.engine import errors
from ledger.engine.model import PendingStatus, Transaction


def state(resolved_as: str | None) -> PendingStatus:
    """A pending transaction's state: how it was resolved, or still pending."""
    return resolved_as or "pending"  # type: ignore[return-value]


def entry_state(pending: bool, resolved_as: str | None) -> PendingStatus:
    """An entry's state: posted, or its pending transaction's state."""
    return state(resolved_as) if pending else "posted"


def expires_at(created_at: datetime, timeout_seconds: int | None) -> datetime | None:
    if timeout_seconds is None:
        return None
    return created_at + timedelta(seconds=timeout_seconds)


def fields(
    created_at: datetime,
    timeout_seconds: int | None,
    resolved_as: str | None = None,
    resolved_by: str | None = None,
) -> dict:
    """The fields a pending transaction's record carries."""
    return {
        "pending": True,
        "state": state(resolved_as),
        "resolved_by": resolved_by,
        "expires_at": expires_at(created_at, timeout_seconds),
    }


def check_resolvable(original: Transaction, resolution: str, now: datetime) -> None:
    """Whether `original` may be resolved as `resolution` at the database's
    time `now`. An expiry is due only once the deadline has passed; a post
    or void only before it.

    Raises NotPending, AlreadyResolved, PendingExpired.
    """
    transaction_id = original.id
    if not original.pending:
        raise errors.NotPending(
            f"transaction {transaction_id!r} is not pending", transaction_id=transaction_id
        )
    if original.state == "expired" and resolution != "expired":
        # The same answer whether or not the sweeper got there first.
        raise _expired(original)
    if original.resolved_by is not None:
        raise errors.AlreadyResolved(
            f"pending transaction {transaction_id!r} was already {original.state} "
            f"by {original.resolved_by}",
            transaction_id=transaction_id,
            state=original.state,
            resolved_by=original.resolved_by,
        )
    overdue = is_overdue(original, now)
    if resolution == "expired" and not overdue:
        raise errors.AlreadyResolved(
            f"pending transaction {transaction_id!r} is not due to expire yet",
            transaction_id=transaction_id,
        )
    if resolution != "expired" and overdue:
        raise _expired(original)


def is_overdue(original: Transaction, now: datetime) -> bool:
    """Whether a pending transaction's deadline has passed at `now`
    (resolved or not)."""
    return original.expires_at is not None and now >= original.expires_at


def _expired(original: Transaction) -> errors.PendingExpired:
    assert original.expires_at is not None
    return errors.PendingExpired(
        f"pending transaction {original.id!r} expired at {original.expires_at.isoformat()}",
        transaction_id=original.id,
        expires_at=original.expires_at.isoformat(),
    )
