"""The checks' port: the sums `verify` judges, and whether the database answers."""

from __future__ import annotations

from typing import Protocol

from ledger.engine.verify import AccountSums, JournalFacts


class CheckStore(Protocol):
    async def account_sums(self, after: str | None, limit: int) -> dict[str, AccountSums]:
        """The `limit` accounts after `after`: cached and journal totals."""
        ...

    async def journal_facts(self) -> JournalFacts:
        """All the sums `verify` judges, read in one consistent snapshot."""
        ...

    async def ping(self) -> bool:
        """True when the database answers a trivial query."""
        ...
