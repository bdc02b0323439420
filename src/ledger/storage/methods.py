"""The three ways a store call meets the database, shared by `SqlStore` and
its mixins (journal, webhooks, reconciliation, reports): a read, a
snapshot read, and a write with its audit row. Each is one database
transaction through the retry loop, so a connection the server dropped
costs a retry, not an error."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger.engine.audit import AuditRecord
from ledger.storage import dialect
from ledger.storage.queries import audit
from ledger.storage.replica import Replica
from ledger.storage.retry import Attempt, RetryPolicy, run_transaction

T = TypeVar("T")
Read = Callable[[AsyncConnection], Awaitable[T]]


class StoreMethods:
    engine: AsyncEngine
    policy: RetryPolicy
    replica: Replica | None = None

    async def now(self) -> datetime:
        async def read(conn: AsyncConnection) -> datetime:
            return (await conn.execute(select(func.now()))).scalar_one()

        return await self._read(read)

    async def _read(self, fn: Read[T], *, stale: bool = False) -> T:
        """A read on the primary; a `stale` one on the replica when there is
        one (the primary when it is down)."""
        if stale and self.replica is not None:
            return await self.replica.read(fn, lambda: self._on_primary(fn, stale=True))
        return await self._on_primary(fn, stale=stale)

    async def _on_primary(self, fn: Read[T], *, stale: bool = False) -> T:
        opening = dialect.stale_read_statements(self.engine.dialect.name) if stale else []

        async def work(conn: AsyncConnection, _attempt: Attempt) -> T:
            for statement in opening:
                await conn.execute(text(statement))
            return await fn(conn)

        return await run_transaction(self.engine, self.policy, work)

    async def _snapshot_read(
        self, fn: Read[T], *, replica: bool = False, needs: datetime | None = None
    ) -> T:
        """`fn` in one read-only snapshot (REPEATABLE READ READ ONLY on
        PostgreSQL): with `replica`, on the replica when there is one and it
        has replayed up to `needs` (else the primary), so a long read never
        loads the primary."""

        async def on_primary() -> T:
            return await run_transaction(self._snapshots(), self.policy, lambda conn, _: fn(conn))

        if not replica or self.replica is None:
            return await on_primary()
        return await self.replica.read(fn, on_primary, needs=needs)

    def _snapshots(self) -> AsyncEngine:
        """The primary, each transaction one read-only snapshot."""
        return self.engine.execution_options(
            **dialect.snapshot_read_options(self.engine.dialect.name)
        )

    async def _write(
        self,
        fn: Read[T],
        audit_of: AuditRecord | Callable[[T], AuditRecord | None] | None,
    ) -> T:
        """`fn` and its audit row in one transaction: `audit_of` is the row,
        or makes it from what `fn` returned (None: `fn` wrote nothing that
        needs one)."""

        async def work(conn: AsyncConnection, attempt: Attempt) -> T:
            attempt.wrote = True
            result = await fn(conn)
            record = audit_of(result) if callable(audit_of) else audit_of
            if record is not None:
                await audit.insert(conn, record)
            return result

        return await run_transaction(self.engine, self.policy, work)
