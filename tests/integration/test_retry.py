"""The retry loop against real failures: conflicting SERIALIZABLE
transactions, sessions killed mid-transaction and during COMMIT."""

import asyncio

from sqlalchemy import text

from ledger.engine.ledger import Ledger
from ledger.engine.model import IdempotencyKey, Leg, NewTransaction
from ledger.storage import dialect
from ledger.storage.database import create_engine
from ledger.storage.retry import ATTEMPTS, RetryPolicy, run_transaction
from ledger.storage.store import SqlStore
from support.ids import fresh_id
from support.ledger import open_account

POLICY = RetryPolicy(attempts=10, base_seconds=0.001, cap_seconds=0.01)


def count(outcome: str) -> float:
    return ATTEMPTS.labels(outcome)._value.get()


async def kill_sessions(owner_engine, application_name: str) -> None:
    name = owner_engine.dialect.name
    async with owner_engine.connect() as conn:
        await conn.execute(text(dialect.terminate_sessions_sql(name, application_name)))
        await conn.commit()


async def test_conflicting_serializable_transactions_are_retried_until_both_commit(
    ledger, database_url, settings
):
    account = await open_account(ledger)
    engine = create_engine(database_url, settings, application_name="retry-conflict")
    both_read = asyncio.Event()
    readers = 0
    attempts = []
    before = count("serialization")

    async def work(conn, _attempt):
        nonlocal readers
        attempts.append(1)
        await conn.execute(
            text("SELECT posted_debits FROM account_balances WHERE account_id = :a"),
            {"a": account},
        )
        if not both_read.is_set():
            readers += 1
            if readers == 2:
                both_read.set()
            await asyncio.wait_for(both_read.wait(), 5)
        # A write that changes no total keeps the cache equal to the journal,
        # but is still a write-write conflict for SERIALIZABLE.
        await conn.execute(
            text(
                "UPDATE account_balances SET posted_debits = posted_debits + 0 "
                "WHERE account_id = :a"
            ),
            {"a": account},
        )
        return "done"

    try:
        results = await asyncio.gather(
            run_transaction(engine, POLICY, work), run_transaction(engine, POLICY, work)
        )
    finally:
        await engine.dispose()
    assert results == ["done", "done"]
    assert len(attempts) >= 3, "one of the two must have been retried"
    assert count("serialization") > before


async def test_a_session_killed_mid_transaction_is_retried_on_a_new_connection(
    database_url, settings, owner_engine
):
    engine = create_engine(database_url, settings, application_name="retry-kill")
    before = count("connection")
    calls = []

    async def work(conn, _attempt):
        calls.append(1)
        await conn.execute(text("SELECT 1"))
        if len(calls) == 1:
            await kill_sessions(owner_engine, "retry-kill")
            await asyncio.sleep(0.05)
        return (await conn.execute(text("SELECT 41 + 1"))).scalar_one()

    try:
        assert await run_transaction(engine, POLICY, work) == 42
    finally:
        await engine.dispose()
    assert len(calls) == 2
    assert count("connection") > before


async def test_a_session_lost_at_commit_is_ambiguous_and_the_key_makes_the_retry_safe(
    ledger, database_url, settings, owner_engine
):
    """The first attempt writes everything, then its session dies before
    COMMIT completes. The loop must treat that as ambiguous, retry, and the
    posting must exist exactly once, answered as new (not a replay)."""
    a, b = await open_account(ledger), await open_account(ledger)
    engine = create_engine(database_url, settings, application_name="retry-ambiguous")
    store = SqlStore(engine, POLICY)
    killed = []

    class KillAfterAppend(SqlStore):
        async def run(self, work):
            async def wrapped(unit):
                original_append = unit.append_entries

                async def append(*args):
                    result = await original_append(*args)
                    if not killed:
                        killed.append(1)
                        await kill_sessions(owner_engine, "retry-ambiguous")
                        await asyncio.sleep(0.05)
                    return result

                unit.append_entries = append
                return await work(unit)

            return await super().run(wrapped)

    # One posting first, so that the connection has its statements prepared
    # and the posting below fails in its COMMIT message, not before it.
    await Ledger(store, ledger.limits).postings.post(
        NewTransaction([Leg(a, "debit", 1), Leg(b, "credit", 1)]),
        IdempotencyKey("tests", fresh_id()),
    )
    killing = Ledger(KillAfterAppend(engine, POLICY), ledger.limits)
    before = count("ambiguous")
    k = IdempotencyKey("tests", fresh_id("key"))
    try:
        result = await killing.postings.post(
            NewTransaction([Leg(a, "debit", 5), Leg(b, "credit", 5)]), k
        )
    finally:
        await store.dispose()
    assert killed and count("ambiguous") > before
    assert not result.replayed
    assert (await ledger.accounts.balance(a)).posted.debits == 1 + 5  # once, not twice
    again = await ledger.postings.post(NewTransaction([Leg(a, "debit", 5), Leg(b, "credit", 5)]), k)
    assert again.replayed and again.transaction.id == result.transaction.id
