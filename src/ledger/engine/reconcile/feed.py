"""Reconciliation exceptions as events: the second stream of the event feed.

A run that opens an exception, or finds an open one again with a higher
severity, writes one event row for it in the run's own database
transaction, numbered by a counter the run's transaction bumps last: the
counter's row lock is held until commit, so numbers are given in commit
order and a reader that sees one number sees every lower one. An event
exists exactly when the run that found the exception committed (a dry run,
or a run that rolled back, has none), and no posting waits for the counter:
only runs take it.

An event's `data` is the exception as it stood then (open, with the
severity and amount the run gave it), so its body never changes whenever it
is read or delivered again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, NamedTuple

import msgspec

from ledger.engine.reconcile.model import SEVERITIES, ReconException

EXCEPTION = "reconciliation.exception"


class StoredExceptionEvent(NamedTuple):
    """An event row: its place in the stream, the source's ledger account
    (what the feed's account filter and a key's reach look at), and the
    exception as it stood."""

    sequence: int
    account_id: str
    exception: ReconException
    occurred_at: datetime


class ExceptionEvent(msgspec.Struct, frozen=True, tag_field="stream", tag="reconciliation"):
    id: str
    # Its place in the reconciliation stream (not the journal's sequence).
    sequence: int
    type: Literal["reconciliation.exception"]
    occurred_at: datetime
    data: ReconException
    # The cursor that continues after this event (the SSE id).
    cursor: str


def event_id(sequence: int) -> str:
    """Stable for ever (a number is given once, in commit order): consumers
    dedupe on it, and it is the `webhook-id` of every delivery."""
    return f"evt_rec_{sequence}"


def exception_event(stored: StoredExceptionEvent, cursor: str) -> ExceptionEvent:
    return ExceptionEvent(
        id=event_id(stored.sequence),
        sequence=stored.sequence,
        type=EXCEPTION,
        occurred_at=stored.occurred_at,
        data=stored.exception,
        cursor=cursor,
    )


def raised(before: str, after: str) -> bool:
    """Whether a severity went up (an open exception found again is an
    event only then)."""
    return SEVERITIES.index(after) > SEVERITIES.index(before)
