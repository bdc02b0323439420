"""Currencies in use, each with its one scale."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.engine.currencies import CurrencyScale
from ledger.storage.tables import currencies


async def scale_of(conn: AsyncConnection, code: str) -> int | None:
    return (
        await conn.execute(select(currencies.c.scale).where(currencies.c.code == code))
    ).scalar_one_or_none()


async def adopt(conn: AsyncConnection, code: str, scale: int) -> None:
    """Record `code` with `scale` unless it is recorded already: the
    account inserted next then references (code, scale), which fails if
    the currency holds another scale.

    No conflict target: the code is unique twice (the key, and with the
    scale for the accounts' foreign key), and with a target on one of them,
    two first accounts of a currency at once made the loser fail on the
    other (a unique violation, answered 500)."""
    await conn.execute(
        pg_insert(currencies).values(code=code, scale=scale).on_conflict_do_nothing()
    )


async def listing(conn: AsyncConnection) -> list[CurrencyScale]:
    rows = await conn.execute(
        select(currencies.c.code, currencies.c.scale).order_by(currencies.c.code)
    )
    return [CurrencyScale(r.code, r.scale) for r in rows]
