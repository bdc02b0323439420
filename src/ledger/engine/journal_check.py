"""`verify`'s judgement of the sealed journal: each block as storage walks
them in order, then what the sequence left out. No I/O here."""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from ledger.engine import hashing
from ledger.engine.journal_model import Block, JournalRecord

# At most this many problems of each kind are listed; the counts are exact.
MAX_LISTED = 100


class SealedRow(msgspec.Struct, frozen=True):
    """One row of the sequence as stored, with the transaction it names as
    it now stands (None when that transaction is gone)."""

    sequence: int
    transaction_id: str
    hash: str
    record: JournalRecord | None


class BlockProblem(msgspec.Struct, frozen=True):
    block: int
    problem: str


class TransactionProblem(msgspec.Struct, frozen=True):
    transaction_id: str
    sequence: int
    block: int
    problem: str


class LeftOut(msgspec.Struct, frozen=True):
    """What the walk over the blocks cannot see, read after it in the same
    snapshot: transactions that should have a place and have none, and
    transactions no audit row accounts for."""

    # Below the newest block's horizon yet in no block: certainly left out.
    unsealed_below_horizon: list[str]
    unsealed_below_horizon_count: int
    # Committed after that horizon: waiting for the sequencer, not an error.
    waiting: int
    oldest_waiting_seconds: float | None
    # Committed transactions with no audit row naming them: not written by
    # the service.
    unaudited: list[str]
    unaudited_count: int


class JournalReport(msgspec.Struct, frozen=True):
    ok: bool
    first_block: int | None
    last_block: int | None
    blocks: int
    transactions: int
    first_broken_block: int | None
    broken_blocks: list[BlockProblem]
    changed_transactions: list[TransactionProblem]
    left_out: LeftOut


class JournalCheck:
    """Fed the blocks in order (`block`), then what was left out
    (`finish`). `previous` is the block before the first one fed (None
    when the walk starts at block 1)."""

    def __init__(self, previous: Block | None, hash_of: Callable[[JournalRecord], str]) -> None:
        self.previous = previous
        self.hash_of = hash_of
        self.first: int | None = None
        self.blocks = 0
        self.transactions = 0
        self.broken: list[BlockProblem] = []
        self.changed: list[TransactionProblem] = []
        self.broken_count = 0

    def block(self, block: Block, rows: list[SealedRow]) -> None:
        """Judge one block and its rows (in sequence order)."""
        problems = self._chain(block) + self._rows(block, rows)
        if _merkle(rows) != block.merkle_root:
            problems.append("its Merkle root does not match its transactions' stored hashes")
        if self.first is None:
            self.first = block.number
        self.blocks += 1
        self.transactions += len(rows)
        if problems:
            self.broken_count += 1
            if len(self.broken) < MAX_LISTED:
                self.broken.extend(BlockProblem(block.number, p) for p in problems)
        self.previous = block

    def _chain(self, block: Block) -> list[str]:
        """The block against its own hash and the block before it."""
        problems = []
        recomputed = hashing.block_hash(
            block.number,
            block.first_sequence,
            block.last_sequence,
            block.merkle_root,
            block.previous_hash,
            block.sealed_at,
        )
        if recomputed != block.hash:
            problems.append("its hash does not match its contents")
        before = self.previous
        number = before.number + 1 if before else 1
        if block.number != number:
            problems.append(f"block {number} was expected here (blocks missing or reordered)")
        expected_first = before.last_sequence + 1 if before else 1
        if block.first_sequence != expected_first:
            problems.append(
                f"its first sequence is {block.first_sequence}, not {expected_first}: "
                "the sequence has a gap or an overlap"
            )
        previous_hash = before.hash if before else hashing.GENESIS_HASH
        if block.previous_hash != previous_hash:
            problems.append("its previous_hash is not the hash of the block before it")
        return problems

    def _rows(self, block: Block, rows: list[SealedRow]) -> list[str]:
        """Each row against its transaction, and the rows against the range."""
        problems = []
        wanted = set(range(block.first_sequence, block.last_sequence + 1))
        found = {r.sequence for r in rows}
        missing = sorted(wanted - found)
        if missing:
            problems.append(f"sequence {missing[0]} is missing ({len(missing)} in all)")
        if found - wanted:
            problems.append("it holds sequences outside its range")
        for row in rows:
            if row.record is None:
                why = "the transaction is gone from the journal"
            elif self.hash_of(row.record) != row.hash:
                why = "its content no longer matches its sealed hash"
            else:
                continue
            problems.append(f"transaction {row.transaction_id}: {why}")
            if len(self.changed) < MAX_LISTED:
                self.changed.append(
                    TransactionProblem(row.transaction_id, row.sequence, block.number, why)
                )
        return problems

    def finish(self, left_out: LeftOut) -> JournalReport:
        first_broken = self.broken[0].block if self.broken else None
        ok = (
            not self.broken
            and left_out.unsealed_below_horizon_count == 0
            and left_out.unaudited_count == 0
        )
        return JournalReport(
            ok=ok,
            first_block=self.first,
            last_block=self.previous.number if self.previous and self.blocks else None,
            blocks=self.blocks,
            transactions=self.transactions,
            first_broken_block=first_broken,
            broken_blocks=self.broken,
            changed_transactions=self.changed,
            left_out=left_out,
        )


def _merkle(rows: list[SealedRow]) -> str | None:
    if not rows:
        return None
    return hashing.merkle_root([bytes.fromhex(r.hash) for r in rows]).hex()
