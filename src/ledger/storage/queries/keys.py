"""API keys: their rows, with the SHA-256 of each key (never the key)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, func, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.engine.access import ApiKey, NewKey, StoredKey
from ledger.storage.tables import api_keys

_PUBLIC = [c for c in api_keys.c if c.name != "secret_sha256"]


def _row(cmd: NewKey, key_id: str, secret_sha256: bytes) -> dict[str, Any]:
    return {
        "id": key_id,
        "name": cmd.name,
        "client_id": cmd.client_id,
        "scopes": list(cmd.scopes),
        "accounts": list(cmd.accounts) if cmd.accounts is not None else None,
        "requests_per_second": cmd.requests_per_second,
        "secret_sha256": secret_sha256,
    }


async def insert(conn: AsyncConnection, key_id: str, secret_sha256: bytes, cmd: NewKey) -> ApiKey:
    row = (
        await conn.execute(
            api_keys.insert().values(_row(cmd, key_id, secret_sha256)).returning(*_PUBLIC)
        )
    ).one()
    return key(row)


async def insert_first(
    conn: AsyncConnection, key_id: str, secret_sha256: bytes, cmd: NewKey
) -> ApiKey | None:
    """INSERT ... SELECT ... WHERE NOT EXISTS (any key): under SERIALIZABLE
    two processes bootstrapping at once conflict, and the retry of the
    loser finds the winner's key."""
    values = _row(cmd, key_id, secret_sha256)
    chosen = select(*(literal(v, type_=api_keys.c[k].type).label(k) for k, v in values.items()))
    row = (
        await conn.execute(
            api_keys.insert()
            .from_select(list(values), chosen.where(~exists(select(api_keys.c.id))))
            .returning(*_PUBLIC)
        )
    ).first()
    return None if row is None else key(row)


async def get(conn: AsyncConnection, key_id: str) -> StoredKey | None:
    row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).first()
    return None if row is None else StoredKey(key(row), bytes(row.secret_sha256))


async def listing(conn: AsyncConnection, after: str | None, limit: int) -> list[ApiKey]:
    query = select(*_PUBLIC).order_by(api_keys.c.id).limit(limit)
    if after is not None:
        query = query.where(api_keys.c.id > after)
    return [key(r) for r in await conn.execute(query)]


async def revoke(conn: AsyncConnection, key_id: str) -> ApiKey | None:
    """Set the revocation time unless it is set; the key as it is then."""
    row = (
        await conn.execute(
            api_keys.update()
            .where(api_keys.c.id == key_id)
            .values(revoked_at=func.coalesce(api_keys.c.revoked_at, func.now()))
            .returning(*_PUBLIC)
        )
    ).first()
    return None if row is None else key(row)


def key(row: Any) -> ApiKey:
    return ApiKey(
        id=row.id,
        name=row.name,
        client_id=row.client_id,
        scopes=list(row.scopes),
        accounts=list(row.accounts) if row.accounts is not None else None,
        requests_per_second=row.requests_per_second,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )
