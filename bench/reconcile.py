"""Reconciliation end to end: a statement of N lines against N postings
(upload, parse, match, write), in lines per second, beside a plain `COPY`
of the same lines into a bare table on the same server in the same run
(the floor: what merely landing the rows costs).

    .venv/bin/pip install -e '.[bench]' && .venv/bin/python bench/reconcile.py

One invocation starts its own embedded PostgreSQL and one `ledger serve`,
posts N two-leg transfers (batches of 1,000), each with a reference, then
uploads a camt.053 statement of N lines (amounts and references of those
postings, in another order), runs the reconciliation over the day, and
prints the figures and the run's counts. It asserts nothing but that every
line was matched: it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import time
from datetime import UTC, datetime, timedelta

import httpx
import psycopg

from harness import AUTHORIZATION, served

BATCH = 1000


async def post_all(base: str, n: int, rng: random.Random) -> list[tuple[int, str]]:
    """N postings from the bank account to sales, as batches; (amount, reference) each."""
    postings = [(rng.randint(1, 10**7), f"INV-{i:07d}") for i in range(n)]
    async with httpx.AsyncClient(base_url=base, timeout=120, headers=AUTHORIZATION) as client:
        for account_id, side in (("bank", "debit"), ("sales", "credit")):
            made = await client.post(
                "/accounts",
                # Hot: every batch touches both, as a clearing account is.
                json={
                    "id": account_id,
                    "currency": "EUR",
                    "scale": 2,
                    "normal_side": side,
                    "hot": True,
                },
            )
            assert made.status_code in (200, 201), made.text
        sem = asyncio.Semaphore(2)

        async def batch(start: int) -> None:
            items = [
                {
                    "idempotency_key": ref,
                    "entries": [
                        {"account_id": "bank", "direction": "debit", "amount": amount},
                        {"account_id": "sales", "direction": "credit", "amount": amount},
                    ],
                    "metadata": {"reference": ref},
                }
                for amount, ref in postings[start : start + BATCH]
            ]
            async with sem:
                answer = await client.post("/transactions/batch", json={"transactions": items})
            assert answer.status_code == 200, answer.text[:500]
            assert all(r["status"] == 201 for r in answer.json()["results"])

        await asyncio.gather(*(batch(s) for s in range(0, n, BATCH)))
    return postings


def camt(lines: list[tuple[int, str]], day: str) -> bytes:
    out = io.StringIO()
    total = sum(a for a, _ in lines)
    out.write(
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt><Stmt>'
    )
    for code, value in (("OPBD", 0), ("CLBD", total)):
        out.write(
            f"<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp>"
            f'<Amt Ccy="EUR">{value // 100}.{value % 100:02d}</Amt>'
            "<CdtDbtInd>CRDT</CdtDbtInd></Bal>"
        )
    for n, (amount, ref) in enumerate(lines, 1):
        out.write(
            f'<Ntry><Amt Ccy="EUR">{amount // 100}.{amount % 100:02d}</Amt>'
            f"<CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>{day}</Dt></BookgDt>"
            f"<AcctSvcrRef>B{n}</AcctSvcrRef><NtryDtls><TxDtls><Refs><EndToEndId>{ref}</EndToEndId>"
            "</Refs></TxDtls></NtryDtls></Ntry>"
        )
    out.write("</Stmt></BkToCstmrStmt></Document>")
    return out.getvalue().encode()


def copy_floor(url: str, lines: list[tuple[int, str]], day: str) -> float:
    """Seconds to COPY the same lines into a bare table (created and dropped here)."""
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE bench_bare_lines "
            "(n int, day date, amount bigint, reference text, bank text)"
        )
        try:
            began = time.perf_counter()
            with conn.cursor().copy(
                "COPY bench_bare_lines (n, day, amount, reference, bank) FROM STDIN"
            ) as copy:
                for n, (amount, ref) in enumerate(lines, 1):
                    copy.write_row((n, day, amount, ref, f"B{n}"))
            return time.perf_counter() - began
        finally:
            conn.execute("DROP TABLE bench_bare_lines")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=100_000)
    args = parser.parse_args()
    rng = random.Random(18)
    with served(8, "ledger-reconcile-") as (base, embedded, _env):
        began = time.perf_counter()
        postings = asyncio.run(post_all(base, args.lines, rng))
        print(
            f"posted {len(postings)} in {time.perf_counter() - began:.1f} s (setup, not measured)"
        )
        day = datetime.now(UTC).date()
        lines = list(postings)
        rng.shuffle(lines)
        body = camt(lines, day.isoformat())
        print(f"statement: {len(lines)} lines, {len(body) / 2**20:.1f} MiB of camt.053")
        with httpx.Client(base_url=base, timeout=600, headers=AUTHORIZATION) as client:
            made = client.post(
                "/reconciliation/sources",
                json={"id": "bank-eur", "account_id": "bank", "format": "camt.053",
                      "currency": "EUR", "settlement_lag_days": 0},
            )  # fmt: skip
            assert made.status_code == 201, made.text
            began = time.perf_counter()
            up = client.post(
                "/reconciliation/sources/bank-eur/statements",
                content=body,
                headers={"content-type": "application/xml"},
            )
            uploaded = time.perf_counter() - began
            assert up.status_code == 201, up.text[:500]
            began = time.perf_counter()
            run = client.post(
                "/reconciliation/runs",
                json={"source_id": "bank-eur", "from": (day - timedelta(days=1)).isoformat(),
                      "to": (day + timedelta(days=1)).isoformat()},
            )  # fmt: skip
            matched = time.perf_counter() - began
            assert run.status_code == 201, run.text[:500]
        counts = run.json()["counts"]
        assert counts["matched"] == args.lines and counts["exceptions"] == {}, counts
        floor = copy_floor(embedded.url(embedded.database), lines, day.isoformat())
    total = uploaded + matched
    ours, copy_rate = args.lines / total, args.lines / floor
    print(f"upload+parse+store: {uploaded:.2f} s; run (load, match, write): {matched:.2f} s")
    print(f"reconcile: {ours:,.0f} lines/s end to end (target: at least 5,000)")
    print(f"COPY floor: {copy_rate:,.0f} lines/s into a bare table")
    print(f"ratio reconcile/COPY: {ours / copy_rate:.3f}")
    print(f"counts: {counts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
