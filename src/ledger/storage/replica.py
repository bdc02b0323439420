"""Reads on a replica (`LEDGER_READ_DATABASE_URL`): stale reads, statements,
reports and search, never a decision. Each read first asks the replica how
far behind it is; a read that needs data up to a time the replica has not
replayed yet, or a replica that does not answer, goes to the primary
instead (or, with `LEDGER_READ_FALLBACK=false`, is refused with 503: an
operator who would rather shed reports than load the primary)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from prometheus_client import Gauge
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger.engine import errors
from ledger.engine.reads import served_by
from ledger.storage import dialect
from ledger.storage.retry import RetryPolicy, run_transaction

log = logging.getLogger(__name__)
T = TypeVar("T")

# A replica that fails is not retried for long: the primary answers instead.
REPLICA_POLICY = RetryPolicy(2, 0.01, 0.05)
# How often connections that reached the primary are dropped to look for
# the standby again.
RECHECK_SECONDS = 1.0
REPLICA_LAG = Gauge(
    "ledger_replica_lag_seconds",
    "How far behind the primary the read replica was at this process's last read there",
    multiprocess_mode="max",
)


# What a replica that does not answer raises.
FAILURES = (errors.Unavailable, sa_exc.DBAPIError, sa_exc.TimeoutError, OSError)


class Behind(Exception):
    """The replica has not replayed up to the time the read needs."""


class Replica:
    def __init__(self, engine: AsyncEngine, *, fallback: bool = True) -> None:
        name = engine.dialect.name
        self.engine = engine.execution_options(**dialect.replica_read_options(name))
        self.fallback = fallback
        self.opening = dialect.stale_read_statements(name)
        self.lag_sql = text(dialect.replica_lag_sql(name))
        self._recheck_at = 0.0

    async def dispose(self) -> None:
        await self.engine.dispose()

    async def where_is(self, conn: AsyncConnection, needs: datetime | None) -> tuple[bool, int]:
        """(whether this is a standby, its lag in ms); raises Behind when it
        has not replayed up to `needs`."""
        for statement in self.opening:
            await conn.execute(text(statement))
        standby, lag_ms, now = (await conn.execute(self.lag_sql)).one()
        if needs is not None and needs > now - timedelta(milliseconds=int(lag_ms)):
            raise Behind
        return bool(standby), int(lag_ms)

    async def read(
        self,
        fn: Callable[[AsyncConnection], Awaitable[T]],
        on_primary: Callable[[], Awaitable[T]],
        needs: datetime | None = None,
    ) -> T:
        async def work(conn: AsyncConnection, _attempt: Any) -> tuple[T, bool, int]:
            standby, lag_ms = await self.where_is(conn, needs)
            return await fn(conn), standby, lag_ms

        try:
            result, standby, lag_ms = await run_transaction(self.engine, REPLICA_POLICY, work)
        except Behind:
            served_by("primary")
            return await on_primary()
        except FAILURES as exc:
            self.failed(exc)
            served_by("primary")
            return await on_primary()
        served_by("replica" if standby else "primary", lag_ms if standby else None)
        await self.noticed(standby, lag_ms)
        return result

    def failed(self, exc: BaseException) -> None:
        """The replica did not answer: 503 when the operator said so (no
        fallback), else logged and the primary answers."""
        if not self.fallback:
            raise errors.Unavailable(
                "the read replica does not answer; retry later", retry_after_seconds=1
            ) from exc
        log.warning("read replica unavailable, reading from the primary: %r", exc)

    async def noticed(self, standby: bool, lag_ms: int) -> None:
        """Record the lag; and when a pooled connection of the read URL
        reached a primary (`prefer-standby` while the standby was down),
        drop the pool's connections, at most once a second, so that reads go
        back to the standby once it is up again."""
        if standby:
            REPLICA_LAG.set(lag_ms / 1000)
            return
        now = time.monotonic()
        if now >= self._recheck_at:
            self._recheck_at = now + RECHECK_SECONDS
            await self.engine.dispose()
