"""The sealed journal's records: a sealed transaction's record and its
hash, a block and how the next one is made, the head, an inclusion proof.
No I/O here (`ledger.engine.journal` has the use cases)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, Literal

import msgspec

from ledger.engine import hashing

# --- a sealed transaction's record ---------------------------------------------------


class JournalEntry(msgspec.Struct, frozen=True):
    leg: int
    entry_id: str
    account_id: str
    direction: str
    amount: int
    currency: str
    pending: bool
    created_at: datetime


class JournalRecord(msgspec.Struct, frozen=True):
    """Everything stored of a transaction: what its hash covers."""

    id: str
    client_id: str
    idempotency_key: str
    fingerprint: str
    created_at: datetime
    description: str | None
    metadata: dict[str, Any]
    pending: bool
    timeout_seconds: int | None
    reverses: str | None
    resolves: str | None
    resolution: str | None
    entries: list[JournalEntry]


def encode_record(record: JournalRecord) -> dict[str, Any]:
    """The record as the JSON object its hash is taken of (see `hashing`)."""
    body = msgspec.structs.asdict(record)
    body["created_at"] = hashing.timestamp(record.created_at)
    body["entries"] = [
        {**msgspec.structs.asdict(e), "created_at": hashing.timestamp(e.created_at)}
        for e in sorted(record.entries, key=lambda e: e.leg)
    ]
    body["version"] = hashing.ENCODING_VERSION
    return body


def transaction_hash(record: JournalRecord) -> str:
    """SHA-256 of the record's canonical encoding, hex."""
    return hashing.sha256(hashing.canonical(encode_record(record))).hex()


# --- blocks ---------------------------------------------------------------------------


class Block(msgspec.Struct, frozen=True):
    number: int
    first_sequence: int
    last_sequence: int
    merkle_root: str
    previous_hash: str
    hash: str
    sealed_at: datetime


class SealedTransaction(msgspec.Struct, frozen=True):
    sequence: int
    # Null for a key limited to account prefixes: a block's leaves are
    # every tenant's, and such a key is shown their hashes alone (its own
    # transactions' proofs come from /transactions/{id}/proof).
    transaction_id: str | None
    hash: str


class BlockDetail(msgspec.Struct, frozen=True):
    """A block with its transactions in sequence order: enough to recompute
    its Merkle root and its hash."""

    block: Block
    transactions: list[SealedTransaction]


class JournalHead(msgspec.Struct, frozen=True):
    """The newest block (all null before the first is sealed). Record `hash`
    outside the system: every later proof and verification chains to it."""

    block: int | None
    last_sequence: int
    hash: str | None
    merkle_root: str | None
    sealed_at: datetime | None


# Transactions hashed between two returns to the event loop: the sequencer
# shares the loop with the requests it must not hold up (hashing 150
# transactions in one go held it for about 3 ms).
HASHED_PER_TURN = 32


async def build_block(
    previous: Block | None, records: list[JournalRecord], sealed_at: datetime
) -> BlockDetail:
    """The next block after `previous`, sealing `records` in the order given
    (storage's commit order)."""
    assert records, "an empty block is never sealed"
    first = previous.last_sequence + 1 if previous else 1
    number = previous.number + 1 if previous else 1
    previous_hash = previous.hash if previous else hashing.GENESIS_HASH
    hashes: list[str] = []
    for start in range(0, len(records), HASHED_PER_TURN):
        if start:
            await asyncio.sleep(0)
        hashes += [transaction_hash(r) for r in records[start : start + HASHED_PER_TURN]]
    root = hashing.merkle_root([bytes.fromhex(h) for h in hashes]).hex()
    last = first + len(records) - 1
    block = Block(
        number=number,
        first_sequence=first,
        last_sequence=last,
        merkle_root=root,
        previous_hash=previous_hash,
        hash=hashing.block_hash(number, first, last, root, previous_hash, sealed_at),
        sealed_at=sealed_at,
    )
    sealed = [
        SealedTransaction(first + i, r.id, h)
        for i, (r, h) in enumerate(zip(records, hashes, strict=True))
    ]
    return BlockDetail(block, sealed)


# --- inclusion proofs -----------------------------------------------------------------


class ProofStep(msgspec.Struct, frozen=True):
    side: Literal["left", "right"]
    hash: str


class Proof(msgspec.Struct, frozen=True):
    """How to check that a transaction is in the journal as it stands: its
    `record` hashes to `hash`; `hash` and `path` lead to the Merkle root of
    `block`; `chain` leads from `block` to the head, each block's
    `previous_hash` being the one before's `hash`. `tools/verify_proof.py`
    does all of it."""

    transaction_id: str
    sequence: int
    leaf_index: int
    hash: str
    record: dict[str, Any]
    path: list[ProofStep]
    block: Block
    # The blocks after `block`, up to the head or `proof_max_blocks` of them.
    chain: list[Block]
    chain_complete: bool
