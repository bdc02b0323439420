"""Recording and reading the audit trail (the rows are `ledger.engine.audit`'s)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from ledger.engine import errors, paging, reach
from ledger.engine.access import Actor
from ledger.engine.audit import AuditEntry, AuditFilter, AuditRecord, check_filter
from ledger.engine.limits import Limits
from ledger.engine.model import Page
from ledger.engine.ports import AuditStore


class AuditTrail:
    def __init__(self, store: AuditStore, limits: Limits) -> None:
        self.store = store
        self.limits = limits

    async def record(self, record: AuditRecord) -> None:
        """Write a row for a request that wrote nothing else (a refusal or a
        replay), in a transaction of its own."""
        await self.store.insert_audit(record)

    async def page(
        self,
        where: AuditFilter,
        cursor: str | None,
        limit: int | None = None,
        actor: Actor | None = None,
    ) -> Page:
        """Rows oldest first; for a key limited to prefixes, only the rows
        whose reach lies within them (`ledger.engine.reach`). Raises
        InvalidCursor, InvalidValue."""
        check_filter(where)
        size = paging.page_size(limit, self.limits.default_page_size, self.limits.max_page_size)

        async def fetch(after: str | None, count: int) -> list[AuditEntry]:
            return await self.store.audit_rows(where, _decode(after, cursor), count)

        if actor is None or actor.accounts is None:
            rows = await fetch(paging.decode_cursor(cursor), size + 1)
            return paging.page(rows, size, _cursor_key)
        return await reach.filtered_page(
            fetch, lambda row: reach.sees(actor, row.reach), cursor, size, _cursor_key
        )

    async def export(self, where: AuditFilter, chunk: int = 1000) -> AsyncIterator[AuditEntry]:
        """Every matching row, oldest first, read a chunk at a time."""
        check_filter(where)
        after: tuple[datetime, str] | None = None
        while True:
            rows = await self.store.audit_rows(where, after, chunk)
            for row in rows:
                yield row
            if len(rows) < chunk:
                return
            after = (rows[-1].occurred_at, rows[-1].id)


def _cursor_key(entry: AuditEntry) -> str:
    return f"{entry.occurred_at.isoformat()}|{entry.id}"


def _decode(raw: str | None, cursor: str | None) -> tuple[datetime, str] | None:
    if raw is None:
        return None
    at, _, row_id = raw.partition("|")
    try:
        return datetime.fromisoformat(at), row_id
    except ValueError as exc:
        raise errors.InvalidCursor(f"cursor {cursor!r} is not valid", cursor=cursor) from exc
