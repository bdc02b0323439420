"""`verify` recomputes every balance from the journal and reports drift."""

import asyncio

from sqlalchemy import text

from ledger.cli import main
from ledger.engine.model import IdempotencyKey, Leg, NewTransaction
from support.ids import fresh_id
from support.ledger import open_account


async def test_verify_is_clean_after_postings_and_reports_a_damaged_cache(
    ledger, owner_engine, database_url, monkeypatch
):
    a, b = await open_account(ledger), await open_account(ledger)
    await ledger.postings.post(
        NewTransaction([Leg(a, "debit", 12), Leg(b, "credit", 12)]),
        IdempotencyKey("tests", fresh_id("k")),
    )
    assert (await ledger.verify()).ok

    async with owner_engine.begin() as conn:  # damage the cache as only an owner can
        await conn.execute(
            text("UPDATE account_balances SET posted_debits = 13 WHERE account_id = :a"), {"a": a}
        )
    try:
        report = await ledger.verify()
        assert not report.ok
        assert [(d.account_id, d.cached_debits, d.journal_debits) for d in report.drift] == [
            (a, 13, 12)
        ]
        monkeypatch.setenv("LEDGER_DATABASE_URL", database_url)
        assert await asyncio.to_thread(main, ["verify"]) == 1
    finally:
        async with owner_engine.begin() as conn:
            await conn.execute(
                text("UPDATE account_balances SET posted_debits = 12 WHERE account_id = :a"),
                {"a": a},
            )
    assert (await ledger.verify()).ok


def test_the_verify_command_exits_zero_when_clean(database_url, capsys, monkeypatch):
    monkeypatch.setenv("LEDGER_DATABASE_URL", database_url)
    assert main(["verify"]) == 0
    assert "verify: clean" in capsys.readouterr().out
