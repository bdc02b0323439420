"""Reports over HTTP against the real database: an account's statement
(opening plus the period's entries is closing, for ordinary and hot
accounts, across a compaction, page by page and as CSV) and the trial
balance (every account as of a time, debits equal credits per currency);
every bad input a 4xx."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta

import pytest

from ledger.engine.access import ACCOUNTS_READ, REPORTS_READ
from support.ids import fresh_id
from support.ledger import app_client, make_key


async def account(client, side: str, currency: str = "USD", **extra) -> str:
    body = {"id": fresh_id(), "currency": currency, "scale": 2, "normal_side": side, **extra}
    made = await client.post("/accounts", json=body)
    assert made.status_code == 201, made.text
    return body["id"]


async def post(client, debit: str, credit: str, amount: int) -> None:
    body = {
        "entries": [
            {"account_id": debit, "direction": "debit", "amount": amount},
            {"account_id": credit, "direction": "credit", "amount": amount},
        ]
    }
    made = await client.post("/transactions", json=body, headers={"Idempotency-Key": fresh_id()})
    assert made.status_code == 201, made.text


def iso(at) -> str:
    return at.isoformat()


async def whole(client, account_id: str, start, end, limit: int) -> tuple[dict, list[dict]]:
    params = {"from": iso(start), "to": iso(end), "limit": limit}
    pages, entries = [], []
    while True:
        got = await client.get(f"/accounts/{account_id}/statement", params=params)
        assert got.status_code == 200, got.text
        page = got.json()
        pages.append(page)
        entries += page["entries"]
        if page["next_cursor"] is None:
            return pages[0], entries
        params["cursor"] = page["next_cursor"]


def signed(entry: dict, side: str) -> int:
    return entry["amount"] if entry["direction"] == side else -entry["amount"]


@pytest.mark.parametrize("hot", [False, True], ids=["ordinary", "hot"])
async def test_opening_plus_entries_is_closing_page_by_page_and_as_csv(client, ledger, hot):
    wallet, cash = await account(client, "credit", hot=hot), await account(client, "debit")
    await post(client, cash, wallet, 1000)  # before the period
    start = await ledger.store.now()
    for amount in (250, 75, 30, 5, 120):
        await post(client, cash, wallet, amount)
    await post(client, wallet, cash, 40)
    if hot:
        await ledger.store.compact_hot(wallet, timedelta(0))  # folded mid-period
    await post(client, cash, wallet, 9)
    end = await ledger.store.now()
    await post(client, cash, wallet, 77)  # after the period

    first, entries = await whole(client, wallet, start, end, limit=2)
    assert first["opening"]["balance"] == 1000
    assert [signed(e, "credit") for e in entries] == [250, 75, 30, 5, 120, -40, 9]
    running = 1000
    for entry in entries:
        running += signed(entry, "credit")
        assert entry["balance"] == running
    assert first["closing"]["balance"] == running == 1449
    as_of = await client.get(f"/accounts/{wallet}/balance", params={"as_of": iso(end)})
    assert as_of.json()["posted"]["balance"] == first["closing"]["balance"]

    exported = await client.get(
        f"/accounts/{wallet}/statement",
        params={"from": iso(start), "to": iso(end)},
        headers={"Accept": "text/csv"},
    )
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["kind"] for r in rows] == ["opening"] + ["entry"] * 7 + ["closing"]
    assert int(rows[0]["balance"]) + sum(
        int(r["amount"]) * (1 if r["direction"] == "credit" else -1) for r in rows[1:-1]
    ) == int(rows[-1]["balance"])
    assert [r["entry_id"] for r in rows[1:-1]] == [e["entry_id"] for e in entries]


async def test_a_statement_up_to_now_and_from_a_date(client, ledger):
    """`to` left out is the database's current time, named in the answer;
    `from` may be a date alone, its midnight UTC."""
    wallet, cash = await account(client, "credit"), await account(client, "debit")
    await post(client, cash, wallet, 300)
    before = await ledger.store.now()
    got = await client.get(f"/accounts/{wallet}/statement", params={"from": "2020-01-01"})
    assert got.status_code == 200, got.text
    page = got.json()
    assert page["from"].startswith("2020-01-01T00:00:00") and page["from"].endswith(("Z", "+00:00"))
    assert datetime.fromisoformat(page["to"]) >= before
    assert [e["amount"] for e in page["entries"]] == [300]
    assert page["closing"]["balance"] == 300


async def test_the_trial_balance_balances_and_agrees_with_each_account(client, ledger):
    eur_a, eur_b = await account(client, "debit", "EUR"), await account(client, "credit", "EUR")
    fees = await account(client, "credit", "EUR", hot=True)
    await post(client, eur_a, eur_b, 500)
    await post(client, eur_a, fees, 20)
    at = await ledger.store.now()
    await post(client, eur_a, eur_b, 999)  # after as_of: not in it
    got = await client.get("/reports/trial-balance", params={"as_of": iso(at), "currency": "EUR"})
    assert got.status_code == 200, got.text
    report = json.loads(got.content)
    lines = {line["account_id"]: line for line in report["accounts"]}
    assert {line["currency"] for line in report["accounts"]} == {"EUR"}
    assert (lines[eur_a]["debits"], lines[eur_b]["balance"], lines[fees]["balance"]) == (
        520,
        500,
        20,
    )
    assert [t["currency"] for t in report["totals"]] == ["EUR"]
    (total,) = report["totals"]
    assert total["balanced"] and total["debits"] == total["credits"]
    assert total["debits"] == sum(line["debits"] for line in report["accounts"])
    ids = [line["account_id"] for line in report["accounts"]]
    assert ids == sorted(ids)
    everything = json.loads((await client.get("/reports/trial-balance")).content)
    assert all(t["balanced"] for t in everything["totals"])
    assert {"EUR", "USD"} <= {t["currency"] for t in everything["totals"]}


async def test_bad_report_requests_are_4xx_naming_the_mistake(client, ledger):
    wallet = await account(client, "credit")
    now = await ledger.store.now()
    hour = timedelta(hours=1)
    url = f"/accounts/{wallet}/statement"
    for path, params, status, names in [
        (url, {"to": iso(now)}, 422, "from"),
        (url, {"from": "2026-13-01"}, 422, "from"),
        (url, {"from": iso(now), "to": iso(now - hour)}, 422, "before"),
        (url, {"from": iso(now - hour), "to": iso(now + hour)}, 422, "not over"),
        (url, {"from": "yesterday", "to": iso(now)}, 422, "from"),
        (url, {"from": "2026-11-01T00:00:00", "to": iso(now)}, 422, "offset"),
        (url, {"from": iso(now - hour), "to": iso(now), "cursor": "!!"}, 400, "cursor"),
        (url, {"from": iso(now - hour), "to": iso(now), "limit": 0}, 422, "limit"),
        ("/accounts/nope/statement", {"from": iso(now - hour), "to": iso(now)}, 404, "nope"),
        ("/reports/trial-balance", {"as_of": iso(now + hour)}, 422, "as_of"),
        ("/reports/trial-balance", {"currency": "usd"}, 422, "currency"),
        ("/reports/trial-balance", {"order": "desc"}, 400, "order"),
    ]:
        got = await client.get(path, params=params)
        assert got.status_code == status, (params, got.text)
        assert names in got.text, (params, got.text)


async def test_reports_need_their_scope_and_keep_to_a_keys_accounts(
    client, database_url, settings, ledger
):
    mine = await account(client, "credit", id=f"rep:{fresh_id()}")
    other = await account(client, "credit")
    now = await ledger.store.now()
    params = {"from": iso(now - timedelta(hours=1)), "to": iso(now)}
    reader = await make_key(ledger, ACCOUNTS_READ)
    async with app_client(database_url, settings, reader) as c:
        assert (await c.get(f"/accounts/{mine}/statement", params=params)).status_code == 403
        assert (await c.get("/reports/trial-balance")).status_code == 403
    limited = await make_key(ledger, REPORTS_READ, accounts=["rep:"])
    async with app_client(database_url, settings, limited) as c:
        assert (await c.get(f"/accounts/{mine}/statement", params=params)).status_code == 200
        assert (await c.get(f"/accounts/{other}/statement", params=params)).status_code == 403
        # Every account's, or it would not balance: not for a limited key.
        assert (await c.get("/reports/trial-balance")).status_code == 403


async def post_with(client, debit: str, credit: str, amount: int, metadata: dict) -> str:
    body = {
        "entries": [
            {"account_id": debit, "direction": "debit", "amount": amount},
            {"account_id": credit, "direction": "credit", "amount": amount},
        ],
        "metadata": metadata,
    }
    made = await client.post("/transactions", json=body, headers={"Idempotency-Key": fresh_id()})
    assert made.status_code == 201, made.text
    return made.json()["id"]


async def search(client, **params) -> list[str]:
    found, params = [], {"limit": 1, **params}
    while True:
        got = await client.get("/transactions", params=params)
        assert got.status_code == 200, got.text
        page = got.json()
        found += [t["id"] for t in page["items"]]
        if page["next_cursor"] is None:
            return found
        params["cursor"] = page["next_cursor"]


async def test_transactions_are_found_by_account_metadata_and_period(client, ledger):
    shop = fresh_id("shop")
    a, b, c = [await account(client, s) for s in ("debit", "credit", "credit")]
    t1 = await post_with(client, a, b, 100, {"shop": shop, "order": "1", "n": 5})
    start = await ledger.store.now()
    t2 = await post_with(client, a, c, 200, {"shop": shop, "order": "2"})
    t3 = await post_with(client, a, b, 300, {"shop": shop, "order": "3", "nested": {"x": 1}})
    end = await ledger.store.now()
    t4 = await post_with(client, a, c, 400, {"shop": "elsewhere"})

    assert await search(client, **{"metadata.shop": shop}) == [t1, t2, t3]
    assert await search(client, **{"metadata.shop": shop, "metadata.order": "2"}) == [t2]
    assert await search(client, account_id=c) == [t2, t4]
    assert await search(client, account_id=b, **{"metadata.order": "3"}) == [t3]
    assert await search(client, account_id=a, **{"from": iso(start), "to": iso(end)}) == [t2, t3]
    # Values are compared as strings: a number in the metadata is not "5".
    assert await search(client, **{"metadata.n": "5"}) == []
    got = (
        await client.get("/transactions", params={"metadata.order": "2", "account_id": c})
    ).json()
    (found,) = got["items"]
    assert found["metadata"]["shop"] == shop and len(found["entries"]) == 2


async def test_a_search_needs_a_filter_and_says_what_is_wrong(
    client, ledger, database_url, settings
):
    now = await ledger.store.now()
    for params, status, names in [
        ({}, 422, "account_id"),
        ({"from": iso(now - timedelta(hours=1))}, 422, "account_id"),
        ({"account_id": "x", "from": iso(now), "to": iso(now - timedelta(hours=1))}, 422, "before"),
        ({"account_id": "x", "from": "soon"}, 422, "from"),
        ({"account_id": "x", "cursor": "!!"}, 400, "cursor"),
        ({"account_id": "x", "sort": "desc"}, 400, "sort"),
        ({f"metadata.k{i}": "v" for i in range(9)}, 422, "metadata"),
    ]:
        got = await client.get("/transactions", params=params)
        assert got.status_code == status, (params, got.text)
        assert names in got.text, (params, got.text)
    mine, other = f"srch:{fresh_id()}", await account(client, "credit")
    await account(client, "debit", id=mine)
    t = await post_with(client, mine, other, 5, {})
    limited = await make_key(ledger, REPORTS_READ, accounts=["srch:"])
    async with app_client(database_url, settings, limited) as c:
        assert (await c.get("/transactions", params={"metadata.a": "b"})).status_code == 403
        assert (await c.get("/transactions", params={"account_id": other})).status_code == 403
        # Its own account, but the transaction has a leg it does not reach.
        seen = await c.get("/transactions", params={"account_id": mine})
        assert seen.status_code == 200 and t not in [x["id"] for x in seen.json()["items"]]
