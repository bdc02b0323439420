"""The audit trail's port over SQL."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.engine.audit import AuditEntry, AuditFilter, AuditRecord
from ledger.storage.methods import StoreMethods
from ledger.storage.queries import (
    audit,
)


class AuditMethods(StoreMethods):
    async def insert_audit(self, record: AuditRecord) -> None:
        async def nothing_else(conn: AsyncConnection) -> None:
            return None

        await self._write(nothing_else, record)

    async def audit_rows(
        self, where: AuditFilter, after: tuple[datetime, str] | None, limit: int
    ) -> list[AuditEntry]:
        return await self._read(lambda conn: audit.listing(conn, where, after, limit))
