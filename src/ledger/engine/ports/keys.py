"""The API keys port."""

from __future__ import annotations

from typing import Protocol

from ledger.engine.access import ApiKey, NewKey, StoredKey
from ledger.engine.audit import AuditRecord


class KeyStore(Protocol):
    """API keys, each written with its audit row."""

    async def get_key(self, key_id: str) -> StoredKey | None: ...

    async def insert_key(
        self, key_id: str, secret_sha256: bytes, cmd: NewKey, audit: AuditRecord
    ) -> ApiKey:
        """Insert the key and `audit` in one transaction."""
        ...

    async def insert_first_key(
        self, key_id: str, secret_sha256: bytes, cmd: NewKey, audit: AuditRecord
    ) -> ApiKey | None:
        """Insert the key and `audit` only if there is no key at all; None
        when there is one. Many processes at once make one key."""
        ...

    async def list_keys(self, after: str | None, limit: int) -> list[ApiKey]: ...

    async def revoke_key(self, key_id: str, audit: AuditRecord) -> ApiKey | None:
        """Set the key's revocation time (kept if it was set) and pause the
        webhook endpoints it owns, with `audit`; None if there is no such
        key."""
        ...
