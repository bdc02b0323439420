"""Reconciliation over HTTP against the real database: sources, a camt.053
statement and a Stripe report uploaded, runs, every line and entry
accounted for, exceptions listed, resolved (a write-off posts through the
engine) and closed by later runs; every bad input a 4xx that writes
nothing."""

from __future__ import annotations

import asyncio

import pytest

from ledger.engine.access import RECONCILIATION_READ
from support.database import written_rows
from support.ids import fresh_id
from support.ledger import app_client, make_key
from support.reconciliation import (
    XML,
    account,
    camt,
    days,
    open_exceptions,
    post,
    run,
    source,
    today,
)

CSV = {"content-type": "text/csv"}


async def test_a_camt_statement_reconciles_every_line_and_entry(client):
    bank, revenue, suspense = (
        await account(client, "debit"),
        await account(client, "credit"),
        await account(client, "credit"),
    )
    t1 = await post(client, bank, revenue, 10000, "INV-1")
    t2 = await post(client, bank, revenue, 25000, "INV-2")
    t3 = await post(client, bank, revenue, 7550, "INV-3")  # the bank never saw it
    t4 = await post(client, bank, revenue, 4000, None)  # no reference: by amount and day
    src = await source(client, bank, amount_tolerance=100)
    shown = (await client.get(f"/reconciliation/sources/{src}")).json()
    assert (shown["account_id"], shown["format"], shown["amount_tolerance"]) == (
        bank,
        "camt.053",
        100,
    )
    listed = (await client.get("/reconciliation/sources", params={"limit": 500})).json()
    assert src in [x["id"] for x in listed["items"]] or listed["next_cursor"]
    statement = camt(
        [(10000, "INV-1"), (24950, "INV-2"), (1234, "NEVER-BOOKED"), (4000, None), (10000, "INV-1")]
    )
    up = await client.post(
        f"/reconciliation/sources/{src}/statements", content=statement, headers=XML
    )
    assert up.status_code == 201, up.text
    assert up.json()["lines"] == 5
    again = await client.post(
        f"/reconciliation/sources/{src}/statements", content=statement, headers=XML
    )
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == up.json()["id"]

    done = await run(client, src)
    assert done["counts"]["matched"] == 3
    assert done["counts"]["exceptions"] == {
        "amount_mismatch": 1,
        "duplicate": 1,
        "missing_in_ledger": 1,
        "missing_in_statement": 1,
    }
    matches = (await client.get(f"/reconciliation/runs/{done['id']}/matches")).json()["items"]
    by_kind = {m["kind"]: m for m in matches}
    assert by_kind["reference"]["transaction_ids"] == [t1]
    assert (
        by_kind["tolerance"]["transaction_ids"] == [t2]
        and by_kind["tolerance"]["difference"] == -50
    )
    assert by_kind["amount_date"]["transaction_ids"] == [t4]
    # Every line and entry in exactly one match or one exception.
    found = await open_exceptions(client, src)
    lines = [x for m in matches for x in m["statement_lines"]] + [
        e["statement_line"]
        for e in found
        if e["statement_line"] and e["class"] != "amount_mismatch"
    ]
    assert sorted(lines) == sorted(f"{up.json()['id']}.{n}" for n in range(1, 6))
    classes = {e["class"]: e for e in found}
    assert classes["missing_in_statement"]["transaction_id"] == t3
    assert classes["missing_in_statement"]["amount"] == -7550
    assert (
        classes["missing_in_ledger"]["severity"] == "high"
        and classes["missing_in_ledger"]["amount"] == 1234
    )
    assert classes["amount_mismatch"]["severity"] == "low"

    # A re-run finds the same exceptions again, not new ones.
    await run(client, src)
    assert sorted(e["id"] for e in await open_exceptions(client, src)) == sorted(
        e["id"] for e in found
    )

    # Written off: the adjusting posting goes through the engine, once.
    missing = classes["missing_in_ledger"]
    body = {"resolution": "written_off", "note": "bank interest", "offset_account_id": suspense}
    resolved = await client.post(f"/reconciliation/exceptions/{missing['id']}/resolve", json=body)
    assert resolved.status_code == 200, resolved.text
    adjustment = resolved.json()["adjustment_transaction_id"]
    tx = (await client.get(f"/transactions/{adjustment}")).json()
    assert {(e["account_id"], e["direction"], e["amount"]) for e in tx["entries"]} == {
        (bank, "debit", 1234),
        (suspense, "credit", 1234),
    }
    twice = await client.post(f"/reconciliation/exceptions/{missing['id']}/resolve", json=body)
    assert twice.status_code == 409 and twice.json()["code"] == "exception-resolved"
    audit = (await client.get("/audit", params={"target": missing["id"]})).json()["items"]
    assert [a["action"] for a in audit][:1] == ["reconciliation.exception.resolve"]

    # Matched by hand: the entry the bank never showed, to the duplicate line.
    entry_exc = classes["missing_in_statement"]
    dup = classes["duplicate"]
    manual = await client.post(
        f"/reconciliation/exceptions/{entry_exc['id']}/resolve",
        json={
            "resolution": "matched",
            "note": "bank booked it late",
            "statement_line": dup["statement_line"],
        },
    )
    assert manual.status_code == 200, manual.text
    # The next run leaves what a person settled alone (the write-off's own
    # posting is never an exception) and closes the duplicate, now matched.
    third = await run(client, src)
    assert third["counts"]["settled"] == 3
    left = {e["class"] for e in await open_exceptions(client, src)}
    assert left == {"amount_mismatch"}


async def test_a_timing_difference_is_info_and_closes_itself_when_a_later_run_matches(client):
    bank, revenue = await account(client, "debit"), await account(client, "credit")
    await post(client, bank, revenue, 3300, "LATE-1")
    src = await source(client, bank, settlement_lag_days=3)
    first = await run(client, src)
    assert first["counts"]["exceptions"] == {"timing": 1}
    (timing,) = await open_exceptions(client, src)
    assert timing["severity"] == "info"
    up = await client.post(
        f"/reconciliation/sources/{src}/statements", content=camt([(3300, "LATE-1")]), headers=XML
    )
    assert up.status_code == 201
    second = await run(client, src)
    assert second["counts"]["exceptions"] == {} and second["counts"]["matched"] == 1
    closed = (await client.get(f"/reconciliation/exceptions/{timing['id']}")).json()
    assert closed["status"] == "resolved" and closed["resolution"] == "matched_by_run"


async def test_a_dry_run_changes_no_exception(client):
    bank, revenue = await account(client, "debit"), await account(client, "credit")
    await post(client, bank, revenue, 100, "DRY")
    src = await source(client, bank)
    dry = await run(client, src, dry_run=True)
    assert dry["dry_run"] and dry["counts"]["exceptions"] == {"missing_in_statement": 1}
    assert await open_exceptions(client, src) == []
    got = await client.get(f"/reconciliation/runs/{dry['id']}")
    assert got.status_code == 200 and got.json()["counts"] == dry["counts"]


async def test_a_stripe_report_reconciles_a_payout_by_its_charges(client):
    balance, sales = await account(client, "debit"), await account(client, "credit")
    # Each charge booked net of its fee, the refund as a posting of its own.
    await post(client, balance, sales, 9680, "ch_1A")
    await post(client, balance, sales, 4825, "ch_1B")
    await post(client, sales, balance, 2000, "re_1C")
    src = await source(client, balance, format="stripe-payout-itemized")
    report = (
        "automatic_payout_id,balance_transaction_id,available_on,currency,gross,fee,net,reporting_category,source_id\n"
        f"po_1,txn_1A,{today()},eur,100.00,3.20,96.80,charge,ch_1A\n"
        f"po_1,txn_1B,{today()},eur,50.00,1.75,48.25,charge,ch_1B\n"
        f"po_1,txn_1C,{today()},eur,-20.00,0.00,-20.00,refund,re_1C\n"
    ).encode()
    up = await client.post(f"/reconciliation/sources/{src}/statements", content=report, headers=CSV)
    assert up.status_code == 201, up.text
    done = await run(client, src)
    assert done["counts"]["matched"] == 3 and done["counts"]["exceptions"] == {}


async def test_open_exceptions_are_gauges_on_metrics(client):
    bank, revenue = await account(client, "debit"), await account(client, "credit")
    await post(client, bank, revenue, 100, "GAUGE")
    await run(client, await source(client, bank))
    text = (await client.get("/metrics")).text
    line = next(
        x
        for x in text.splitlines()
        if x.startswith(
            'ledger_reconciliation_open_exceptions{class="missing_in_statement",severity="medium"}'
        )
    )
    assert float(line.split()[-1]) >= 1


BAD_SOURCES = [
    ({"id": "s x", "format": "camt.053"}, 422, "id"),
    ({"format": "swift-mt940"}, 422, "format"),
    ({"format": "csv"}, 422, "columns"),
    ({"timezone": "Mars/Olympus"}, 422, "timezone"),
    ({"settlement_lag_days": -1}, 422, "settlement_lag_days"),
    ({"amount_tolerance": 1.5}, 400, "amount_tolerance"),
    ({"surprise": 1}, 400, "surprise"),
    ({"account_id": "no-such-account"}, 422, "no-such-account"),
    ({"currency": "USD"}, 422, "USD"),
]


@pytest.mark.parametrize(("change", "status", "names"), BAD_SOURCES)
async def test_a_bad_source_is_a_4xx_naming_it_and_writes_nothing(
    client, owner_engine, change, status, names
):
    bank = await account(client, "debit")
    body = {
        "id": fresh_id("src"),
        "account_id": bank,
        "format": "camt.053",
        "currency": "EUR",
        **change,
    }
    before = await written_rows(owner_engine)
    got = await client.post("/reconciliation/sources", json=body)
    assert got.status_code == status, got.text
    assert names in got.text
    assert await written_rows(owner_engine) == before


async def test_bad_statements_runs_and_resolutions_are_4xx_and_write_nothing(client, owner_engine):
    bank = await account(client, "debit")
    src = await source(client, bank)
    dup = await client.post(
        "/reconciliation/sources",
        json={"id": src, "account_id": bank, "format": "camt.053", "currency": "EUR"},
    )
    assert dup.status_code == 409
    before = await written_rows(owner_engine)
    unbalanced = camt([(500, "A")]).replace(
        b'<Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">5.00',
        b'<Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">6.00',
    )
    for path, kwargs, status, names in [
        (
            f"/reconciliation/sources/{src}/statements",
            {"content": b"<Document/>", "headers": XML},
            422,
            "camt.053",
        ),
        (
            f"/reconciliation/sources/{src}/statements",
            {"content": camt([(1, "A")]), "headers": CSV},
            422,
            "application/xml",
        ),
        (
            f"/reconciliation/sources/{src}/statements",
            {"content": unbalanced, "headers": XML},
            422,
            "closing",
        ),
        # Types a browser sends cross-origin without a preflight: never.
        *(
            (
                f"/reconciliation/sources/{src}/statements",
                {"content": camt([(1, "A")]), "headers": {"content-type": media}},
                415,
                media,
            )
            for media in (
                "text/plain",
                "multipart/form-data; boundary=x",
                "application/x-www-form-urlencoded",
            )
        ),
        (
            "/reconciliation/sources/nope/statements",
            {"content": camt([]), "headers": XML},
            404,
            "nope",
        ),
        (
            "/reconciliation/runs",
            {"json": {"source_id": src, "from": today(), "to": today()}},
            422,
            "before",
        ),
        (
            "/reconciliation/runs",
            {"json": {"source_id": src, "from": "yesterday", "to": today()}},
            422,
            "from",
        ),
        (
            "/reconciliation/runs",
            {"json": {"source_id": "nope", "from": days(-1), "to": today()}},
            404,
            "nope",
        ),
        (
            "/reconciliation/exceptions/nope/resolve",
            {"json": {"resolution": "accepted", "note": "x"}},
            404,
            "nope",
        ),
    ]:
        got = await client.post(path, **kwargs)
        assert got.status_code == status, (path, got.text)
        assert names.split(";")[0] in got.text, (path, got.text)
    assert (
        await client.get("/reconciliation/exceptions", params={"class": "weird"})
    ).status_code == 422
    assert (await client.get("/reconciliation/runs/nope")).status_code == 404
    assert await written_rows(owner_engine) == before


async def test_a_resolution_that_does_not_fit_is_refused(client):
    bank, revenue = await account(client, "debit"), await account(client, "credit")
    await post(client, bank, revenue, 100, "FIT")
    src = await source(client, bank)
    await run(client, src)
    (exc,) = await open_exceptions(client, src)
    url = f"/reconciliation/exceptions/{exc['id']}/resolve"
    for body, names in [
        ({"resolution": "accepted", "note": "  "}, "note"),
        ({"resolution": "matched", "note": "x"}, "statement_line"),
        ({"resolution": "matched", "note": "x", "statement_line": "nope.1"}, "nope.1"),
        ({"resolution": "written_off", "note": "x"}, "offset_account_id"),
        ({"resolution": "written_off", "note": "x", "offset_account_id": "nope"}, "nope"),
        ({"resolution": "ignored", "note": "x"}, "resolution"),
    ]:
        got = await client.post(url, json=body)
        assert got.status_code in (400, 422), got.text
        assert names in got.text
    assert (await client.get(f"/reconciliation/exceptions/{exc['id']}")).json()["status"] == "open"
    ok = await client.post(url, json={"resolution": "accepted", "note": "test posting"})
    assert ok.status_code == 200 and ok.json()["resolution"] == "accepted"


async def test_the_read_scope_may_not_write(database_url, settings, ledger):
    key = await make_key(ledger, RECONCILIATION_READ)
    async with app_client(database_url, settings, key) as reader:
        assert (await reader.get("/reconciliation/sources")).status_code == 200
        got = await reader.post(
            "/reconciliation/runs", json={"source_id": "x", "from": days(-1), "to": today()}
        )
        assert got.status_code == 403


async def test_runs_of_one_source_at_once_open_each_exception_once(client):

    bank, revenue = await account(client, "debit"), await account(client, "credit")
    for n in range(5):
        await post(client, bank, revenue, 100 + n, f"RACE-{n}")
    src = await source(client, bank)
    body = {"source_id": src, "from": days(-1), "to": days(1)}
    answers = await asyncio.gather(
        *(client.post("/reconciliation/runs", json=body) for _ in range(4))
    )
    assert [a.status_code for a in answers] == [201] * 4
    found = await open_exceptions(client, src)
    assert sorted(e["transaction_id"] for e in found) == sorted(
        {e["transaction_id"] for e in found}
    )
    assert len(found) == 5


async def test_the_idempotency_key_can_be_the_reference(client):
    bank, revenue = await account(client, "debit"), await account(client, "credit")
    key = fresh_id("PAY")
    body = {
        "entries": [
            {"account_id": bank, "direction": "debit", "amount": 777},
            {"account_id": revenue, "direction": "credit", "amount": 777},
        ]
    }
    made = await client.post("/transactions", json=body, headers={"Idempotency-Key": key})
    assert made.status_code == 201
    # Another posting of the same amount and day: only the reference tells them apart.
    await post(client, bank, revenue, 777, None)
    src = await source(client, bank, ledger_reference="idempotency_key")
    up = await client.post(
        f"/reconciliation/sources/{src}/statements", content=camt([(777, key)]), headers=XML
    )
    assert up.status_code == 201
    done = await run(client, src)
    matches = (await client.get(f"/reconciliation/runs/{done['id']}/matches")).json()["items"]
    assert [(m["kind"], m["transaction_ids"]) for m in matches] == [
        ("reference", [made.json()["id"]])
    ]
    assert done["counts"]["exceptions"] == {"missing_in_statement": 1}


@pytest.mark.parametrize(
    "media", ["application/octet-stream", "application/vnd.iso20022.camt.053+xml", "text/xml"]
)
async def test_a_camt_statement_may_come_as_bytes_or_an_xml_media_type(client, media):
    bank = await account(client, "debit")
    src = await source(client, bank)
    up = await client.post(
        f"/reconciliation/sources/{src}/statements",
        content=camt([(1200, "M-1")]),
        headers={"content-type": media},
    )
    assert up.status_code == 201, up.text


async def test_the_upload_is_documented_as_a_file_of_bytes(client):
    document = (await client.get("/schema/openapi.json")).json()
    body = document["paths"]["/reconciliation/sources/{source_id}/statements"]["post"]
    content = body["requestBody"]["content"]
    assert "text/plain" not in content and "application/octet-stream" in content
    for media in content.values():
        assert media["schema"] == {"type": "string", "format": "binary"}
