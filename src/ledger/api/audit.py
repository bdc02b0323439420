"""HTTP handler for the audit trail (scope `audit:read`)."""

from __future__ import annotations

from typing import Annotated

from litestar import Request, Router, get
from litestar.params import FromQuery, QueryParameter

from ledger.api import request as req
from ledger.api.access import requires
from ledger.engine.access import AUDIT_READ
from ledger.engine.audit import AuditEntry, AuditFilter
from ledger.engine.model import Page
from ledger.settings import Settings


@get("/audit", tags=["audit"], **requires(AUDIT_READ))
async def list_audit(
    request: Request,
    ledger: req.LedgerDep,
    cursor: FromQuery[str | None] = None,
    limit: FromQuery[int | None] = None,
    actor: FromQuery[str | None] = None,
    action: FromQuery[str | None] = None,
    target: FromQuery[str | None] = None,
    since: Annotated[str | None, QueryParameter(name="from")] = None,
    until: Annotated[str | None, QueryParameter(name="to")] = None,
) -> Page[AuditEntry]:
    """One row per write request, oldest first: when (database time), who
    (key id and name, client id, source address), what (action, target, the
    transaction it committed, the request's fingerprint), why (the
    `Ledger-Reason` header), the request id and the outcome, refusals
    included. `actor` matches a key id, key name or client id; `from` is
    inclusive and `to` exclusive (RFC 3339). A key limited to account
    prefixes sees only the rows whose `reach` (the accounts or prefixes a
    row concerns) lies within its own; rows without one are for keys that
    reach every account."""
    where = AuditFilter(
        actor=actor,
        action=action,
        target=target,
        since=req.as_of(since, "from"),
        until=req.as_of(until, "to"),
    )
    return await ledger.audit.page(where, cursor, limit, req.actor(request))


def router(settings: Settings) -> Router:
    """The audit trail's route."""
    return Router(path="/", route_handlers=[list_audit])
