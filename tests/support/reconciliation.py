"""Reconciliation's test helpers: accounts, postings with references, sources,
statements (camt.053 built to order) and runs, through the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from support.ids import fresh_id

XML = {"content-type": "application/xml"}


def days(n: int) -> str:
    return (datetime.now(UTC).date() + timedelta(days=n)).isoformat()


async def account(client, side: str, currency: str = "EUR") -> str:
    body = {"id": fresh_id(), "currency": currency, "scale": 2, "normal_side": side}
    made = await client.post("/accounts", json=body)
    assert made.status_code == 201, made.text
    return body["id"]


async def post(client, debit: str, credit: str, amount: int, reference: str | None) -> str:
    body = {
        "entries": [
            {"account_id": debit, "direction": "debit", "amount": amount},
            {"account_id": credit, "direction": "credit", "amount": amount},
        ],
        "metadata": {"reference": reference} if reference else {},
    }
    made = await client.post("/transactions", json=body, headers={"Idempotency-Key": fresh_id("k")})
    assert made.status_code == 201, made.text
    return made.json()["id"]


def camt(entries: list[tuple[int, str | None]], opening: int = 0, day: str | None = None) -> bytes:
    """A camt.053.001.08 statement of (signed minor units, end-to-end id)."""
    day = day or today()
    rows = []
    for n, (amount, ref) in enumerate(entries, 1):
        refs = (
            f"<NtryDtls><TxDtls><Refs><EndToEndId>{ref}</EndToEndId></Refs></TxDtls></NtryDtls>"
            if ref
            else ""
        )
        rows.append(
            f'<Ntry><Amt Ccy="EUR">{abs(amount) / 100:.2f}</Amt>'
            f"<CdtDbtInd>{'CRDT' if amount >= 0 else 'DBIT'}</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>"
            f"<BookgDt><Dt>{day}</Dt></BookgDt><AcctSvcrRef>B-{n}</AcctSvcrRef>{refs}</Ntry>"
        )
    closing = opening + sum(a for a, _ in entries)

    def bal(code: str, value: int) -> str:
        return (
            f"<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp>"
            f'<Amt Ccy="EUR">{abs(value) / 100:.2f}</Amt>'
            f"<CdtDbtInd>{'CRDT' if value >= 0 else 'DBIT'}</CdtDbtInd></Bal>"
        )

    return (
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt><Stmt>'
        + bal("OPBD", opening)
        + bal("CLBD", closing)
        + "".join(rows)
        + "</Stmt></BkToCstmrStmt></Document>"
    ).encode()


async def source(client, account_id: str, **extra) -> str:
    body = {
        "id": fresh_id("src"),
        "account_id": account_id,
        "format": "camt.053",
        "currency": "EUR",
        "settlement_lag_days": 0,
        **extra,
    }
    made = await client.post("/reconciliation/sources", json=body)
    assert made.status_code == 201, made.text
    return body["id"]


async def run(client, source_id: str, **extra) -> dict:
    made = await client.post(
        "/reconciliation/runs",
        json={"source_id": source_id, "from": days(-1), "to": days(1), **extra},
    )
    assert made.status_code == 201, made.text
    return made.json()


async def open_exceptions(client, source_id: str) -> list[dict]:
    got = await client.get(
        "/reconciliation/exceptions", params={"source_id": source_id, "status": "open"}
    )
    assert got.status_code == 200, got.text
    return got.json()["items"]


def today() -> str:
    return datetime.now(UTC).date().isoformat()
