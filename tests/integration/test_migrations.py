"""Upgrading a database that holds data, and refusing to run on an old one."""

import uuid

import pytest
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import text

from ledger.app import build_ledger, build_store
from ledger.cli import main
from ledger.storage import migrate
from support.database import new_database


@pytest.fixture
def old_database(server_url):
    """A fresh database at revision 0001 with one posting in it."""
    url = new_database(server_url, "ledger_old", revision="0001", partitions=2)
    engine = create_sync_engine(url)
    with engine.begin() as conn:
        for account in ("cash", "sales"):
            conn.execute(
                text(
                    "INSERT INTO accounts (id, currency, scale, normal_side, "
                    "debits_must_not_exceed_credits, credits_must_not_exceed_debits, metadata) "
                    "VALUES (:a, 'USD', 2, 'debit', false, false, '{}')"
                ),
                {"a": account},
            )
            conn.execute(
                text(
                    "INSERT INTO account_balances (account_id, posted_debits, posted_credits) "
                    "VALUES (:a, :d, :c)"
                ),
                {
                    "a": account,
                    "d": 7 if account == "cash" else 0,
                    "c": 0 if account == "cash" else 7,
                },
            )
        tid = uuid.uuid4()
        row = conn.execute(
            text(
                "INSERT INTO transactions (id, client_id, idempotency_key, fingerprint, metadata) "
                "VALUES (:t, 'c', 'k', 'f', '{}') RETURNING created_at"
            ),
            {"t": tid},
        ).one()
        for leg, (account, direction) in enumerate([("cash", "debit"), ("sales", "credit")]):
            conn.execute(
                text(
                    "INSERT INTO entries (account_id, entry_id, transaction_id, leg, direction, "
                    "amount, currency, created_at) VALUES (:a, :e, :t, :l, :d, 7, 'USD', :at)"
                ),
                {
                    "a": account,
                    "e": uuid.uuid4(),
                    "t": tid,
                    "l": leg,
                    "d": direction,
                    "at": row.created_at,
                },
            )
    engine.dispose()
    return url


def test_an_old_schema_is_refused_with_a_clear_message(old_database, capsys):
    current, head = migrate.behind(old_database)
    assert current == "0001" and head != current
    assert main(["verify", "--database-url", old_database]) == 2
    assert "run `ledger migrate`" in capsys.readouterr().err.lower()


async def test_upgrading_keeps_the_books(old_database, settings):
    migrate.upgrade(old_database)
    assert migrate.behind(old_database) is None
    store = build_store(old_database, settings, application_name="migration-test")
    try:
        ledger = build_ledger(store, settings)
        assert (await ledger.verify()).ok
        cash = await ledger.accounts.balance("cash")
        assert (cash.posted.balance, cash.pending.debits, cash.available) == (7, 0, 7)
    finally:
        await store.dispose()
