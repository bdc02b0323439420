"""What a reconciliation run reads (the window's lines, the journal's
entries of the account by its primary key's time-ordered range, what a
person settled, the open exceptions) and writes (the run, its matches, the
exceptions it opens, updates and closes)."""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import aliased

from ledger.engine.reconcile.model import (
    PERSON_RESOLUTIONS,
    Counts,
    Decision,
    JournalRow,
    Loaded,
    Match,
    Run,
    Source,
    Window,
    new_id,
)
from ledger.storage import ids
from ledger.storage.queries.reconciliation import feed
from ledger.storage.queries.reconciliation.queries import line_of, x
from ledger.storage.queries.reconciliation.tables import (
    recon_exceptions,
    recon_lines,
    recon_matches,
    recon_runs,
)
from ledger.storage.tables import entries, transactions

original = aliased(transactions)


async def load(conn: AsyncConnection, source: Source, window: Window) -> Loaded:
    c = recon_lines.c
    lines = await conn.execute(
        select(recon_lines).where(
            c.source_id == source.id, c.booked_on >= window.from_, c.booked_on < window.to
        )
    )
    return Loaded(
        lines=[line_of(r) for r in lines],
        journal=await journal_rows(conn, source.account_id, window),
        settled=await settled(conn, source.id),
        open=[
            (r.id, r.subject, r[2], r.severity)
            for r in await conn.execute(
                select(x.id, x.subject, x["class"], x.severity)
                .where(x.source_id == source.id, x.status == "open")
                .order_by(x.id)
            )
        ],
    )


async def journal_rows(conn: AsyncConnection, account_id: str, window: Window) -> list[JournalRow]:
    """The account's posted entries in the window: by the primary key's
    range (entry ids are time-ordered), then exactly by time."""
    e, t, o = entries.c, transactions.c, original.c
    query = (
        select(
            e.entry_id,
            e.transaction_id,
            e.direction,
            e.amount,
            e.created_at,
            t.metadata,
            t.idempotency_key,
            t.reverses,
            o.metadata.label("original_metadata"),
            o.idempotency_key.label("original_key"),
        )
        .select_from(
            entries.join(transactions, t.id == e.transaction_id).outerjoin(
                original, o.id == func.coalesce(t.reverses, t.resolves)
            )
        )
        .where(
            e.account_id == account_id,
            e.entry_id >= ids.entry_id_floor(window.start),
            e.entry_id < ids.entry_id_floor(window.end),
            e.created_at >= window.start,
            e.created_at < window.end,
            e.pending.is_(False),
        )
    )
    return [
        JournalRow(
            entry_id=str(r.entry_id),
            transaction_id=str(r.transaction_id),
            direction=r.direction,
            amount=r.amount,
            created_at=r.created_at,
            metadata=r.metadata,
            idempotency_key=r.idempotency_key,
            reversal=r.reverses is not None,
            original_metadata=r.original_metadata,
            original_key=r.original_key,
        )
        for r in await conn.execute(query)
    ]


async def settled(conn: AsyncConnection, source_id: str) -> set[str]:
    """Lines and entries a person matched, accepted or wrote off."""
    out: set[str] = set()
    manual = await conn.execute(
        select(recon_matches.c.statement_lines, recon_matches.c.entry_ids).where(
            recon_matches.c.source_id == source_id, recon_matches.c.kind == "manual"
        )
    )
    for lines, entry_ids in manual:
        out.update(f"line:{i}" for i in lines)
        out.update(f"entry:{i}" for i in entry_ids)
    resolved = await conn.execute(
        select(x.statement_line, x.entry_id).where(
            x.source_id == source_id, x.status == "resolved", x.resolution.in_(PERSON_RESOLUTIONS)
        )
    )
    for line_id, entry_id in resolved:
        if line_id is not None:
            out.add(f"line:{line_id}")
        if entry_id is not None:
            out.add(f"entry:{entry_id}")
    return out


async def write_run(conn: AsyncConnection, decision: Decision, source: Source) -> Run:
    run = decision.run
    currency = source.currency
    row = (
        await conn.execute(
            recon_runs.insert()
            .values(
                id=run.id,
                source_id=run.source_id,
                from_date=run.from_,
                to_date=run.to,
                as_of=run.as_of,
                dry_run=run.dry_run,
                counts=msgspec.to_builtins(run.counts),
            )
            .returning(recon_runs.c.created_at)
        )
    ).one()
    await insert_matches(conn, run.id, run.source_id, decision.matches)
    opened = [
        {
            "id": new_id("exc_"),
            "source_id": run.source_id,
            "run_id": run.id,
            "class": f.cls,
            "severity": f.severity,
            "amount": f.amount,
            "currency": currency,
            "subject": f.subject,
            "statement_line": f.statement_line,
            "entry_id": f.entry_id,
            "transaction_id": f.transaction_id,
            "detail": f.detail,
            "status": "open",
        }
        for f in decision.opened
    ]
    if opened:
        await conn.execute(recon_exceptions.insert(), opened)
    for change in decision.updated:
        await conn.execute(
            update(recon_exceptions)
            .where(x.id == change.id)
            .values(severity=change.severity, amount=change.amount, run_id=run.id)
        )
    for exception_id, resolution in decision.closed:
        await conn.execute(
            update(recon_exceptions)
            .where(x.id == exception_id, x.status == "open")
            .values(status="resolved", resolution=resolution, resolved_at=func.now())
        )
    raised = [(o["id"], o["severity"], o["amount"]) for o in opened]
    raised += [(u.id, u.severity, u.amount) for u in decision.updated if u.raised]
    await feed.append(conn, run.id, source.account_id, raised)
    return msgspec.structs.replace(run, created_at=row.created_at)


async def insert_matches(
    conn: AsyncConnection, run_id: str, source_id: str, matches: list[Match]
) -> None:
    values = [
        {
            "run_id": run_id,
            # Numbered within the run (its key is (run, id)): in the run's order.
            "id": m.id or f"{n:08d}",
            "source_id": source_id,
            "kind": m.kind,
            "statement_lines": m.statement_lines,
            "entry_ids": m.entry_ids,
            "transaction_ids": m.transaction_ids,
            "amount": m.amount,
            "difference": m.difference,
            "tentative": m.tentative,
        }
        for n, m in enumerate(matches, 1)
    ]
    if values:
        await conn.execute(recon_matches.insert(), values)


def run_of(row: Any) -> Run:
    return Run(
        id=row.id,
        source_id=row.source_id,
        from_=row.from_date,
        to=row.to_date,
        as_of=row.as_of,
        dry_run=row.dry_run,
        status="completed",
        counts=msgspec.convert(row.counts, Counts),
        created_at=row.created_at,
    )


async def get_run(conn: AsyncConnection, run_id: str) -> Run | None:
    row = (await conn.execute(select(recon_runs).where(recon_runs.c.id == run_id))).first()
    return None if row is None else run_of(row)


async def run_matches(
    conn: AsyncConnection, run_id: str, after: str | None, limit: int
) -> list[Match]:
    c = recon_matches.c
    query = select(recon_matches).where(c.run_id == run_id).order_by(c.id).limit(limit)
    if after is not None:
        query = query.where(c.id > after)
    return [
        Match(
            id=r.id,
            kind=r.kind,
            statement_lines=list(r.statement_lines),
            entry_ids=list(r.entry_ids),
            transaction_ids=list(r.transaction_ids),
            amount=r.amount,
            difference=r.difference,
            tentative=r.tentative,
            run_id=r.run_id,
        )
        for r in await conn.execute(query)
    ]
