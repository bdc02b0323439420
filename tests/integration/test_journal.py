"""The sealed journal on the real database: every kind of posting gets a
place in one gap-free sequence, a posting held open cannot be overtaken
once sealing has passed it, racing sequencers seal each block once, and
the chain verifies."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from sqlalchemy import text

from ledger.app import build_ledger, build_store
from ledger.engine import errors, hashing
from ledger.engine.model import (
    Leg,
    NewTransaction,
    PostPendingRequest,
    ReversalRequest,
    VoidRequest,
)
from ledger.storage import dialect
from support.database import HeldStore
from support.ids import key
from support.ledger import open_account


def transfer(a: str, b: str, amount: int = 5, **fields) -> NewTransaction:
    return NewTransaction([Leg(a, "debit", amount), Leg(b, "credit", amount)], **fields)


async def seal_all(ledger) -> int:
    """Seal until nothing is waiting (another sequencer, the session app's,
    may seal some of them meanwhile: either way they get their place)."""
    sealed = 0
    while n := await ledger.journal.seal(1000):
        sealed += n
    return sealed


async def proof_once_sealed(ledger, transaction_id: str, seconds: float = 10.0):
    """Its proof, sealing until it has one: `seal` answers 0 while another
    sequencer (the session app's) holds the guard, and that one may not
    have reached this transaction yet."""
    for _ in range(int(seconds / 0.05)):
        await seal_all(ledger)
        try:
            return await ledger.journal.proof(transaction_id)
        except errors.NotSealedYet:
            await asyncio.sleep(0.05)
    raise AssertionError(f"{transaction_id} was not sealed within {seconds:g} s")


async def once_sealed(ledger, transaction_id: str, seconds: float = 10.0):
    """The transaction once it has its place (sealing meanwhile); fails the
    test if it is left out of the sequence."""
    for _ in range(int(seconds / 0.05)):
        await seal_all(ledger)
        found = await ledger.postings.get(transaction_id)
        if found.sequence is not None:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"{transaction_id} left out of the sequence")


async def sequence_rows(owner_engine) -> list[tuple[int, int, str]]:
    async with owner_engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT sequence, block, CAST(transaction_id AS TEXT) FROM journal ORDER BY 1")
        )
        return [tuple(r) for r in rows]


async def test_every_kind_of_posting_gets_one_place_in_a_gap_free_sequence(ledger, owner_engine):
    a, b = await open_account(ledger), await open_account(ledger, normal_side="credit")
    plain = (await ledger.postings.post(transfer(a, b, 50), key())).transaction
    held = (await ledger.postings.post(transfer(a, b, 10, pending=True), key())).transaction
    posted = (
        await ledger.postings.post_pending(held.id, PostPendingRequest(amount=4), key())
    ).transaction
    voidable = (await ledger.postings.post(transfer(a, b, 3, pending=True), key())).transaction
    voided = (await ledger.postings.void_pending(voidable.id, VoidRequest(), key())).transaction
    reversal = (await ledger.postings.reverse(plain.id, ReversalRequest(), key())).transaction
    expiring = (
        await ledger.postings.post(transfer(a, b, 2, pending=True, timeout_seconds=1), key())
    ).transaction
    assert plain.sequence is None and plain.block is None, "not sealed when it is answered"
    await asyncio.sleep(1.1)
    assert await ledger.postings.expire_due() >= 1
    expiry = (await ledger.postings.get(expiring.id)).resolved_by
    assert expiry is not None

    await seal_all(ledger)

    ours = [plain, held, posted, voidable, voided, reversal, expiring]
    places = [await ledger.postings.get(t.id) for t in ours]
    places.append(await ledger.postings.get(expiry))
    assert all(t.sequence is not None and t.block is not None for t in places)
    assert len({t.sequence for t in places}) == len(places)
    rows = await sequence_rows(owner_engine)
    assert [s for s, _, _ in rows] == list(range(1, len(rows) + 1)), "gap-free from 1"
    assert len({tid for _, _, tid in rows}) == len(rows), "each transaction once"
    head = await ledger.journal.head()
    assert head.last_sequence >= rows[-1][0] or head.last_sequence == rows[-1][0]
    report = await ledger.journal.verify()
    assert report.ok, report
    assert report.left_out.unsealed_below_horizon_count == 0


async def test_a_sealed_transaction_carries_the_hash_of_its_record(ledger):
    a, b = await open_account(ledger), await open_account(ledger, normal_side="credit")
    posted = (
        await ledger.postings.post(
            transfer(a, b, 7, description="café ☕", metadata={"z": [1, {"b": None}], "a": "é"}),
            key(),
        )
    ).transaction
    proof = await proof_once_sealed(ledger, posted.id)
    assert hashing.sha256(hashing.canonical(proof.record)).hex() == proof.hash
    assert proof.record["entries"][0]["account_id"] == a
    leaf = bytes.fromhex(proof.hash)
    path = [(step.side, bytes.fromhex(step.hash)) for step in proof.path]
    assert hashing.root_from_path(leaf, path).hex() == proof.block.merkle_root
    detail = await ledger.journal.block(proof.block.number)
    assert [t.hash for t in detail.transactions][proof.leaf_index] == proof.hash
    # The chain from its block leads to the head.
    chain = [proof.block, *proof.chain]
    for before, after in itertools.pairwise(chain):
        assert after.previous_hash == before.hash
    assert proof.chain_complete
    assert chain[-1].number >= (await ledger.journal.head()).block - 1


async def test_an_unsealed_transaction_has_no_proof_yet_and_an_unknown_one_none_at_all(ledger):
    with pytest.raises(errors.TransactionNotFound):
        await ledger.journal.proof("00000000-0000-4000-8000-000000000000")
    with pytest.raises(errors.BlockNotFound):
        await ledger.journal.block(10**12)


async def test_a_posting_held_open_is_sealed_after_everything_sealed_while_it_was_open(
    ledger, database_url, settings
):
    """The trap: an id assigned before commit is not commit order. A posting
    that started before others and commits after them must not land among
    blocks already sealed; it takes the next place after them."""
    await seal_all(ledger)
    base = build_store(database_url, settings, application_name="ledger-held")
    store = HeldStore(base.engine, base.policy)
    held_ledger = build_ledger(store, settings)
    # Hot accounts for the held posting (no balance row read under a lock or
    # written), far in key order from the others' accounts: PostgreSQL's
    # SERIALIZABLE check is page-grained, and sharing pages would make the
    # held posting retry, with a new header written after the others.
    a = await open_account(ledger, hot=True, prefix="aaa")
    b = await open_account(ledger, normal_side="credit", hot=True, prefix="aaa")
    c = await open_account(ledger, prefix="zzz")
    d = await open_account(ledger, normal_side="credit", prefix="zzz")
    try:
        late = asyncio.create_task(held_ledger.postings.post(transfer(a, b, 1), key()))
        await asyncio.wait_for(store.written.wait(), timeout=10)
        after = [(await ledger.postings.post(transfer(c, d), key())).transaction for _ in range(3)]
        await seal_all(ledger)
        head_while_open = (await ledger.journal.head()).last_sequence
        store.release.set()
        held = (await asyncio.wait_for(late, timeout=10)).transaction
    finally:
        store.release.set()
        await base.dispose()
    # Its header is the one written before the others (no retry wrote a
    # new one after them): the case the trap is about.
    assert held.created_at < min(t.created_at for t in after)
    held = await once_sealed(ledger, held.id)
    assert held.sequence > head_while_open, "nothing sealed before it ended may follow it"
    for t in after:
        assert (await once_sealed(ledger, t.id)).sequence is not None
    assert (await ledger.journal.verify()).ok


@pytest.mark.parametrize("guard", ["guarded", "primary key alone"])
async def test_sequencers_racing_in_many_stores_seal_each_transaction_once(
    ledger, database_url, settings, owner_engine, guard, monkeypatch
):
    """Four sequencers and a stream of postings. On PostgreSQL an advisory
    lock usually lets one seal while the others skip; without it (as on
    CockroachDB) they race to the block's primary key and all but one write
    nothing. Either way: each transaction once, no gap."""
    if guard != "guarded":
        monkeypatch.setattr(dialect, "seal_guard_sql", lambda name: None)
    stores = [
        build_store(database_url, settings, application_name=f"ledger-seal-{i}") for i in range(4)
    ]
    sealers = [build_ledger(s, settings) for s in stores]
    a, b = await open_account(ledger), await open_account(ledger, normal_side="credit")
    stop = asyncio.Event()

    async def post() -> None:
        for _ in range(60):
            await ledger.postings.post(transfer(a, b, 1), key())
        stop.set()

    async def seal(sealer) -> None:
        while not stop.is_set():
            await sealer.journal.seal(7)
            await asyncio.sleep(0)

    try:
        await asyncio.gather(post(), *(seal(s) for s in sealers))
        await asyncio.gather(*(seal_all(s) for s in sealers))
    finally:
        for s in stores:
            await s.dispose()
    rows = await sequence_rows(owner_engine)
    assert [s for s, _, _ in rows] == list(range(1, len(rows) + 1))
    report = await ledger.journal.verify()
    assert report.ok, report
    assert report.left_out.waiting == 0, "every committed transaction has its place"
