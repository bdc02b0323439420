"""The audit trail's port."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from ledger.engine.audit import AuditEntry, AuditFilter, AuditRecord


class AuditStore(Protocol):
    """Audit rows written on their own and read back."""

    async def insert_audit(self, record: AuditRecord) -> None:
        """One audit row in a transaction of its own."""
        ...

    async def audit_rows(
        self, where: AuditFilter, after: tuple[datetime, str] | None, limit: int
    ) -> list[AuditEntry]:
        """Rows matching `where`, oldest first, after (time, id)."""
        ...
