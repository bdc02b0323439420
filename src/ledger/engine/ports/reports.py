"""The reports port: statements, the trial balance and transaction search,
each read from one snapshot."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Protocol

from ledger.engine.model import Transaction
from ledger.engine.report_model import StatementRead, TransactionQuery


class ReportStore(Protocol):
    async def statement_page(
        self,
        account_id: str,
        opening_at: datetime,
        closing_at: datetime,
        after: str | None,
        limit: int,
    ) -> StatementRead | None:
        """In one snapshot; None when there is no such account."""
        ...

    async def search_transactions(
        self, where: TransactionQuery, after: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[Transaction]: ...

    async def probe_reads(self, needs: datetime | None) -> None:
        """Record (`ledger.engine.reads`) which server would serve a read
        needing data up to `needs`."""
        ...

    def trial_balance_rows(
        self, as_of: datetime, currency: str | None
    ) -> AsyncIterator[tuple[str, str, str, int, int]]:
        """From one snapshot, streamed, in account id order."""
        ...
