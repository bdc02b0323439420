"""Ids that no other test uses: tests isolate themselves by them, not by
truncating (the journal is append-only)."""

from __future__ import annotations

import uuid

from ledger.engine.model import IdempotencyKey


def fresh_id(prefix: str = "acct") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def key(k: str | None = None, client: str = "tests") -> IdempotencyKey:
    """An idempotency key of client "tests": `k`, or one never used before."""
    return IdempotencyKey(client, k or fresh_id("key"))
