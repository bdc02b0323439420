"""The journal and the audit trail are append-only for the role the service
writes with: the database refuses UPDATE and DELETE, whatever the code
tries."""

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from ledger.engine.model import IdempotencyKey, Leg, NewTransaction
from ledger.storage import dialect, failures
from ledger.storage.database import create_engine, login_is_privileged
from support.ledger import open_account


@pytest.fixture
async def writer_engine(database_url, settings):
    engine = create_engine(
        dialect.writer_url(database_url, settings.db_role), settings, application_name="writer"
    )
    yield engine
    await engine.dispose()


@pytest.fixture
async def posted(ledger):
    a, b = await open_account(ledger), await open_account(ledger)
    result = await ledger.postings.post(
        NewTransaction([Leg(a, "debit", 9), Leg(b, "credit", 9)]), IdempotencyKey("t", a)
    )
    return a, result.transaction.id


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE entries SET amount = amount + 1 WHERE account_id = :a",
        "DELETE FROM entries WHERE account_id = :a",
        "UPDATE transactions SET description = 'changed' WHERE id = CAST(:t AS UUID)",
        "DELETE FROM transactions WHERE id = CAST(:t AS UUID)",
        # The audit trail: the service records, and cannot change what it recorded.
        "UPDATE audit.log SET outcome = 'refused' WHERE transaction_id = CAST(:t AS UUID)",
        "DELETE FROM audit.log WHERE transaction_id = CAST(:t AS UUID)",
        "TRUNCATE audit.log",
        "DELETE FROM api_keys",
    ],
)
async def test_the_writer_role_cannot_change_the_journal(writer_engine, posted, statement):
    account_id, transaction_id = posted
    with pytest.raises(sa_exc.ProgrammingError) as caught:
        async with writer_engine.begin() as conn:
            await conn.execute(text(statement), {"a": account_id, "t": transaction_id})
    assert failures.sqlstate(caught.value) == "42501"  # insufficient_privilege


async def test_the_writer_role_can_read_the_journal(writer_engine, posted):
    account_id, _ = posted
    async with writer_engine.connect() as conn:
        n = (
            await conn.execute(
                text("SELECT count(*) FROM entries WHERE account_id = :a"), {"a": account_id}
            )
        ).scalar_one()
    assert n == 1


async def test_the_writer_role_can_read_the_audit_row_of_what_it_wrote(writer_engine, posted):
    _, transaction_id = posted
    async with writer_engine.connect() as conn:
        found = await conn.execute(
            text("SELECT action, outcome FROM audit.log WHERE transaction_id = CAST(:t AS UUID)"),
            {"t": transaction_id},
        )
        assert [tuple(r) for r in found] == [("transaction.create", "created")]


async def test_the_service_login_cannot_undo_its_role(ledger, posted, database_url):
    """The service's own connections (the `ledger` fixture logs in as
    `ledger serve` does) are the writer role at login: RESET ROLE or SET
    ROLE to the owner gives nothing back."""
    _, transaction_id = posted
    engine = ledger.store.engine
    async with engine.connect() as conn:
        login = (await conn.execute(text("SELECT session_user"))).scalar_one()
    assert login == "ledger_writer"
    for undo in ("RESET ROLE", "SET ROLE NONE"):
        with pytest.raises(sa_exc.ProgrammingError) as caught:
            async with engine.connect() as conn:
                await conn.execute(text(undo))
                await conn.execute(
                    text("DELETE FROM audit.log WHERE transaction_id = CAST(:t AS UUID)"),
                    {"t": transaction_id},
                )
        assert failures.sqlstate(caught.value) == "42501"
    owner = await _scalar(engine, "SELECT tableowner FROM pg_tables WHERE tablename = 'entries'")
    with pytest.raises(sa_exc.ProgrammingError) as caught:
        async with engine.connect() as conn:
            await conn.execute(text(f'SET ROLE "{owner}"'))
    assert failures.sqlstate(caught.value) == "42501"
    # The start-up check tells the two logins apart.
    assert login_is_privileged(database_url)
    assert not login_is_privileged(dialect.writer_url(database_url, login))


async def _scalar(engine, sql: str):
    async with engine.connect() as conn:
        return (await conn.execute(text(sql))).scalar_one()
