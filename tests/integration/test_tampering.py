"""Tampering with the sealed journal as the database owner (who can do what
the service's role cannot) is found by `verify`, and each change is named.
Each test damages a database of its own."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import text

from ledger.app import build_ledger, build_store
from ledger.cli import main
from ledger.engine.model import IdempotencyKey, Leg, NewTransaction
from ledger.storage.database import create_engine
from support.database import new_database
from support.ids import fresh_id
from support.ledger import open_account


@pytest.fixture
async def books(server_url, settings):
    """A fresh database with nine transactions sealed in blocks of two
    (the last block holds one): (ledger, owner engine, url, ids in order)."""
    url = await asyncio.to_thread(new_database, server_url, "ledger_tamper")
    store = build_store(url, settings, application_name="ledger-tamper")
    ledger = build_ledger(store, settings)
    owner = create_engine(url, settings, role="", application_name="ledger-tamper-owner")
    a, b = await open_account(ledger), await open_account(ledger, normal_side="credit")
    ids = []
    for amount in range(1, 10):
        posted = await ledger.postings.post(
            NewTransaction(
                [Leg(a, "debit", amount), Leg(b, "credit", amount)], metadata={"n": amount}
            ),
            IdempotencyKey("tests", fresh_id("key")),
        )
        ids.append(posted.transaction.id)
    while await ledger.journal.seal(2):
        pass
    assert (await ledger.verify()).ok
    yield ledger, owner, url, ids
    await store.dispose()
    await owner.dispose()


async def as_owner(owner, *statements: str, **params) -> None:
    async with owner.begin() as conn:
        for statement in statements:
            await conn.execute(text(statement), params)


async def block_of(ledger, transaction_id: str) -> int:
    return (await ledger.postings.get(transaction_id)).block


async def test_a_changed_entry_amount_is_named(books):
    ledger, owner, _, ids = books
    await as_owner(
        owner,
        "UPDATE entries SET amount = amount + 100 WHERE transaction_id = CAST(:t AS UUID) "
        "AND direction = 'debit'",
        t=ids[4],
    )
    report = (await ledger.verify()).journal
    assert not report.ok
    assert [(t.transaction_id, t.block) for t in report.changed_transactions] == [
        (ids[4], await block_of(ledger, ids[4]))
    ]
    assert report.first_broken_block == await block_of(ledger, ids[4])


async def test_changed_header_metadata_is_named(books):
    ledger, owner, _, ids = books
    await as_owner(
        owner,
        "UPDATE transactions SET metadata = CAST('{\"n\": 99}' AS JSONB) "
        "WHERE id = CAST(:t AS UUID)",
        t=ids[1],
    )
    report = (await ledger.verify()).journal
    assert [t.transaction_id for t in report.changed_transactions] == [ids[1]]
    assert report.first_broken_block == 1
    assert "no longer matches" in report.changed_transactions[0].problem


@pytest.mark.parametrize("sequence_row", ["deleted too", "left behind"])
async def test_a_deleted_transaction_is_named(books, sequence_row):
    ledger, owner, _, ids = books
    victim = ids[6]
    place = await ledger.postings.get(victim)
    deletes = [
        "DELETE FROM entries WHERE transaction_id = CAST(:t AS UUID)",
        "DELETE FROM transactions WHERE id = CAST(:t AS UUID)",
    ]
    if sequence_row == "deleted too":
        deletes.insert(0, "DELETE FROM journal WHERE transaction_id = CAST(:t AS UUID)")
    await as_owner(owner, *deletes, t=victim)
    report = (await ledger.verify()).journal
    assert report.first_broken_block == place.block
    problems = [p.problem for p in report.broken_blocks if p.block == place.block]
    if sequence_row == "deleted too":
        assert any(f"sequence {place.sequence} is missing" in p for p in problems), problems
        assert any("Merkle root" in p for p in problems), problems
    else:
        assert [(t.transaction_id, t.problem) for t in report.changed_transactions] == [
            (victim, "the transaction is gone from the journal")
        ]


async def test_a_forged_transaction_is_named_whether_sealed_later_or_slipped_below(books):
    """Forged with the service's own statements' shape, as the owner: sealed
    by the next round, its hash is right, but no audit row accounts for it;
    written with a position below the horizon, it is also left out of the
    sequence."""
    ledger, owner, _, ids = books
    entries_of = (
        "SELECT account_id FROM entries WHERE transaction_id = CAST(:t AS UUID) ORDER BY leg"
    )
    async with owner.connect() as conn:
        a, b = [r[0] for r in await conn.execute(text(entries_of), {"t": ids[0]})]
    forged = []
    for position in ("DEFAULT", "0"):
        tid = str(uuid.uuid4())
        forged.append(tid)
        await as_owner(
            owner,
            "INSERT INTO transactions (id, client_id, idempotency_key, fingerprint, metadata, "
            f"commit_xid) VALUES (CAST(:t AS UUID), 'tests', :k, 'x', '{{}}', {position})",
            "INSERT INTO entries (account_id, entry_id, transaction_id, leg, direction, amount, "
            "currency, created_at) VALUES "
            "(:a, gen_random_uuid(), CAST(:t AS UUID), 0, 'debit', 500, 'USD', now()), "
            "(:b, gen_random_uuid(), CAST(:t AS UUID), 1, 'credit', 500, 'USD', now())",
            t=tid,
            k=fresh_id("forged"),
            a=a,
            b=b,
        )
    while await ledger.journal.seal(2):
        pass
    report = (await ledger.verify()).journal
    assert not report.ok
    assert set(report.left_out.unaudited) == set(forged)
    if ledger.store.engine.dialect.name == "postgresql":
        # (On CockroachDB the position is the commit timestamp: none can be forged.)
        assert report.left_out.unsealed_below_horizon == [forged[1]]


async def test_two_blocks_swapped_are_found_at_the_first_and_the_command_exits_1(
    books, monkeypatch, capsys
):
    ledger, owner, url, _ = books
    swap = """
        UPDATE journal_blocks AS j SET first_sequence = o.first_sequence,
            last_sequence = o.last_sequence, merkle_root = o.merkle_root,
            previous_hash = o.previous_hash, hash = o.hash, sealed_at = o.sealed_at
        FROM journal_blocks AS o
        WHERE (j.number, o.number) IN ((2, 3), (3, 2))
    """
    await as_owner(
        owner,
        swap,
        "UPDATE journal SET block = CASE block WHEN 2 THEN 3 ELSE 2 END WHERE block IN (2, 3)",
    )
    report = (await ledger.verify()).journal
    assert report.first_broken_block == 2
    assert {p.block for p in report.broken_blocks} >= {2, 3}
    monkeypatch.setenv("LEDGER_DATABASE_URL", url)
    assert await asyncio.to_thread(main, ["verify"]) == 1
    out = capsys.readouterr().out
    assert "JOURNAL BROKEN from block 2" in out and "verify: DIFFERENCES FOUND" in out
    # Block 4 names the block 3 that was; from block 5 on, the chain holds.
    assert await asyncio.to_thread(main, ["verify", "--since-block", "4"]) == 1
    assert await asyncio.to_thread(main, ["verify", "--since-block", "5"]) == 0
