"""Reconciliation's statements: the same on both databases (multi-row
inserts, a locking read of the source's row, the journal read by its
primary key's time-ordered range)."""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy import and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import aliased

from ledger.engine.reconcile.model import (
    Counts,
    Decision,
    ExceptionFilter,
    JournalRow,
    Line,
    Loaded,
    Match,
    NewSource,
    ParsedStatement,
    ReconException,
    Resolved,
    Run,
    Source,
    Statement,
    Window,
    new_id,
)
from ledger.storage import ids
from ledger.storage.reconcile.tables import (
    recon_exceptions,
    recon_lines,
    recon_matches,
    recon_runs,
    recon_sources,
    recon_statements,
)
from ledger.storage.tables import entries, transactions

# Rows per INSERT statement (PostgreSQL allows 65,535 parameters).
CHUNK = 2000
PERSON = ("accepted", "matched", "written_off")
x = recon_exceptions.c
original = aliased(transactions)


def source_of(row: Any) -> Source:
    made = msgspec.convert(row.settings, NewSource)
    return Source(**msgspec.structs.asdict(made), created_at=row.created_at)


async def insert_source(conn: AsyncConnection, cmd: NewSource) -> Source:
    row = (
        await conn.execute(
            recon_sources.insert()
            .values(id=cmd.id, account_id=cmd.account_id, settings=msgspec.to_builtins(cmd))
            .returning(*recon_sources.c)
        )
    ).one()
    return source_of(row)


async def get_source(conn: AsyncConnection, source_id: str) -> Source | None:
    query = select(recon_sources).where(recon_sources.c.id == source_id)
    row = (await conn.execute(query)).first()
    return None if row is None else source_of(row)


async def list_sources(conn: AsyncConnection, after: str | None, limit: int) -> list[Source]:
    query = select(recon_sources).order_by(recon_sources.c.id).limit(limit)
    if after is not None:
        query = query.where(recon_sources.c.id > after)
    return [source_of(r) for r in await conn.execute(query)]


def statement_of(row: Any) -> Statement:
    return Statement(
        id=row.id,
        source_id=row.source_id,
        sha256=row.sha256,
        lines=row.line_count,
        skipped=row.skipped,
        opening=row.opening,
        closing=row.closing,
        first_date=row.first_date,
        last_date=row.last_date,
        created_at=row.created_at,
    )


async def statement_by_hash(conn: AsyncConnection, source_id: str, sha256: str) -> Statement | None:
    c = recon_statements.c
    row = (
        await conn.execute(
            select(recon_statements).where(c.source_id == source_id, c.sha256 == sha256)
        )
    ).first()
    return None if row is None else statement_of(row)


async def insert_statement(
    conn: AsyncConnection,
    statement_id: str,
    source_id: str,
    sha256: str,
    parsed: ParsedStatement,
    skipped: int,
) -> Statement:
    days = [line.booked_on for line in parsed.lines]
    row = (
        await conn.execute(
            recon_statements.insert()
            .values(
                id=statement_id,
                source_id=source_id,
                sha256=sha256,
                line_count=len(parsed.lines),
                skipped=skipped,
                opening=parsed.opening,
                closing=parsed.closing,
                first_date=min(days, default=None),
                last_date=max(days, default=None),
            )
            .returning(*recon_statements.c)
        )
    ).one()
    values = [
        {
            "source_id": source_id,
            "booked_on": line.booked_on,
            "id": line.id,
            "statement_id": statement_id,
            "line_no": line.line_no,
            "amount": line.amount,
            "currency": line.currency,
            "external_id": line.external_id,
            "reference": line.reference,
            "description": line.description,
            "status": line.status,
            "reversal": line.reversal,
            "grp": line.group,
        }
        for line in parsed.lines
    ]
    if values:
        await conn.execute(recon_lines.insert(), values)
    return statement_of(row)


def line_of(row: Any) -> Line:
    return Line(
        id=row.id,
        line_no=row.line_no,
        amount=row.amount,
        currency=row.currency,
        booked_on=row.booked_on,
        external_id=row.external_id,
        reference=row.reference,
        description=row.description,
        status=row.status,
        reversal=row.reversal,
        group=row.grp,
    )


async def get_line(conn: AsyncConnection, source_id: str, line_id: str) -> Line | None:
    c = recon_lines.c
    row = (
        await conn.execute(select(recon_lines).where(c.source_id == source_id, c.id == line_id))
    ).first()
    return None if row is None else line_of(row)


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
            (r.id, r.subject, r[2])
            for r in await conn.execute(
                select(x.id, x.subject, x["class"])
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
            x.source_id == source_id, x.status == "resolved", x.resolution.in_(PERSON)
        )
    )
    for line_id, entry_id in resolved:
        if line_id is not None:
            out.add(f"line:{line_id}")
        if entry_id is not None:
            out.add(f"entry:{entry_id}")
    return out


async def write_run(conn: AsyncConnection, decision: Decision, currency: str) -> Run:
    run = decision.run
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


def exception_of(r: Any) -> ReconException:
    return ReconException(
        id=r.id,
        source_id=r.source_id,
        cls=r._mapping["class"],
        severity=r.severity,
        amount=r.amount,
        currency=r.currency,
        statement_line=r.statement_line,
        transaction_id=r.transaction_id,
        entry_id=r.entry_id,
        detail=r.detail,
        detected_at=r.detected_at,
        run_id=r.run_id,
        status=r.status,
        resolution=r.resolution,
        note=r.note,
        resolved_at=r.resolved_at,
        adjustment_transaction_id=r.adjustment_transaction_id,
    )


async def list_exceptions(
    conn: AsyncConnection, where: ExceptionFilter, after: str | None, limit: int
) -> list[ReconException]:
    query = select(recon_exceptions).order_by(x.id).limit(limit)
    for column, value in (
        (x.source_id, where.source_id),
        (x["class"], where.cls),
        (x.severity, where.severity),
        (x.status, where.status),
    ):
        if value is not None:
            query = query.where(column == value)
    if after is not None:
        query = query.where(x.id > after)
    return [exception_of(r) for r in await conn.execute(query)]


async def get_exception(conn: AsyncConnection, exception_id: str) -> ReconException | None:
    row = (await conn.execute(select(recon_exceptions).where(x.id == exception_id))).first()
    return None if row is None else exception_of(row)


async def resolve(
    conn: AsyncConnection, exception_id: str, resolved: Resolved, source_id: str
) -> ReconException | None:
    row = (
        await conn.execute(
            update(recon_exceptions)
            .where(and_(x.id == exception_id, x.status == "open"))
            .values(
                status="resolved",
                resolution=resolved.resolution,
                note=resolved.note,
                resolved_at=func.now(),
                adjustment_transaction_id=resolved.adjustment_transaction_id,
            )
            .returning(*recon_exceptions.c)
        )
    ).first()
    if row is not None and resolved.match is not None:
        match = msgspec.structs.replace(resolved.match, id=f"man_{exception_id}")
        await insert_matches(conn, f"manual_{exception_id}"[:40], source_id, [match])
    return None if row is None else exception_of(row)


async def open_counts(conn: AsyncConnection) -> list[tuple[str, str, int]]:
    query = (
        select(x["class"], x.severity, func.count())
        .where(x.status == "open")
        .group_by(x["class"], x.severity)
    )
    return [(r[0], r[1], r[2]) for r in await conn.execute(query)]
