"""The reads port: transactions, balances and history, from the primary or
(`stale=True`) a slightly old snapshot; and the consistency check's sums."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from ledger.engine.model import (
    AccountEntry,
    AccountState,
    Transaction,
)
from ledger.engine.verify import AccountSums, JournalFacts


class ReadStore(Protocol):
    """Reads of the journal and balances, and the sums `verify` judges."""

    # `stale=True` allows a slightly old snapshot (a follower read on
    # CockroachDB) for reads that feed no decision.

    async def get_transaction(
        self, transaction_id: str, *, stale: bool = False
    ) -> Transaction | None: ...

    async def cached_totals(
        self, account_id: str, *, stale: bool = False
    ) -> tuple[AccountState, datetime] | None:
        """The account with its cached totals, and the time read."""
        ...

    async def journal_totals(self, account_id: str, as_of: datetime) -> AccountState | None:
        """The account with its totals as of `as_of`, summed from the journal:
        posted entries created by then, and pending entries created by then
        whose transaction was not yet resolved then."""
        ...

    async def account_entries(
        self, account_id: str, after: str | None, limit: int, *, stale: bool = False
    ) -> list[AccountEntry]: ...

    async def account_sums(self, after: str | None, limit: int) -> dict[str, AccountSums]:
        """The `limit` accounts after `after`: cached and journal totals."""
        ...

    async def journal_facts(self) -> JournalFacts:
        """All the sums `verify` judges, read in one consistent snapshot."""
        ...

    async def now(self) -> datetime:
        """The database's current time."""
        ...

    async def ping(self) -> bool:
        """True when the database answers a trivial query."""
        ...
