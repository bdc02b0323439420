"""The reconciliation stream of the event feed (`ledger.engine.reconcile.feed`):
a run appends its events, numbered by the counter row it updates last; the
feed reads them after a number. The same statements on both databases."""

from __future__ import annotations

import msgspec
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.engine.reconcile.feed import StoredExceptionEvent
from ledger.storage.queries.reconciliation.queries import exception_of
from ledger.storage.queries.reconciliation.tables import (
    recon_event_counter,
    recon_events,
    recon_exceptions,
)

e = recon_events.c
counter = recon_event_counter.c

_HEAD = select(counter.last_sequence).where(counter.id == 1)
_EVENTS = select(
    recon_exceptions,
    e.sequence,
    e.account_id,
    e.occurred_at,
    e.severity.label("event_severity"),
    e.amount.label("event_amount"),
    e.run_id.label("event_run_id"),
).select_from(recon_events.join(recon_exceptions, recon_exceptions.c.id == e.exception_id))


async def append(
    conn: AsyncConnection, run_id: str, account_id: str, raised: list[tuple[str, str, int]]
) -> None:
    """One event per (exception id, severity, amount), in the given order.
    The counter's update comes last in the run's transaction, so its row
    lock (held to commit, which orders the numbers) is held briefly."""
    if not raised:
        return
    last = (
        await conn.execute(
            update(recon_event_counter)
            .where(counter.id == 1)
            .values(last_sequence=counter.last_sequence + len(raised))
            .returning(counter.last_sequence)
        )
    ).scalar_one()
    first = last - len(raised) + 1
    await conn.execute(
        recon_events.insert(),
        [
            {
                "sequence": first + n,
                "exception_id": exception_id,
                "account_id": account_id,
                "severity": severity,
                "amount": amount,
                "run_id": run_id,
            }
            for n, (exception_id, severity, amount) in enumerate(raised)
        ],
    )


async def head(conn: AsyncConnection) -> int:
    """The last number given (0 before the first event)."""
    return (await conn.execute(_HEAD)).scalar_one_or_none() or 0


async def events_after(
    conn: AsyncConnection, after: int, limit: int, account_id: str | None
) -> tuple[list[StoredExceptionEvent], int]:
    """Up to `limit` events after `after` (of `account_id`'s sources), and
    how far the read reached: the last one returned when `limit` were
    found, else the head read in the same snapshot (every number up to it
    is committed and visible there)."""
    query = _EVENTS.where(e.sequence > after).order_by(e.sequence).limit(limit)
    if account_id is not None:
        query = query.where(e.account_id == account_id)
    rows = (await conn.execute(query)).all()
    found = [
        StoredExceptionEvent(
            sequence=r.sequence,
            account_id=r.account_id,
            exception=msgspec.structs.replace(
                exception_of(r),
                severity=r.event_severity,
                amount=r.event_amount,
                run_id=r.event_run_id,
                status="open",
                resolution=None,
                note=None,
                resolved_at=None,
                adjustment_transaction_id=None,
            ),
            occurred_at=r.occurred_at,
        )
        for r in rows
    ]
    if len(found) >= limit:
        return found, found[-1].sequence
    return found, max(after, await head(conn))
