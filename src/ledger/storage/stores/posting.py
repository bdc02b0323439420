"""The posting port over SQL: units of work on the wire path chosen once
(`posting/`), a transaction read back, and what is due to expire."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.engine.model import (
    Transaction,
)
from ledger.engine.ports import PostingUnit
from ledger.storage.methods import StoreMethods
from ledger.storage.posting.unit import SqlPostingUnit
from ledger.storage.queries import (
    expiry,
    transactions,
)
from ledger.storage.retry import Attempt, run_transaction

T = TypeVar("T")


class PostingMethods(StoreMethods):
    async def run(self, work: Callable[[PostingUnit], Awaitable[T]]) -> T:
        async def attempt(conn: AsyncConnection, attempt: Attempt) -> T:
            unit = SqlPostingUnit(conn, attempt, self.wire(conn, attempt, self.posting_settings))
            result = await work(unit)
            await unit.finish()
            return result

        engine = self.posting_engine if self.batch_postings else self.engine
        assert engine is not None
        return await run_transaction(engine, self.policy, attempt)

    async def get_transaction(
        self, transaction_id: str, *, stale: bool = False
    ) -> Transaction | None:
        return await self._read(lambda conn: transactions.load(conn, transaction_id), stale=stale)

    async def due_for_expiry(self, limit: int) -> list[str]:
        return await self._read(lambda conn: expiry.due(conn, limit))
