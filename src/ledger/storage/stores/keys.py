"""The API keys port over SQL: each write with its audit row."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.engine.access import ApiKey, NewKey, StoredKey
from ledger.engine.audit import AuditRecord
from ledger.storage.methods import StoreMethods
from ledger.storage.queries import (
    keys,
    webhooks,
)


class KeyMethods(StoreMethods):
    async def get_key(self, key_id: str) -> StoredKey | None:
        return await self._read(lambda conn: keys.get(conn, key_id))

    async def insert_key(
        self, key_id: str, secret_sha256: bytes, cmd: NewKey, record: AuditRecord
    ) -> ApiKey:
        return await self._write(lambda conn: keys.insert(conn, key_id, secret_sha256, cmd), record)

    async def insert_first_key(
        self, key_id: str, secret_sha256: bytes, cmd: NewKey, record: AuditRecord
    ) -> ApiKey | None:
        return await self._write(
            lambda conn: keys.insert_first(conn, key_id, secret_sha256, cmd),
            lambda made: record if made is not None else None,
        )

    async def list_keys(self, after: str | None, limit: int) -> list[ApiKey]:
        return await self._read(lambda conn: keys.listing(conn, after, limit))

    async def revoke_key(self, key_id: str, record: AuditRecord) -> ApiKey | None:
        async def revoke(conn: AsyncConnection) -> ApiKey | None:
            found = await keys.revoke(conn, key_id)
            if found is not None:
                await webhooks.pause_for_key(conn, key_id)
            return found

        return await self._write(revoke, lambda found: record if found is not None else None)
