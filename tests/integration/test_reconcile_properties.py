"""Reconciliation end to end, as a property, through the real database:
postings are made through the ledger, a camt.053 statement is derived from
them with labelled changes, uploaded and run; every line and entry must end
in exactly one match or one exception of the expected class, matched groups
must sum equal, and a second run must find the same exceptions again, not
new ones. (Ages are all 0 here, every posting being made today: the pure
property in tests/unit/test_matching_properties.py covers dates and ages.)"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.app import build_ledger, build_store
from ledger.engine import access
from ledger.engine.model import IdempotencyKey, Leg, NewAccount, NewTransaction, ReversalRequest
from ledger.engine.reconcile.model import ExceptionFilter, NewRun, NewSource
from support.ids import fresh_id

TOLERANCE = 100
CHANGES = ("exact", "fee", "fee_within_tolerance", "split", "dropped", "duplicated", "reversed")


def camt(entries: list[tuple[int, str | None, str, bool]], day: str) -> bytes:
    """(signed minor units, end-to-end id, bank id, reversal) each."""
    rows = []
    for amount, ref, bank_id, reversal in entries:
        refs = f"<NtryDtls><TxDtls><Refs><EndToEndId>{ref}</EndToEndId></Refs></TxDtls></NtryDtls>"
        rows.append(
            f'<Ntry><Amt Ccy="EUR">{abs(amount) // 100}.{abs(amount) % 100:02d}</Amt>'
            f"<CdtDbtInd>{'CRDT' if amount >= 0 else 'DBIT'}</CdtDbtInd>"
            f"{'<RvslInd>true</RvslInd>' if reversal else ''}<Sts><Cd>BOOK</Cd></Sts>"
            f"<BookgDt><Dt>{day}</Dt></BookgDt><AcctSvcrRef>{bank_id}</AcctSvcrRef>"
            f"{refs if ref else ''}</Ntry>"
        )
    closing = sum(e[0] for e in entries)

    def bal(code: str, value: int) -> str:
        return (
            f"<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp>"
            f'<Amt Ccy="EUR">{abs(value) // 100}.{abs(value) % 100:02d}</Amt>'
            f"<CdtDbtInd>{'CRDT' if value >= 0 else 'DBIT'}</CdtDbtInd></Bal>"
        )

    return (
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt><Stmt>'
        + bal("OPBD", 0)
        + bal("CLBD", closing)
        + "".join(rows)
        + "</Stmt></BkToCstmrStmt></Document>"
    ).encode()


@st.composite
def plans(draw):
    count = draw(st.integers(1, 6))
    ks = draw(st.lists(st.integers(0, 999), min_size=count, max_size=count, unique=True))
    return [
        (100_000 + 1000 * k, draw(st.sampled_from(CHANGES)), draw(st.integers(1, 99))) for k in ks
    ]


async def run_plan(database_url, app_settings, plan) -> None:
    store = build_store(database_url, app_settings)
    ledger = build_ledger(store, app_settings)
    try:
        await check_plan(ledger, plan)
    finally:
        await store.dispose()


async def check_plan(ledger, plan) -> None:
    bank, sales = fresh_id("pbank"), fresh_id("psales")
    for account_id, side in ((bank, "debit"), (sales, "credit")):
        await ledger.accounts.create(
            NewAccount(id=account_id, currency="EUR", scale=2, normal_side=side)
        )
    lines: list[tuple[int, str | None, str, bool]] = []
    expected_entries: dict[str, str] = {}  # transaction id -> its entry's fate
    expected_lines: list[str] = []  # the fate of each line, in file order
    for i, (amount, change, extra) in enumerate(plan):
        ref = f"REF-{i}"
        posted = await ledger.postings.post(
            NewTransaction(
                entries=[
                    Leg(account_id=bank, direction="debit", amount=amount),
                    Leg(account_id=sales, direction="credit", amount=amount),
                ],
                metadata={"reference": ref},
            ),
            IdempotencyKey("recon-prop", fresh_id("k")),
        )
        tid = posted.transaction.id
        fate = {"dropped": "missing_in_statement", "fee": "amount_mismatch"}.get(change, "matched")
        expected_entries[tid] = fate
        if change == "exact":
            lines.append((amount, ref, f"B{i}", False))
        elif change == "fee":
            lines.append((amount - TOLERANCE - extra, ref, f"B{i}", False))
        elif change == "fee_within_tolerance":
            lines.append((amount - extra, ref, f"B{i}", False))
        elif change == "split":
            lines += [(extra, ref, f"B{i}.1", False), (amount - extra, ref, f"B{i}.2", False)]
        elif change == "duplicated":
            lines += [(amount, ref, f"B{i}", False), (amount, ref, f"B{i}", False)]
        elif change == "reversed":
            back = await ledger.postings.reverse(
                tid, ReversalRequest(), IdempotencyKey("recon-prop", fresh_id("k"))
            )
            expected_entries[back.transaction.id] = "matched"
            lines += [(amount, ref, f"B{i}", False), (-amount, ref, f"B{i}r", True)]
        n = {"dropped": 0, "split": 2, "duplicated": 2, "reversed": 2}.get(change, 1)
        expected_lines += ["duplicate" if change == "duplicated" and j else fate for j in range(n)]
    today = datetime.now(UTC).date()
    cases = ledger.reconciliation
    source = fresh_id("psrc")
    await cases.create_source(
        NewSource(
            id=source,
            account_id=bank,
            format="camt.053",
            currency="EUR",
            settlement_lag_days=0,
            amount_tolerance=TOLERANCE,
        ),
        access.DIRECT,
    )
    if not lines:
        lines.append((1, "NEVER-BOOKED", "X", False))
        expected_lines.append("missing_in_ledger")
    statement, _ = await cases.upload(
        source, camt(lines, today.isoformat()), "application/xml", access.DIRECT
    )
    window = NewRun(source_id=source, from_=today - timedelta(days=1), to=today + timedelta(days=1))
    run = await cases.run(window, access.DIRECT)
    matches = (await cases.matches(run.id, None, 500)).items
    found = (
        await cases.exceptions(ExceptionFilter(source_id=source, status="open"), None, 500)
    ).items
    fates: dict[str, list[str]] = {}
    for m in matches:
        assert m.difference == 0 or (m.kind == "tolerance" and abs(m.difference) <= TOLERANCE), m
        for x in m.statement_lines:
            fates.setdefault(x, []).append("matched")
        for t in m.transaction_ids:
            fates.setdefault(t, []).append("matched")
    for e in found:
        if e.detail and "tolerance" in e.detail:
            continue  # a tolerance match's difference, besides its match
        if e.statement_line:
            fates.setdefault(e.statement_line, []).append(e.cls)
        if e.transaction_id:
            fates.setdefault(e.transaction_id, []).append(e.cls)
    line_ids = [f"{statement.id}.{n}" for n in range(1, len(lines) + 1)]
    assert sorted(fates[x][0] for x in line_ids) == sorted(expected_lines), (fates, plan)
    assert all(len(fates[x]) == 1 for x in line_ids), fates
    assert {t: fates.get(t) for t in expected_entries} == {
        t: [f] for t, f in expected_entries.items()
    }, plan
    again = await cases.run(window, access.DIRECT)
    assert again.counts == run.counts
    still = (
        await cases.exceptions(ExceptionFilter(source_id=source, status="open"), None, 500)
    ).items
    assert sorted(e.id for e in still) == sorted(e.id for e in found)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(plan=plans())
def test_a_derived_statement_reconciles_through_the_database(database_url, settings, plan):
    asyncio.run(run_plan(database_url, settings, plan))
