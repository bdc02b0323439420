"""The store's side of reports, mixed into `SqlStore`: a statement page in
one snapshot read; the trial balance streamed from one snapshot through a
server-side cursor (rows arrive in batches; memory stays flat however many
accounts there are)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from sqlalchemy import exc as sa_exc

from ledger.engine import errors
from ledger.engine.model import Transaction
from ledger.engine.reads import served_by
from ledger.engine.report_model import StatementRead, TransactionQuery
from ledger.storage.methods import StoreMethods
from ledger.storage.queries import reports, search
from ledger.storage.replica import FAILURES, Behind

STREAM_BATCH = 1000


class ReportMethods(StoreMethods):
    async def statement_page(
        self,
        account_id: str,
        opening_at: datetime,
        closing_at: datetime,
        after: str | None,
        limit: int,
    ) -> StatementRead | None:
        # The replica must have replayed up to the period's end.
        return await self._snapshot_read(
            lambda conn: reports.statement_page(
                conn, account_id, opening_at, closing_at, after, limit
            ),
            replica=True,
            needs=closing_at,
        )

    async def search_transactions(
        self, where: TransactionQuery, after: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[Transaction]:
        return await self._read(lambda conn: search.search(conn, where, after, limit), stale=True)

    async def probe_reads(self, needs: datetime | None) -> None:
        """Which server a read needing data up to `needs` would be served by
        (recorded for the answer's headers before a stream starts)."""
        if self.replica is None:
            return
        async with self._trial_balance_source(needs or datetime.now(UTC)):
            pass

    async def trial_balance_rows(
        self, as_of: datetime, currency: str | None
    ) -> AsyncIterator[tuple[str, str, str, int, int]]:
        """(account id, currency, normal side, posted debits, credits), from
        the replica when it has replayed up to `as_of`, else the primary. No
        retry once rows flow (they are on their way to the client); a
        database that fails before the first is Unavailable."""
        started = False
        try:
            async with self._trial_balance_source(as_of) as conn:
                result = await conn.stream(reports.trial_balance(as_of, currency))
                async for batch in result.partitions(STREAM_BATCH):
                    started = True
                    for row in batch:
                        yield row[0], row[1], row[2], int(row[3]), int(row[4])
        except (sa_exc.DBAPIError, OSError) as exc:
            if started:
                raise
            raise errors.Unavailable(
                "the database did not answer the trial balance; retry", retry_after_seconds=1
            ) from exc

    @contextlib.asynccontextmanager
    async def _trial_balance_source(self, as_of: datetime):
        """A connection in a snapshot transaction: the replica's when it
        answers and has replayed up to `as_of`, else the primary's."""
        replica = self.replica
        if replica is not None:
            conn = None
            try:
                conn = await replica.engine.connect()
                await conn.begin()
                standby, lag_ms = await replica.where_is(conn, as_of)
            except (Behind, *FAILURES) as exc:
                if conn is not None:
                    await conn.close()
                if not isinstance(exc, Behind):
                    replica.failed(exc)
            else:
                served_by("replica" if standby else "primary", lag_ms if standby else None)
                try:
                    yield conn
                finally:
                    await conn.close()
                await replica.noticed(standby, lag_ms)
                return
        served_by("primary")
        async with self._snapshots().connect() as conn, conn.begin():
            yield conn
