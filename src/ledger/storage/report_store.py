"""The store's side of reports, mixed into `SqlStore`: a statement page in
one snapshot read; the trial balance streamed from one snapshot through a
server-side cursor (rows arrive in batches; memory stays flat however many
accounts there are)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime

from sqlalchemy import exc as sa_exc

from ledger.engine import errors
from ledger.engine.model import Transaction
from ledger.engine.reports import StatementRead, TransactionQuery
from ledger.storage import dialect
from ledger.storage.methods import StoreMethods
from ledger.storage.queries import reports, search
from ledger.storage.retry import run_transaction

STREAM_BATCH = 1000


class ReportMethods(StoreMethods):
    def _snapshot(self):
        options = dialect.snapshot_read_options(self.engine.dialect.name)
        return self.engine.execution_options(**options)

    async def statement_page(
        self,
        account_id: str,
        opening_at: datetime,
        closing_at: datetime,
        after: str | None,
        limit: int,
    ) -> StatementRead | None:
        return await run_transaction(
            self._snapshot(),
            self.policy,
            lambda conn, _: reports.statement_page(
                conn, account_id, opening_at, closing_at, after, limit
            ),
        )

    async def search_transactions(
        self, where: TransactionQuery, after: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[Transaction]:
        return await self._read(lambda conn: search.search(conn, where, after, limit))

    async def trial_balance_rows(
        self, as_of: datetime, currency: str | None
    ) -> AsyncIterator[tuple[str, str, str, int, int]]:
        """(account id, currency, normal side, posted debits, credits). No
        retry once rows flow (they are on their way to the client); a
        database that fails before the first is Unavailable."""
        started = False
        try:
            async with self._snapshot().connect() as conn, conn.begin():
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
