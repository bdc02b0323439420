"""Webhook endpoints: their rows, the leases the deliverers hold on them
(judged by the database's clock, never a process's), their progress, and
the delivery log. The same statements on both databases."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Float,
    Interval,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal_column,
    or_,
    select,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.engine import events
from ledger.engine.webhook_model import (
    KEY_REVOKED,
    Delivery,
    NewWebhook,
    Progress,
    StoredWebhook,
    Webhook,
    WebhookChange,
)
from ledger.storage.queries.events import heads
from ledger.storage.tables import webhook_deliveries, webhook_endpoints

w = webhook_endpoints.c
d = webhook_deliveries.c
LIVE = w.status != "deleted"


def _seconds_from_now(name: str):
    one = literal_column("INTERVAL '1 second'", type_=Interval)
    return func.now() + cast(bindparam(name, type_=Float), Float) * one


def stored_of(row: Any) -> StoredWebhook:
    return StoredWebhook(
        webhook=webhook_of(row),
        client_id=row.client_id,
        secret=row.secret,
        previous_secret=row.previous_secret,
        generation=row.generation,
        block=row.cursor_block,
        sequence=row.cursor_sequence,
        exception=row.cursor_exception,
    )


def webhook_of(row: Any) -> Webhook:
    return Webhook(
        id=row.id,
        url=row.url,
        event_types=list(row.event_types),
        description=row.description,
        status=row.status,
        status_reason=row.status_reason,
        created_at=row.created_at,
        cursor=events.encode_cursor(
            events.Position(row.cursor_block, row.cursor_sequence, row.cursor_exception)
        ),
        failing_since=row.failing_since,
        last_error=row.last_error,
        delivered_at=row.delivered_at,
        previous_secret_until=row.previous_secret_until,
        accounts=list(row.accounts) if row.accounts is not None else None,
        key_id=row.key_id,
    )


async def insert(
    conn: AsyncConnection,
    webhook_id: str,
    cmd: NewWebhook,
    secret: str,
    client_id: str,
    accounts: list[str] | None,
    key_id: str | None,
) -> StoredWebhook:
    start = await heads(conn)
    row = (
        await conn.execute(
            webhook_endpoints.insert()
            .values(
                id=webhook_id,
                url=cmd.url,
                event_types=list(cmd.event_types or events.EVENT_TYPES),
                description=cmd.description,
                client_id=client_id,
                accounts=accounts,
                key_id=key_id,
                secret=secret,
                status="active",
                cursor_block=start.block,
                cursor_sequence=start.sequence,
                cursor_exception=start.exception,
                generation=0,
            )
            .returning(*webhook_endpoints.c)
        )
    ).one()
    return stored_of(row)


async def get(conn: AsyncConnection, webhook_id: str) -> StoredWebhook | None:
    row = (await conn.execute(select(webhook_endpoints).where(w.id == webhook_id, LIVE))).first()
    return None if row is None else stored_of(row)


async def listing(conn: AsyncConnection, after: str | None, limit: int) -> list[Webhook]:
    query = select(webhook_endpoints).where(LIVE).order_by(w.id).limit(limit)
    if after is not None:
        query = query.where(w.id > after)
    return [webhook_of(r) for r in await conn.execute(query)]


async def change(
    conn: AsyncConnection, webhook_id: str, what: WebhookChange
) -> StoredWebhook | None:
    values: dict[str, Any] = {"generation": w.generation + 1, "changed_at": func.now()}
    if what.deleted:
        values.update(status="deleted", status_reason="deleted", lease_owner=None)
    if what.secret is not None:
        values.update(
            secret=what.secret,
            previous_secret=w.secret,
            previous_secret_until=what.previous_until,
        )
    if what.replay_from is not None:
        # A replay turns a disabled endpoint on again, never a paused one:
        # only a resume does that.
        paused = w.status == "paused"
        values.update(
            cursor_block=what.replay_from.block,
            cursor_sequence=what.replay_from.sequence,
            cursor_exception=what.replay_from.exception,
            status=case((paused, w.status), else_="active"),
            status_reason=case((paused, w.status_reason), else_=None),
            failing_since=None,
            last_error=None,
        )
    if what.resumed_by is not None:
        values.update(status="active", status_reason=None, key_id=what.resumed_by)
    row = (
        await conn.execute(
            webhook_endpoints.update()
            .where(w.id == webhook_id, LIVE)
            .values(values)
            .returning(*webhook_endpoints.c)
        )
    ).first()
    return None if row is None else stored_of(row)


async def pause_for_key(conn: AsyncConnection, key_id: str) -> None:
    """Pause every live endpoint `key_id` registered (its key was revoked):
    the deliverer stops at its next claim or report, as after any change."""
    await conn.execute(
        webhook_endpoints.update()
        .where(w.key_id == key_id, LIVE, w.status != "paused")
        .values(
            status="paused",
            status_reason=KEY_REVOKED,
            generation=w.generation + 1,
            changed_at=func.now(),
            lease_owner=None,
        )
    )


async def deliveries(
    conn: AsyncConnection, webhook_id: str, after: tuple[datetime, str] | None, limit: int
) -> list[Delivery]:
    query = (
        select(webhook_deliveries)
        .where(d.endpoint_id == webhook_id)
        .order_by(d.attempted_at.desc(), d.id.desc())
        .limit(limit)
    )
    if after is not None:
        query = query.where(
            tuple_(d.attempted_at, d.id) < tuple_(bindparam("at"), bindparam("id"))
        ).params(at=after[0], id=uuid.UUID(after[1]))
    return [
        Delivery(
            id=str(r.id),
            event_id=r.event_id,
            sequence=r.sequence,
            attempt=r.attempt,
            attempted_at=r.attempted_at,
            outcome=r.outcome,
            status_code=r.status_code,
            error=r.error,
            duration_ms=r.duration_ms,
        )
        for r in await conn.execute(query)
    ]


# --- the deliverers' leases -----------------------------------------------------------


async def claim(
    conn: AsyncConnection, owner: str, lease_seconds: float, limit: int, serving: list[str]
) -> list[StoredWebhook]:
    """Under SERIALIZABLE, two processes claiming one endpoint at once
    conflict; the retry of the loser finds the lease taken."""
    free = and_(
        w.status == "active",
        or_(w.lease_until.is_(None), w.lease_until < func.now(), w.lease_owner == owner),
    )
    if serving:
        free = and_(free, w.id.not_in(serving))
    ids = [r.id for r in await conn.execute(select(w.id).where(free).order_by(w.id).limit(limit))]
    if not ids:
        return []
    rows = await conn.execute(
        webhook_endpoints.update()
        .where(w.id.in_(ids), free)
        .values(lease_owner=owner, lease_until=_seconds_from_now("lease"))
        .returning(*webhook_endpoints.c),
        {"lease": lease_seconds},
    )
    return [stored_of(r) for r in rows]


async def report(
    conn: AsyncConnection,
    owner: str,
    webhook_id: str,
    generation: int,
    progress: Progress,
    lease_seconds: float,
) -> bool:
    disabled = progress.disable_reason is not None
    values: dict[str, Any] = {
        "cursor_block": progress.position.block,
        "cursor_sequence": progress.position.sequence,
        "cursor_exception": progress.position.exception,
        "failing_since": progress.failing_since,
        "last_error": progress.last_error,
        "delivered_at": progress.delivered_at,
        "lease_until": _seconds_from_now("lease"),
    }
    if disabled:
        values.update(
            status="disabled",
            status_reason=progress.disable_reason,
            changed_at=func.now(),
            lease_owner=None,
            lease_until=None,
        )
    updated = (
        await conn.execute(
            webhook_endpoints.update()
            .where(
                w.id == webhook_id,
                w.lease_owner == owner,
                w.generation == generation,
                w.status == "active",
            )
            .values(values)
            .returning(w.id),
            {"lease": lease_seconds},
        )
    ).first()
    if updated is None:
        return False
    if progress.attempts:
        await conn.execute(
            webhook_deliveries.insert(),
            [
                {
                    "endpoint_id": webhook_id,
                    "attempted_at": a.attempted_at,
                    "id": uuid.UUID(a.id),
                    "event_id": a.event_id,
                    "sequence": a.sequence,
                    "attempt": a.attempt,
                    "outcome": a.outcome,
                    "status_code": a.status_code,
                    "error": a.error,
                    "duration_ms": a.duration_ms,
                }
                for a in progress.attempts
            ],
        )
    return True


async def release(conn: AsyncConnection, owner: str, webhook_id: str) -> None:
    await conn.execute(
        webhook_endpoints.update()
        .where(w.id == webhook_id, w.lease_owner == owner)
        .values(lease_owner=None, lease_until=None)
    )


async def prune(conn: AsyncConnection, webhook_id: str, older_than: timedelta, limit: int) -> int:
    """Delete up to `limit` of the endpoint's oldest attempts past the age."""
    oldest = (
        select(d.attempted_at, d.id)
        .where(
            d.endpoint_id == webhook_id,
            d.attempted_at < func.now() - cast(bindparam("age"), Interval),
        )
        .order_by(d.attempted_at)
        .limit(limit)
    )
    result = await conn.execute(
        webhook_deliveries.delete().where(
            d.endpoint_id == webhook_id,
            tuple_(d.attempted_at, d.id).in_(oldest),
        ),
        {"age": older_than},
    )
    return result.rowcount or 0
