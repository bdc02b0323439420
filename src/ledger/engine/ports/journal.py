"""The sealed journal's port."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol

from ledger.engine.journal_check import JournalCheck, JournalReport
from ledger.engine.journal_model import Block, BlockDetail, JournalRecord

BuildBlock = Callable[[Block | None, list[JournalRecord], datetime], Awaitable[BlockDetail]]


class JournalStore(Protocol):
    """The sealed journal's reads and its one write."""

    async def seal_block(self, max_transactions: int, build: BuildBlock) -> int:
        """Hand the transactions that may be sealed next (up to
        `max_transactions`, in commit order) to `build` with the newest
        block and the database's time, and append the block it makes,
        all or nothing. Returns how many were sealed: 0 when none was
        waiting, or another process appended that block first."""
        ...

    async def head_block(self) -> Block | None: ...

    async def block_detail(self, number: int) -> BlockDetail | None: ...

    async def blocks_after(self, number: int, limit: int) -> list[Block]: ...

    async def proof_material(
        self, transaction_id: str, max_blocks: int
    ) -> tuple[JournalRecord, BlockDetail | None, list[Block], bool] | None:
        """The transaction's record; its block with the block's sealed
        transactions (None while unsealed); up to `max_blocks` blocks after
        it, and whether those reach the head. None when no such transaction."""
        ...

    async def walk_journal(
        self, since_block: int, make_check: Callable[[Block | None], JournalCheck]
    ) -> JournalReport:
        """In one snapshot: feed every block from `since_block` on, with its
        rows, to a check made with the block before it, then finish it with
        what was left out."""
        ...
