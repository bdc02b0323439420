"""`ledger reconcile` as an operator runs it after a settlement window:
the golden camt.053 statement uploaded and reconciled from the command
line, every line accounted for, exit 1 while a high exception is open and
0 once it is resolved."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ledger.app import build_ledger, build_store
from ledger.cli import main
from ledger.engine import access
from ledger.engine.model import IdempotencyKey, Leg, NewAccount, NewTransaction
from ledger.engine.reconcile.model import ExceptionFilter, NewSource, ResolveRequest
from support.ids import fresh_id

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "reconciliation" / "camt053_v02.xml"


async def with_ledger(database_url, settings, work):
    store = build_store(database_url, settings)
    try:
        return await work(build_ledger(store, settings))
    finally:
        await store.dispose()


def test_the_cli_reconciles_a_camt_statement_and_exits_1_on_a_high_exception(
    database_url, settings, monkeypatch, capsys
):
    source_id = fresh_id("cli")
    bank = fresh_id("bank")

    async def setup(ledger):
        await ledger.accounts.create(
            NewAccount(id=bank, currency="EUR", scale=2, normal_side="debit")
        )
        other = fresh_id("sales")
        await ledger.accounts.create(
            NewAccount(id=other, currency="EUR", scale=2, normal_side="credit")
        )
        await ledger.reconciliation.create_source(
            NewSource(id=source_id, account_id=bank, format="camt.053", currency="EUR"),
            access.DIRECT,
        )
        # The ledger booked INV-1001 only; the golden file has more.
        await ledger.postings.post(
            NewTransaction(
                entries=[
                    Leg(account_id=bank, direction="debit", amount=10000),
                    Leg(account_id=other, direction="credit", amount=10000),
                ],
                metadata={"reference": "INV-1001"},
            ),
            IdempotencyKey("cli-test", fresh_id("k")),
        )

    asyncio.run(with_ledger(database_url, settings, setup))
    monkeypatch.setenv("LEDGER_DATABASE_URL", database_url)
    # The file's day is in the past: only the lines are in its window, not the posting.
    code = main(["reconcile", "--source", source_id, str(GOLDEN)])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "6 lines" in out and "1 skipped" in out and "missing_in_ledger: 4" in out, out
    assert "timing: 1" in out, out  # the pending line

    async def resolve_highs(ledger):
        page = await ledger.reconciliation.exceptions(
            ExceptionFilter(source_id=source_id, severity="high", status="open"), None, 100
        )
        for found in page.items:
            await ledger.reconciliation.resolve(
                found.id,
                ResolveRequest(resolution="accepted", note="booked elsewhere"),
                access.DIRECT,
            )
        return len(page.items)

    assert asyncio.run(with_ledger(database_url, settings, resolve_highs)) == 4
    again = main(["reconcile", "--source", source_id, str(GOLDEN)])
    out = capsys.readouterr().out
    assert again == 0, out
    assert "(uploaded before)" in out and "4 settled before" in out, out


def test_the_cli_names_an_unknown_source(database_url, monkeypatch, capsys):
    monkeypatch.setenv("LEDGER_DATABASE_URL", database_url)
    assert main(["reconcile", "--source", "nope", str(GOLDEN)]) == 2
    assert "nope" in capsys.readouterr().out


def test_the_cli_reconciles_a_stripe_payout_report(
    database_url, settings, monkeypatch, capsys, tmp_path
):
    from datetime import UTC, datetime

    source_id, balance, sales = fresh_id("stripe"), fresh_id("balance"), fresh_id("sales")
    charges = {"ch_1": 9680, "ch_2": 4825, "re_3": -2000}

    async def setup(ledger):
        for account_id, side in ((balance, "debit"), (sales, "credit")):
            await ledger.accounts.create(
                NewAccount(id=account_id, currency="EUR", scale=2, normal_side=side)
            )
        await ledger.reconciliation.create_source(
            NewSource(
                id=source_id,
                account_id=balance,
                format="stripe-payout-itemized",
                currency="EUR",
                settlement_lag_days=0,
            ),
            access.DIRECT,
        )
        for ref, amount in charges.items():
            debit, credit = (balance, sales) if amount > 0 else (sales, balance)
            await ledger.postings.post(
                NewTransaction(
                    entries=[
                        Leg(account_id=debit, direction="debit", amount=abs(amount)),
                        Leg(account_id=credit, direction="credit", amount=abs(amount)),
                    ],
                    metadata={"reference": ref},
                ),
                IdempotencyKey("cli-test", fresh_id("k")),
            )

    asyncio.run(with_ledger(database_url, settings, setup))
    today = datetime.now(UTC).date().isoformat()
    report = tmp_path / "payout.csv"
    report.write_text(
        "automatic_payout_id,balance_transaction_id,available_on,currency,net,"
        "reporting_category,source_id\n"
        + "".join(
            f"po_9,txn_{ref},{today},eur,{amount / 100:.2f},charge,{ref}\n"
            for ref, amount in charges.items()
        )
    )
    monkeypatch.setenv("LEDGER_DATABASE_URL", database_url)
    code = main(["reconcile", "--source", source_id, str(report)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "3 lines, 3 entries, 3 matches" in out, out
