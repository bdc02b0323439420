"""Reconciliation exceptions: listed, read, resolved (with a manual match),
counted for the gauges."""

from __future__ import annotations

import msgspec
from sqlalchemy import and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.engine.reconcile.model import (
    ExceptionFilter,
    ReconException,
    Resolved,
)
from ledger.storage.queries.reconciliation.queries import exception_of, x
from ledger.storage.queries.reconciliation.runs import insert_matches
from ledger.storage.queries.reconciliation.tables import (
    recon_exceptions,
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
