"""Reconciliation's sources, their statements and the statements' lines:
the same statements on both databases (multi-row inserts through one
executemany)."""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.engine.reconcile.model import (
    Line,
    NewSource,
    ParsedStatement,
    ReconException,
    Source,
    Statement,
)
from ledger.storage.queries.reconciliation.tables import (
    recon_exceptions,
    recon_lines,
    recon_sources,
    recon_statements,
)

x = recon_exceptions.c


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
