"""The sealed journal's use cases: sealing, the head, blocks, inclusion
proofs, verification (the records are in `journal_model`).

Sealing happens after commit, in blocks, in a background task of every
service process (`ledger.workers.seal_journal`); no posting waits for it or
takes a lock for it. Which transactions may be sealed, and in which order,
is storage's to read (`ledger.storage.dialect.journal` says how on each
database); what a block is, is said here.
"""

from __future__ import annotations

from ledger.engine import errors, hashing, paging, reach
from ledger.engine.access import DIRECT, Actor
from ledger.engine.journal_check import JournalCheck, JournalReport
from ledger.engine.journal_model import (
    BlockDetail,
    JournalHead,
    Proof,
    ProofStep,
    SealedTransaction,
    build_block,
    encode_record,
    transaction_hash,
)
from ledger.engine.limits import Limits
from ledger.engine.model import Page
from ledger.engine.ports import JournalStore

# --- the use cases --------------------------------------------------------------------


class Journal:
    def __init__(self, store: JournalStore, limits: Limits, *, proof_max_blocks: int) -> None:
        self.store = store
        self.limits = limits
        self.proof_max_blocks = proof_max_blocks

    async def seal(self, max_transactions: int) -> int:
        """Seal the next block of up to `max_transactions` ended
        transactions; returns how many were sealed (0 when none was waiting,
        or another process sealed this block first)."""
        return await self.store.seal_block(max_transactions, build_block)

    async def head(self) -> JournalHead:
        block = await self.store.head_block()
        if block is None:
            return JournalHead(None, 0, None, None, None)
        return JournalHead(
            block.number, block.last_sequence, block.hash, block.merkle_root, block.sealed_at
        )

    async def block(self, number: int | str, actor: Actor = DIRECT) -> BlockDetail:
        """Block `number` (1, 2, ...); for a key limited to account
        prefixes, its leaves without their transaction ids. Raises
        BlockNotFound."""
        text = str(number)
        found = None
        if text.isdigit() and len(text) <= 18:
            found = await self.store.block_detail(int(text))
        if found is None:
            raise errors.BlockNotFound(f"no block {number} in the sealed journal", block=number)
        if actor.accounts is not None:
            leaves = [SealedTransaction(t.sequence, None, t.hash) for t in found.transactions]
            return BlockDetail(found.block, leaves)
        return found

    async def blocks(self, cursor: str | None, limit: int | None = None) -> Page:
        """The blocks in order, oldest first. Raises InvalidCursor, InvalidValue."""
        size = paging.page_size(limit, self.limits.default_page_size, self.limits.max_page_size)
        after = paging.decode_cursor(cursor)
        if after is not None and not after.isdigit():
            raise errors.InvalidCursor(f"cursor {cursor!r} is not valid", cursor=cursor)
        number = int(after) if after is not None else 0
        items = await self.store.blocks_after(number, size + 1)
        return paging.page(items, size, lambda b: str(b.number))

    async def proof(self, transaction_id: str, actor: Actor = DIRECT) -> Proof:
        """Raises TransactionNotFound (for one out of `actor`'s reach too),
        NotSealedYet."""
        found = await self.store.proof_material(transaction_id, self.proof_max_blocks)
        if found is None or not reach.sees(actor, [e.account_id for e in found[0].entries]):
            raise errors.TransactionNotFound(
                f"no transaction {transaction_id!r}", transaction_id=transaction_id
            )
        record, detail, chain, complete = found
        if detail is None:
            raise errors.NotSealedYet(
                f"transaction {transaction_id!r} is committed but not sealed into a block "
                "yet; it will be within about a second while a service runs",
                transaction_id=transaction_id,
            )
        index = next(i for i, t in enumerate(detail.transactions) if t.transaction_id == record.id)
        hashes = [bytes.fromhex(t.hash) for t in detail.transactions]
        path = [ProofStep(side, h.hex()) for side, h in hashing.merkle_path(hashes, index)]
        return Proof(
            transaction_id=record.id,
            sequence=detail.transactions[index].sequence,
            leaf_index=index,
            hash=detail.transactions[index].hash,
            record=encode_record(record),
            path=path,
            block=detail.block,
            chain=chain,
            chain_complete=complete,
        )

    async def verify(self, since_block: int = 1) -> JournalReport:
        """Recompute every sealed transaction's hash, every block's Merkle
        root and the chain from `since_block` on; find gaps, transactions
        left out of the sequence, and transactions no audit row accounts
        for."""
        return await self.store.walk_journal(
            since_block, lambda previous: JournalCheck(previous, transaction_hash)
        )
