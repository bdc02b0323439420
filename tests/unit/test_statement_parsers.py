"""Statement files parsed into lines: golden files written from each
format's published field list (camt.053 .001.02 and .001.08, Stripe's
itemized payout reconciliation, Adyen's settlement details), hostile XML,
and every malformed file refused naming where."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from ledger.engine import errors
from ledger.engine.reconcile.model import CsvColumns, NewSource
from ledger.engine.reconcile.statements import parse

DATA = Path(__file__).resolve().parents[1] / "data" / "reconciliation"


def source(fmt: str, **extra) -> NewSource:
    return NewSource(id="s", account_id="a", format=fmt, currency="EUR", **extra)


def summary(parsed):
    return [
        (
            x.line_no,
            x.amount,
            x.booked_on,
            x.reference,
            x.external_id,
            x.status,
            x.reversal,
            x.group,
        )
        for x in parsed.lines
    ]


def test_camt053_version_02_with_a_batch_booking_pending_and_info_entries():
    parsed = parse(source("camt.053"), (DATA / "camt053_v02.xml").read_bytes(), 2)
    d = date(2026, 11, 20)
    assert parsed.opening == 100000 and parsed.closing == 127525
    assert parsed.account == "DE89370400440532013000"
    assert summary(parsed) == [
        (1, 10000, d, "INV-1001", "BANK-0001", "booked", False, None),
        # The batch booking is split into its two transactions, grouped.
        (2, 20000, d, "RF18539007547034", "BANK-0002-1", "booked", False, "BANK-0002"),
        (3, 5050, d, "INV-1002", "BANK-0002-2", "booked", False, "BANK-0002"),
        (4, -7525, d, None, "BANK-0003", "booked", False, None),
        (5, 3000, d, "INV-1003", None, "pending", False, None),
        (6, 500, d, None, None, "info", False, None),
    ]
    assert parsed.lines[3].description == "Card fees November"


def test_camt053_version_08_with_a_reversal_and_a_previously_closed_balance():
    parsed = parse(source("camt.053"), (DATA / "camt053_v08.xml").read_bytes(), 2)
    assert (parsed.opening, parsed.closing) == (-1000, 49000)
    assert summary(parsed) == [
        (
            1,
            60000,
            date(2026, 11, 20),
            "PAY-77",
            "1b1c7a2e-8f4a-4bd7-9b32-7d3a5b2c9e11",
            "booked",
            False,
            None,
        ),
        (2, -10000, date(2026, 11, 20), "PAY-76", "B8-2", "booked", True, None),
    ]


def test_a_date_time_is_the_day_in_the_sources_time_zone():
    body = (DATA / "camt053_v02.xml").read_bytes()
    parsed = parse(source("camt.053", timezone="Europe/Berlin"), body, 2)
    # 23:30 UTC on the 20th is the 21st in Berlin.
    assert parsed.lines[1].booked_on == date(2026, 11, 21)


def test_stripe_itemized_payout_report_in_major_units():
    parsed = parse(
        source("stripe-payout-itemized"), (DATA / "stripe_payout_itemized.csv").read_bytes(), 2
    )
    assert [(x.amount, x.reference, x.external_id, x.group) for x in parsed.lines] == [
        (9680, "ch_1A", "txn_1A", "po_1Q2w3e"),
        (4825, "ch_1B", "txn_1B", "po_1Q2w3e"),
        (-2000, "re_1C", "txn_1C", "po_1Q2w3e"),
        (-1500, "dp_1D", "txn_1D", "po_1Q2w3e"),
    ]
    assert parsed.lines[3].booked_on == date(2026, 11, 21)


def test_adyen_settlement_details_net_amounts_in_the_rows_time_zone():
    body = (DATA / "adyen_settlement_details.csv").read_bytes()
    parsed = parse(source("adyen-settlement-details"), body, 2)
    assert [
        (x.amount, x.reference, x.external_id, x.description, x.group) for x in parsed.lines
    ] == [
        (11760, "ORDER-1", "8815000000000001", "Settled", "42"),
        (7840, "ORDER-2", "8815000000000002", "Settled", "42"),
        (-2000, "ORDER-1", "8815000000000001/8815000000000009", "Refunded", "42"),
        (-250, None, "FEE-42", "Fee", "42"),
    ]
    # 23:30 CET on the 20th is 22:30 UTC: still the 20th in UTC.
    assert parsed.lines[1].booked_on == date(2026, 11, 20)


def test_a_csv_through_a_columns_map_with_a_direction_column_in_minor_units():
    columns = CsvColumns(
        id="ID",
        amount="Amount",
        currency="Cur",
        date="Day",
        reference="Ref",
        description="Text",
        direction="DC",
    )
    body = (
        b"ID,Day,Amount,Cur,Ref,Text,DC\n"
        b"1,2026-11-20,1500,EUR,R1,first,C\n"
        b"2,2026-11-21,700,EUR,R2,second,D\n"
    )
    parsed = parse(source("csv", columns=columns, amount_unit="minor"), body, 2)
    assert [(x.amount, x.reference, x.booked_on) for x in parsed.lines] == [
        (1500, "R1", date(2026, 11, 20)),
        (-700, "R2", date(2026, 11, 21)),
    ]


CAMT_HEAD = b'<?xml version="1.0"?>\n'
XXE = (
    CAMT_HEAD
    + b"""<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt><Stmt>
<Ntry><AddtlNtryInf>&x;</AddtlNtryInf></Ntry></Stmt></BkToCstmrStmt></Document>"""
)
LAUGHS = (
    CAMT_HEAD
    + b'<!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'.encode()
        for i in range(1, 10)
    )
    + b"]><Document>&lol9;</Document>"
)


@pytest.mark.parametrize("body", [XXE, LAUGHS], ids=["xxe", "billion-laughs"])
def test_hostile_xml_is_refused_without_being_expanded(body):
    with pytest.raises(errors.StatementMalformed) as caught:
        parse(source("camt.053"), body, 2)
    assert "passwd" not in caught.value.detail and "lol" not in caught.value.detail.replace(
        "lolz", ""
    )


def _bal(code: str, amount: str) -> str:
    return (
        f"<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp>"
        f'<Amt Ccy="EUR">{amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd></Bal>'
    )


def _camt(entries: str, opening="0.00", closing="10.00", ns="camt.053.001.02") -> bytes:
    return (
        f'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:{ns}"><BkToCstmrStmt><Stmt>'
        f"{_bal('OPBD', opening)}{_bal('CLBD', closing)}{entries}"
        "</Stmt></BkToCstmrStmt></Document>"
    ).encode()


ENTRY = (
    '<Ntry><Amt Ccy="{ccy}">{amt}</Amt><CdtDbtInd>{ind}</CdtDbtInd>'
    "<Sts>{sts}</Sts><BookgDt><Dt>{dt}</Dt></BookgDt></Ntry>"
)


def entry(amt="10.00", ccy="EUR", ind="CRDT", sts="BOOK", dt="2026-11-20") -> str:
    return ENTRY.format(amt=amt, ccy=ccy, ind=ind, sts=sts, dt=dt)


@pytest.mark.parametrize(
    ("body", "names"),
    [
        (b"not xml at all", "line"),
        (_camt(entry(), ns="camt.052.001.02"), "camt.053"),
        (_camt(entry(amt="10.001")), "Ntry[1]"),
        (_camt(entry(amt="1e3")), "Ntry[1]"),
        (_camt(entry(amt="-10.00")), "Ntry[1]"),
        (_camt(entry(ccy="USD")), "USD"),
        (_camt(entry(ind="UP")), "CdtDbtInd"),
        (_camt(entry(sts="DONE")), "Sts"),
        (_camt(entry(dt="20/11/2026")), "Ntry[1]"),
        (_camt(entry()).replace(b"<Cd>CLBD</Cd>", b"<Cd>XXXX</Cd>"), "closing"),
    ],
)
def test_a_malformed_camt_file_is_refused_naming_where(body, names):
    with pytest.raises(errors.StatementMalformed) as caught:
        parse(source("camt.053"), body, 2)
    assert names in caught.value.detail


def test_a_camt_statement_that_does_not_add_up_is_refused_with_its_figures():
    with pytest.raises(errors.StatementUnbalanced) as caught:
        parse(source("camt.053"), _camt(entry("7.00"), closing="10.00"), 2)
    assert caught.value.details == {
        "element": "Stmt[1]",
        "opening": 0,
        "entries": 700,
        "closing": 1000,
    }


STRIPE_HEAD = b"balance_transaction_id,available_on,currency,net,reporting_category,source_id\n"


@pytest.mark.parametrize(
    ("body", "names"),
    [
        (b"", "empty"),
        (b"\xff\xfe broken", "UTF-8"),
        (STRIPE_HEAD + b"txn_1,2026-11-20,eur,1.005,charge,ch_1\n", "line 2"),
        (STRIPE_HEAD + b"txn_1,2026-11-20,usd,1.00,charge,ch_1\n", "USD"),
        (STRIPE_HEAD + b"txn_1,2026-11-20,eur,1.00,charge\n", "5 fields"),
        (STRIPE_HEAD + b"txn_1,yesterday,eur,1.00,charge,ch_1\n", "yesterday"),
        (
            STRIPE_HEAD.replace(b"net", b"gross") + b"txn_1,2026-11-20,eur,1.00,charge,ch_1\n",
            "'net'",
        ),
        (STRIPE_HEAD + b'txn_1,2026-11-20,eur,"1.00,charge,ch_1\n', "line"),
        (b"a,a\n1,2\n", "twice"),
    ],
)
def test_a_malformed_csv_is_refused_naming_the_line(body, names):
    with pytest.raises(errors.StatementMalformed) as caught:
        parse(source("stripe-payout-itemized"), body, 2)
    assert names in caught.value.detail
