"""HTTP handlers for the sealed journal (scope `journal:read`): the head,
the blocks, and a transaction's inclusion proof."""

from __future__ import annotations

from litestar import Request, Router, get
from litestar.params import FromPath, FromQuery

from ledger.api import request as req
from ledger.api.access import requires
from ledger.engine.access import JOURNAL_READ
from ledger.engine.journal_model import Block, BlockDetail, JournalHead, Proof
from ledger.engine.model import Page
from ledger.settings import Settings


@get("/journal/head", tags=["journal"], **requires(JOURNAL_READ))
async def journal_head(ledger: req.LedgerDep) -> JournalHead:
    """The newest sealed block: its number, the last sequence it holds, its
    hash and when it was sealed (all null before the first block). Record
    the hash somewhere the ledger's database owner cannot reach: every later
    proof and `ledger verify` chain to it."""
    return await ledger.journal.head()


@get("/journal/blocks", tags=["journal"], **requires(JOURNAL_READ))
async def list_blocks(
    ledger: req.LedgerDep,
    cursor: FromQuery[str | None] = None,
    limit: FromQuery[int | None] = None,
) -> Page[Block]:
    """The sealed blocks, oldest first: to walk the chain past what a proof
    carries."""
    return await ledger.journal.blocks(cursor, limit)


@get("/journal/blocks/{number:str}", tags=["journal"], **requires(JOURNAL_READ))
async def get_block(number: FromPath[str], request: Request, ledger: req.LedgerDep) -> BlockDetail:
    """A block with its transactions' ids and hashes in sequence order:
    enough to recompute its Merkle root and its hash. A key limited to
    account prefixes gets the hashes alone (`transaction_id` null): the
    block holds every tenant's transactions."""
    return await ledger.journal.block(number, req.actor(request))


@get(
    "/transactions/{transaction_id:str}/proof",
    tags=["journal"],
    **requires(JOURNAL_READ, answers=(409,)),
)
async def transaction_proof(
    transaction_id: FromPath[str], request: Request, ledger: req.LedgerDep
) -> Proof:
    """The proof that a sealed transaction is in the journal unchanged: its
    record (what its hash covers), the Merkle path to its block's root, and
    the chain of blocks from there to the head. `tools/verify_proof.py`
    checks it. 409 `not-sealed-yet` for about a second after commit."""
    return await ledger.journal.proof(transaction_id, req.actor(request))


def router(settings: Settings) -> Router:
    """The sealed journal's routes."""
    return Router(
        path="/", route_handlers=[journal_head, list_blocks, get_block, transaction_proof]
    )
