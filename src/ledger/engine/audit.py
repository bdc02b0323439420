"""The audit trail: who did what, when and why, one row per write request.

A write the ledger makes carries its row into the same database transaction
(`AuditRecord` on the posting's header, or beside an account or key write),
so there is no write without its row and no row for a write that rolled
back. A request that wrote nothing of its own (a refusal, or a replay of an
earlier answer) is recorded by itself through `AuditTrail.record`
(`ledger.engine.audit_trail`). This module holds the rows and their rules.
Storage keeps the rows in schema `audit`, where the service's role may
insert and read and nothing else.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from ledger.engine import errors
from ledger.engine.access import Actor
from ledger.engine.free_text import check_text

# Actions: what a write request asked for.
TRANSACTION_CREATE = "transaction.create"
TRANSACTION_BATCH = "transaction.batch"
TRANSACTION_REVERSE = "transaction.reverse"
PENDING_POST = "pending.post"
PENDING_VOID = "pending.void"
PENDING_EXPIRE = "pending.expire"
ACCOUNT_CREATE = "account.create"
ACCOUNT_UPDATE = "account.update"
KEY_CREATE = "key.create"
KEY_REVOKE = "key.revoke"
WEBHOOK_CREATE = "webhook.create"
WEBHOOK_DELETE = "webhook.delete"
WEBHOOK_ROTATE = "webhook.rotate_secret"
WEBHOOK_REPLAY = "webhook.replay"
WEBHOOK_RESUME = "webhook.resume"
RECON_SOURCE_CREATE = "reconciliation.source.create"
RECON_STATEMENT_UPLOAD = "reconciliation.statement.upload"
RECON_RUN = "reconciliation.run"
RECON_RESOLVE = "reconciliation.exception.resolve"

# Outcomes: what came of it.
Outcome = Literal["created", "updated", "unchanged", "revoked", "replayed", "refused", "failed"]

MAX_REASON_CHARS = 500


class AuditRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One row to write. `target` is what the request acted on (the account,
    the transaction reversed or resolved, the key; for a new transaction, the
    transaction itself); `transaction_id` is set only on the row of the write
    that committed that transaction, so each committed transaction has
    exactly one row naming it there."""

    actor: Actor
    action: str
    outcome: Outcome
    target: str | None = None
    transaction_id: str | None = None
    fingerprint: str | None = None
    problem: str | None = None
    detail: str | None = None
    # The account ids or prefixes the row concerns: who may read it
    # (`ledger.engine.reach`); None, unlimited keys only.
    reach: tuple[str, ...] | None = None


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    """A row as `GET /audit` and `ledger audit export` show it."""

    id: str
    occurred_at: datetime
    request_id: str
    key_id: str | None
    key_name: str
    client_id: str
    source: str | None
    action: str
    target: str | None
    transaction_id: str | None
    fingerprint: str | None
    reason: str | None
    outcome: str
    problem: str | None
    detail: str | None
    # The accounts or account-id prefixes the row concerns; null for a row
    # only keys that reach every account may read.
    reach: list[str] | None = None


class AuditFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Rows matching every given field. `actor` matches a key id, a key name
    or a client id; `since` is inclusive, `until` exclusive."""

    actor: str | None = None
    action: str | None = None
    target: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def check_filter(where: AuditFilter) -> None:
    """Raises InvalidValue for a filter text no row could hold."""
    for field in ("actor", "action", "target"):
        check_text(getattr(where, field), field)


def check_reason(reason: str | None) -> None:
    """Raises InvalidValue."""
    if reason is not None and (
        not reason or len(reason) > MAX_REASON_CHARS or not reason.isprintable()
    ):
        raise errors.InvalidValue(
            f"the reason must be 1 to {MAX_REASON_CHARS} printable characters", field="reason"
        )
