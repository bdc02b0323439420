"""The store's side of the sealed journal (`JournalStore`), mixed into
`SqlStore`: the sequencer's one write and the journal's reads, each through
the retry loop."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.engine.journal_check import JournalCheck, JournalReport
from ledger.engine.journal_model import Block, BlockDetail, JournalRecord
from ledger.engine.ports import BuildBlock
from ledger.storage import dialect
from ledger.storage.methods import StoreMethods
from ledger.storage.queries import journal, journal_walk
from ledger.storage.retry import Attempt, run_transaction


class JournalMethods(StoreMethods):
    seal_lookback_seconds: float = 300.0

    async def seal_block(self, max_transactions: int, build: BuildBlock) -> int:
        name = self.engine.dialect.name
        try:
            if dialect.seals_in_one_transaction(name):
                return await run_transaction(
                    self.engine.execution_options(**dialect.seal_options(name)),
                    self.policy,
                    lambda conn, attempt: self._seal_here(conn, attempt, max_transactions, build),
                )
            return await self._seal_at_closed_time(max_transactions, build)
        except journal.LostRace:
            return 0

    async def _seal_here(
        self, conn: AsyncConnection, attempt: Attempt, limit: int, build: BuildBlock
    ) -> int:
        attempt.wrote = True
        return await journal.seal_in_snapshot(conn, limit, self.seal_lookback_seconds, build)

    async def _seal_at_closed_time(self, limit: int, build: BuildBlock) -> int:
        """CockroachDB: read the newest block and a closed time; read what
        committed up to that time at that time; append the block in an
        ordinary transaction, where the block number's primary key turns
        away a sequencer that lost the race (see `dialect.journal`)."""

        async def bounds(conn: AsyncConnection):
            return await journal.head(conn), *(await journal.bound_and_now(conn))

        found, closed, now = await self._read(bounds)

        async def pick(conn: AsyncConnection):
            for statement in dialect.closed_read_statements(self.engine.dialect.name, closed):
                await conn.execute(text(statement))
            return await journal.sealable(conn, found, None, limit, self.seal_lookback_seconds)

        picked = await self._read(pick)
        if not picked:
            return 0
        detail = await build(found.block if found else None, [p[0] for p in picked], now)
        _, position, last_id = picked[-1]

        async def append(conn: AsyncConnection, attempt: Attempt) -> int:
            attempt.wrote = True
            await journal.append(conn, detail, position, last_id)
            return len(picked)

        return await run_transaction(self.engine, self.policy, append)

    async def head_block(self) -> Block | None:
        found = await self._read(journal.head)
        return found.block if found else None

    async def block_detail(self, number: int) -> BlockDetail | None:
        return await self._read(lambda conn: journal.block_detail(conn, number))

    async def blocks_after(self, number: int, limit: int) -> list[Block]:
        return await self._read(lambda conn: journal.blocks_after(conn, number, limit))

    async def proof_material(
        self, transaction_id: str, max_blocks: int
    ) -> tuple[JournalRecord, BlockDetail | None, list[Block], bool] | None:
        return await self._read(
            lambda conn: journal.proof_material(conn, transaction_id, max_blocks)
        )

    async def walk_journal(
        self, since_block: int, make_check: Callable[[Block | None], JournalCheck]
    ) -> JournalReport:
        """In one snapshot."""
        return await self._snapshot_read(
            lambda conn: journal_walk.walk(conn, since_block, make_check)
        )
