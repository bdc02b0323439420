"""One scale per currency, in the engine and in the database: the bug where
a USD account at scale 5 and one at scale 2 took a balanced posting that
moved a thousandth of a cent out and a dollar in."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import text

from ledger.engine import errors
from ledger.engine.access import DIRECT
from ledger.engine.audit import AuditRecord
from ledger.engine.model import NewAccount
from ledger.storage import migrate
from support.database import new_database
from support.ids import fresh_id


def code() -> str:
    """A currency code no one else uses (and ISO does not list)."""
    return "T" + uuid.uuid4().hex[:8].upper()


async def test_a_usd_account_at_another_scale_is_refused(ledger):
    usd, _ = await ledger.accounts.create(
        NewAccount(id=fresh_id(), currency="USD", normal_side="debit")
    )
    assert usd.scale == 2
    with pytest.raises(errors.CurrencyScaleMismatch) as caught:
        await ledger.accounts.create(
            NewAccount(id=fresh_id(), currency="USD", scale=5, normal_side="credit")
        )
    assert caught.value.details == {"currency": "USD", "scale": 2, "asked": 5}


async def test_an_unknown_code_takes_the_scale_of_its_first_account(ledger):
    points = code()
    with pytest.raises(errors.InvalidAccount):
        await ledger.accounts.create(
            NewAccount(id=fresh_id(), currency=points, normal_side="debit")
        )
    first, _ = await ledger.accounts.create(
        NewAccount(id=fresh_id(), currency=points, scale=4, normal_side="debit")
    )
    second, _ = await ledger.accounts.create(
        NewAccount(id=fresh_id(), currency=points, normal_side="credit")
    )
    assert (first.scale, second.scale) == (4, 4)
    with pytest.raises(errors.CurrencyScaleMismatch):
        await ledger.accounts.create(
            NewAccount(id=fresh_id(), currency=points, scale=2, normal_side="credit")
        )
    listed = {c.code: c.scale for c in (await ledger.accounts.currencies()).items}
    assert listed[points] == 4 and listed["USD"] == 2


async def test_the_database_refuses_a_second_scale_even_past_the_engine(ledger):
    """Two first accounts of a new code racing with different scales: the
    engine's check saw no scale for either; the foreign key refuses one."""
    points = code()
    await ledger.store.insert_account(
        fresh_id(),
        NewAccount(currency=points, scale=2, normal_side="debit"),
        AuditRecord(actor=DIRECT, action="account.create", outcome="created"),
    )
    with pytest.raises(errors.CurrencyScaleMismatch):
        await ledger.store.insert_account(
            fresh_id(),
            NewAccount(currency=points, scale=3, normal_side="debit"),
            AuditRecord(actor=DIRECT, action="account.create", outcome="created"),
        )


def test_the_migration_refuses_a_database_that_mixes_scales(database_url):
    url = new_database(database_url, "ledger_cur", revision="0004", partitions=2)
    engine = create_sync_engine(url)
    with engine.begin() as conn:
        for account_id, scale in (("a", 2), ("b", 5)):
            conn.execute(
                text(
                    "INSERT INTO accounts (id, currency, scale, normal_side, "
                    "debits_must_not_exceed_credits, credits_must_not_exceed_debits, metadata) "
                    "VALUES (:id, 'USD', :scale, 'debit', false, false, '{}')"
                ),
                {"id": account_id, "scale": scale},
            )
    engine.dispose()
    with pytest.raises(RuntimeError) as caught:
        migrate.upgrade(url, partitions=2)
    assert "USD: scales 2 to 5 over 2 accounts" in str(caught.value)
    assert migrate.behind(url)[0] == "0004"  # nothing applied


async def test_verify_reports_an_account_at_another_scale_than_its_currency(database_url, settings):
    """Only a database changed behind the service's back can hold one: the
    owner drops the foreign key and writes it."""
    from ledger.app import build_ledger, build_store

    url = new_database(database_url, "ledger_cur", partitions=2)
    engine = create_sync_engine(url)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE accounts DROP CONSTRAINT accounts_currency_scale_fkey"))
        conn.execute(text("INSERT INTO currencies (code, scale) VALUES ('USD', 2)"))
        conn.execute(
            text(
                "INSERT INTO accounts (id, currency, scale, normal_side, "
                "debits_must_not_exceed_credits, credits_must_not_exceed_debits, metadata) "
                "VALUES ('odd', 'USD', 5, 'debit', false, false, '{}')"
            )
        )
    engine.dispose()
    store = build_store(url, settings, application_name="verify-scales")
    try:
        report = await build_ledger(store, settings).verify()
    finally:
        await store.dispose()
    assert not report.ok and report.mixed_scales == ["USD"]


async def test_many_first_accounts_of_a_new_currency_at_once(ledger):
    """Racing to record a new currency: every account is made, none fails."""
    for _ in range(3):
        new = code()
        made = await asyncio.gather(
            *(
                ledger.accounts.create(
                    NewAccount(id=fresh_id(), currency=new, scale=2, normal_side="debit")
                )
                for _ in range(16)
            ),
            return_exceptions=True,
        )
        assert all(not isinstance(m, BaseException) for m in made), made
        assert {a.scale for a, _ in made} == {2}
