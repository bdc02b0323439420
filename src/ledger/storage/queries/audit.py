"""The audit trail: one row per write request, in schema `audit`.

`values(record)` is what a row holds; the writes that carry their row into
their own transaction insert it with `INSERT` (accounts, keys) or inside the
posting's first statement (`posting.statements.open_posting`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.engine import errors
from ledger.engine.audit import AuditEntry, AuditFilter, AuditRecord
from ledger.storage import rows
from ledger.storage.tables import audit_log

# A refusal's detail can quote what the client sent; a row keeps this much.
MAX_DETAIL_CHARS = 2000

# The columns of a row besides its time, which the database gives.
AUDIT_COLUMNS = tuple(c.name for c in audit_log.c if c.name != "occurred_at")


def values(record: AuditRecord, transaction_id: uuid.UUID | None = None) -> dict[str, Any]:
    """The row's column values. `transaction_id` overrides the record's (a
    posting learns its id in storage)."""
    committed = transaction_id or (
        uuid.UUID(record.transaction_id) if record.transaction_id else None
    )
    detail = record.detail
    if detail is not None and len(detail) > MAX_DETAIL_CHARS:
        detail = detail[: MAX_DETAIL_CHARS - 1] + "…"
    return _columns(record, committed, detail)


def _storable(value: Any) -> Any:
    """Text as PostgreSQL can keep it: a refusal may quote a NUL or a lone
    surrogate the client sent, and the row must still be written."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
    return value


def _columns(record: AuditRecord, committed: uuid.UUID | None, detail: str | None) -> dict:
    actor = record.actor
    return {
        "id": uuid.uuid4(),
        "request_id": actor.request_id,
        "key_id": actor.key_id,
        "key_name": actor.key_name,
        "client_id": actor.client_id,
        "source": actor.source,
        "action": record.action,
        "target": record.target or (str(committed) if committed else None),
        "transaction_id": committed,
        "fingerprint": record.fingerprint,
        "reason": actor.reason,
        "outcome": record.outcome,
        "problem": record.problem,
        "detail": detail,
        "reach": None if record.reach is None else list(record.reach),
    }


async def insert(conn: AsyncConnection, record: AuditRecord) -> None:
    row = {k: _storable(v) for k, v in values(record).items()}
    await conn.execute(audit_log.insert().values(row))


async def listing(
    conn: AsyncConnection, where: AuditFilter, after: tuple[datetime, str] | None, limit: int
) -> list[AuditEntry]:
    c = audit_log.c
    query = select(audit_log).order_by(c.occurred_at, c.id).limit(limit)
    if where.actor is not None:
        query = query.where(
            or_(c.key_id == where.actor, c.key_name == where.actor, c.client_id == where.actor)
        )
    if where.action is not None:
        query = query.where(c.action == where.action)
    if where.target is not None:
        query = query.where(c.target == where.target)
    if where.since is not None:
        query = query.where(c.occurred_at >= where.since)
    if where.until is not None:
        query = query.where(c.occurred_at < where.until)
    if after is not None:
        after_id = rows.parse_uuid(after[1])
        if after_id is None:
            raise errors.InvalidCursor("cursor is not valid for the audit trail")
        query = query.where(tuple_(c.occurred_at, c.id) > tuple_(after[0], after_id))
    return [_entry(r) for r in await conn.execute(query)]


def _entry(r: Any) -> AuditEntry:
    return AuditEntry(
        id=str(r.id),
        occurred_at=r.occurred_at,
        request_id=r.request_id,
        key_id=r.key_id,
        key_name=r.key_name,
        client_id=r.client_id,
        source=r.source,
        action=r.action,
        target=r.target,
        transaction_id=str(r.transaction_id) if r.transaction_id else None,
        fingerprint=r.fingerprint,
        reason=r.reason,
        outcome=r.outcome,
        problem=r.problem,
        detail=r.detail,
        reach=None if r.reach is None else list(r.reach),
    )
