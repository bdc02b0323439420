"""The checks' port over SQL (the sums `verify` judges, whether the
database answers), and the reads `ledger.operator` judges a load with."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import exc as sa_exc
from sqlalchemy import select

from ledger.engine.verify import AccountSums, JournalFacts
from ledger.storage.methods import StoreMethods
from ledger.storage.queries import (
    operator,
    verify,
)


class CheckMethods(StoreMethods):
    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(select(1))
            return True
        except (sa_exc.DBAPIError, sa_exc.TimeoutError, OSError):
            return False

    async def journal_facts(self) -> JournalFacts:
        """Read in one snapshot."""
        return await self._snapshot_read(verify.journal_facts)

    async def account_sums(self, after: str | None, limit: int) -> dict[str, AccountSums]:
        """A page of accounts' cached and journal totals, in one read-only
        snapshot (nothing a verifier does can write): on the replica when
        there is one, so the verifier never loads the primary."""
        return await self._snapshot_read(
            lambda conn: verify.per_account(conn, after, limit), replica=True
        )

    async def transactions_by_keys(self, client_id: str, keys: list[str]) -> dict[str, list[str]]:
        return await self._read(lambda conn: operator.transactions_by_keys(conn, client_id, keys))

    async def sealing_lags(self, since: datetime) -> tuple[list[float], int]:
        return await self._read(lambda conn: operator.sealing_lags(conn, since))

    async def refresh_statistics(self) -> None:
        await self._read(operator.refresh_statistics)
