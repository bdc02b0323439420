"""The two ways a posting reaches the database (see `dialect.batches_postings`):
two messages on PostgreSQL, `BEGIN; EXECUTE open(...)` and
`EXECUTE write(...); COMMIT`, with statements prepared by SQL PREPARE on
each connection; four on CockroachDB. What the batched path adds: prepared
statements that must survive psycopg's DEALLOCATE ALL, refusals that surface
only in the COMMIT message, and connections that return to their pool as
they left it."""

import pytest
from sqlalchemy import text

from ledger.app import build_ledger, build_store
from ledger.engine import errors
from ledger.engine.model import IdempotencyKey, Leg, NewTransaction, ReversalRequest
from ledger.storage import dialect
from ledger.storage.database import create_engine
from ledger.storage.retry import ATTEMPTS
from ledger.storage.store import SqlStore
from support.ids import fresh_id, key
from support.ledger import open_account


def count(outcome: str) -> float:
    return ATTEMPTS.labels(outcome)._value.get()


def transfer(a: str, b: str, amount: int) -> NewTransaction:
    return NewTransaction([Leg(a, "debit", amount), Leg(b, "credit", amount)])


@pytest.fixture
async def one_connection(database_url, settings):
    """A ledger whose postings all go through one connection."""
    store = build_store(
        database_url, settings.with_overrides(pool_size=1), application_name="ledger-one"
    )
    yield build_ledger(store, settings), store
    await store.dispose()


def batched(database_url: str) -> bool:
    return dialect.batches_postings(dialect.dialect_name(database_url))


async def test_postgresql_batches_and_cockroachdb_does_not():
    assert dialect.batches_postings(dialect.POSTGRESQL)
    assert not dialect.batches_postings(dialect.COCKROACHDB)


async def test_statements_dropped_behind_the_ledgers_back_are_prepared_again(
    ledger, one_connection, database_url
):
    if not batched(database_url):
        pytest.skip("CockroachDB posts in four messages, with no SQL PREPARE")
    one, store = one_connection
    a, b = await open_account(ledger), await open_account(ledger)
    await one.postings.post(transfer(a, b, 1), key())
    async with store.posting_engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        names = await (await raw.execute("SELECT name FROM pg_prepared_statements")).fetchall()
        assert {"ledger_open_2", "ledger_write_2_0_2"} <= {n for (n,) in names}
        await raw.execute("DEALLOCATE ALL")  # as a pooler's reset would
    lost = count("statements_lost")
    result = await one.postings.post(transfer(a, b, 2), key())
    assert count("statements_lost") == lost + 1  # found out, prepared again, retried
    assert not result.replayed
    assert (await ledger.accounts.balance(a)).posted.debits == 3


async def test_psycopgs_deallocate_all_after_a_rollback_costs_no_attempt(
    ledger, one_connection, database_url
):
    """psycopg prepares a statement of its own after five uses (here the
    lookups a reversal makes), and then answers the next ROLLBACK (here a
    refused posting's) with DEALLOCATE ALL, which drops the posting
    statements too. The store must notice the rollback and prepare them
    again, rather than fail an attempt on a missing one."""
    if not batched(database_url):
        pytest.skip("CockroachDB posts in four messages, with no SQL PREPARE")
    one, _store = one_connection
    a, b = await open_account(ledger), await open_account(ledger)
    lost = count("statements_lost")
    for _ in range(3):
        for _ in range(7):
            posted = await one.postings.post(transfer(a, b, 1), key())
            await one.postings.reverse(posted.transaction.id, ReversalRequest(), key())
        with pytest.raises(errors.UnknownAccount):
            await one.postings.post(transfer(a, fresh_id("nobody"), 1), key())
        assert not (await one.postings.post(transfer(a, b, 1), key())).replayed
    assert count("statements_lost") == lost
    assert (await ledger.accounts.balance(a)).posted.debits == 3 * (7 + 1)


async def test_a_store_without_a_posting_pool_returns_its_connections_as_they_were(
    ledger, database_url, settings
):
    """Without a pool of its own for postings, the store switches the
    connection to autocommit while it posts; SQLAlchemy must switch it back
    when it returns, or the next transaction would run statement by
    statement."""
    engine = create_engine(
        database_url, settings.with_overrides(pool_size=1), application_name="ledger-shared"
    )
    store = SqlStore(engine, build_store(database_url, settings).policy)
    try:
        one = build_ledger(store, settings)
        a, b = await open_account(ledger), await open_account(ledger)
        await one.postings.post(transfer(a, b, 1), key())
        with pytest.raises(errors.UnknownAccount):
            await one.postings.post(transfer(a, fresh_id("nobody"), 1), key())
        async with engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw.autocommit is False
            assert await conn.get_isolation_level() == "SERIALIZABLE"
        assert (await one.accounts.balance(a)).posted.debits == 1
    finally:
        await store.dispose()


@pytest.mark.parametrize("path", ["batched", "four messages"])
async def test_a_total_overflowing_at_commit_is_refused_and_writes_nothing(
    path, ledger, four_message_ledger, owner_engine
):
    """On the batched path the write travels with COMMIT, so an overflow of a
    running total surfaces there; it must still be the client's 422, with
    nothing written."""
    posting = ledger if path == "batched" else four_message_ledger
    a, b = await open_account(ledger), await open_account(ledger)
    near = 2**63 - 10
    async with owner_engine.connect() as conn:
        await conn.execute(
            text("UPDATE account_balances SET posted_debits = :v WHERE account_id = :a"),
            {"v": near, "a": a},
        )
        await conn.commit()
    try:
        with pytest.raises(errors.BalanceOverflow):
            await posting.postings.post(transfer(a, b, 100), key())
        async with owner_engine.connect() as conn:
            written = await conn.execute(
                text("SELECT count(*) FROM entries WHERE account_id IN (:a, :b)"), {"a": a, "b": b}
            )
            assert written.scalar_one() == 0
    finally:
        async with owner_engine.connect() as conn:  # the cache again equals the journal
            await conn.execute(
                text("UPDATE account_balances SET posted_debits = 0 WHERE account_id = :a"),
                {"a": a},
            )
            await conn.commit()
    assert (await posting.accounts.balance(b)).posted.credits == 0


AWKWARD = [
    "O'Brien",
    "back\\slash \\' and \\\\",
    "$1 $$ %s %(x)s ; COMMIT; --",
    "E'\\n' \n\t\r newline and tab",
    "ünïcödé 漢字 🎉 \u200b",
    "'); DROP TABLE entries; --",
]


@pytest.mark.parametrize("path", ["batched", "four messages"])
async def test_awkward_text_is_stored_exactly(path, ledger, four_message_ledger):
    """Text reaches the batched path as literals (escaped by libpq); what
    comes back must be what was sent, on both paths."""
    posting = ledger if path == "batched" else four_message_ledger
    a, b = await open_account(ledger), await open_account(ledger)
    for i, value in enumerate(AWKWARD):
        printable = "".join(c for c in value if c.isprintable())
        k = IdempotencyKey(f"tests {printable}", f"{printable}-{i}-{fresh_id()}")
        cmd = NewTransaction(
            [Leg(a, "debit", 1), Leg(b, "credit", 1)],
            description=value,
            metadata={value: [value, {"n": i, "ok": True, "none": None}]},
        )
        result = await posting.postings.post(cmd, k)
        stored = await ledger.postings.get(result.transaction.id)
        assert stored.description == value
        assert stored.metadata == {value: [value, {"n": i, "ok": True, "none": None}]}
        again = await posting.postings.post(cmd, k)  # the key, exactly, finds it
        assert again.replayed and again.transaction.id == result.transaction.id
    assert (await ledger.accounts.balance(a)).posted.debits == len(AWKWARD)
    assert (await ledger.verify()).ok


def single_posting_read():
    from ledger.storage.posting.statements import open_posting

    return open_posting(3), {"id_0": "load-1", "id_1": "load-2", "id_2": "load-3"}


def batch_read():
    from ledger.storage.posting.batch_statements import LOCK

    return LOCK, {"ids": ["load-1", "load-2", "load-3"]}


@pytest.mark.parametrize("read", [single_posting_read, batch_read])
async def test_a_postings_locking_read_is_an_index_lookup_on_a_table_without_statistics(
    owner_engine, database_url, read
):
    """The root of `fan_in_hot`'s retry storm on a fresh cluster: with no
    statistics yet, the planner scanned `account_balances` for the
    posting's locking read, and under SERIALIZABLE a scan predicate-locks
    the whole table. A temporary table of the same name (searched first)
    and 1,000 rows stands for a fresh cluster's: without the posting's
    settings its plan is a scan; with them, an index lookup."""
    if dialect.dialect_name(database_url) != dialect.POSTGRESQL:
        pytest.skip("CockroachDB reads a primary key as a point lookup, and has no SIREAD locks")
    from sqlalchemy.dialects import postgresql

    built, given = read()
    statement = built.compile(dialect=postgresql.psycopg.dialect())
    explain = "EXPLAIN " + str(statement)
    params = {name: None for name in statement.binds}
    params.update(given)
    async with owner_engine.connect() as conn:
        await conn.execute(
            text(
                "CREATE TEMP TABLE account_balances "
                "(LIKE public.account_balances INCLUDING ALL) ON COMMIT DROP"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO account_balances (account_id, posted_debits, posted_credits) "
                "SELECT 'load-' || i, 0, 0 FROM generate_series(0, 999) AS i"
            )
        )

        async def plan() -> str:
            rows = await conn.exec_driver_sql(explain, params)
            return "\n".join(r[0] for r in rows)

        assert "Seq Scan on account_balances" in await plan()
        for setting in dialect.posting_settings(dialect.POSTGRESQL):
            await conn.exec_driver_sql(setting)
        assert "Seq Scan on account_balances" not in await plan()
        await conn.rollback()
