"""`POST /transactions/batch` over HTTP, on the real database: independent
items with some refused, replays inside a batch and across the two routes,
atomic all-or-nothing, its replay, bad input, and the audit rows."""

import asyncio

import pytest

from support.database import written_rows
from support.ids import fresh_id

BATCH = "/transactions/batch"


async def make_account(client, **overrides):
    body = {"id": fresh_id("b"), "currency": "USD", "scale": 2, "normal_side": "debit"}
    response = await client.post("/accounts", json=body | overrides)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def item(debit, credit, amount, key=None, **extra):
    return {
        "idempotency_key": key or fresh_id("k"),
        "entries": [
            {"account_id": debit, "direction": "debit", "amount": amount},
            {"account_id": credit, "direction": "credit", "amount": amount},
        ],
        **extra,
    }


async def balance(client, account_id):
    body = (await client.get(f"/accounts/{account_id}/balance")).json()
    return body["posted"]["balance"]


async def batch(client, items, *, atomic=False, key=None):
    headers = {"Idempotency-Key": key} if key else {}
    body = {"transactions": items} | ({"atomic": True} if atomic else {})
    return await client.post(BATCH, json=body, headers=headers)


async def test_items_stand_alone_and_are_judged_in_request_order(client):
    """A limited account with 100 can pay 60, then not 60 more, then 40:
    the outcome of posting them one by one, refusals included."""
    funding = await make_account(client)
    wallet = await make_account(
        client, normal_side="credit", flags={"debits_must_not_exceed_credits": True}
    )
    shop = await make_account(client, normal_side="credit")
    assert (
        await client.post(
            "/transactions",
            json={"entries": item(funding, wallet, 100)["entries"]},
            headers={"Idempotency-Key": fresh_id("k")},
        )
    ).status_code == 201
    items = [
        item(wallet, shop, 60),
        item(wallet, shop, 60),
        item(wallet, shop, 40),
        item(wallet, "no-such-account", 1),
    ]
    response = await batch(client, items)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3]
    assert [r["status"] for r in results] == [201, 422, 201, 422]
    assert results[1]["problem"]["code"] == "limit-exceeded"
    assert results[1]["problem"]["account_id"] == wallet
    assert results[3]["problem"]["code"] == "unknown-account"
    assert "transaction" not in results[1] and "problem" not in results[0]
    assert results[0]["transaction"]["entries"][0]["amount"] == 60
    assert await balance(client, wallet) == 0
    assert await balance(client, shop) == 100
    # Each new item is a transaction like any other.
    fetched = await client.get(f"/transactions/{results[2]['transaction']['id']}")
    assert fetched.status_code == 200
    assert fetched.json()["entries"] == results[2]["transaction"]["entries"]


async def test_item_keys_replay_across_batches_and_single_postings(client):
    a, b = await make_account(client), await make_account(client, normal_side="credit")
    single_key = fresh_id("k")
    first = await client.post(
        "/transactions",
        json={"entries": item(a, b, 5)["entries"]},
        headers={"Idempotency-Key": single_key},
    )
    assert first.status_code == 201
    items = [item(a, b, 5, key=single_key), item(a, b, 7), item(a, b, 9, key=single_key + "x")]
    once = (await batch(client, items)).json()["results"]
    assert [r["status"] for r in once] == [200, 201, 201]
    assert once[0]["transaction"]["id"] == first.json()["id"]
    again = (await batch(client, items)).json()["results"]
    assert [r["status"] for r in again] == [200, 200, 200]
    assert [r["transaction"]["id"] for r in again] == [r["transaction"]["id"] for r in once]
    # Another body under a used key: 409 for that item only.
    changed = [item(a, b, 6, key=single_key), item(a, b, 3)]
    results = (await batch(client, changed)).json()["results"]
    assert [r["status"] for r in results] == [409, 201]
    assert results[0]["problem"]["code"] == "idempotency-key-reused"
    # A batch item's key replays as a single posting too.
    single = await client.post(
        "/transactions",
        json={"entries": item(a, b, 7)["entries"]},
        headers={"Idempotency-Key": items[1]["idempotency_key"]},
    )
    assert single.status_code == 200 and single.json()["id"] == once[1]["transaction"]["id"]
    assert await balance(client, a) == 5 + 7 + 9 + 3


async def test_a_refused_item_that_was_written_before_is_answered_as_its_replay(client):
    """The limit the item once fitted under is used up by now; its key
    still answers the stored transaction, never a refusal."""
    funding = await make_account(client)
    wallet = await make_account(
        client, normal_side="credit", flags={"debits_must_not_exceed_credits": True}
    )
    shop = await make_account(client, normal_side="credit")
    await batch(client, [item(funding, wallet, 50)])
    spend = item(wallet, shop, 50)
    assert [r["status"] for r in (await batch(client, [spend])).json()["results"]] == [201]
    again = (await batch(client, [spend, item(wallet, shop, 1)])).json()["results"]
    assert [r["status"] for r in again] == [200, 422]


async def test_an_atomic_batch_commits_whole_or_not_at_all(client, owner_engine):
    funding = await make_account(client)
    wallet = await make_account(
        client, normal_side="credit", flags={"debits_must_not_exceed_credits": True}
    )
    shop = await make_account(client, normal_side="credit")
    await batch(client, [item(funding, wallet, 100)])
    before = await written_rows(owner_engine)
    key = fresh_id("batch")
    items = [item(wallet, shop, 70), item(wallet, shop, 70)]
    refused = await batch(client, items, atomic=True, key=key)
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert problem["code"] == "limit-exceeded" and problem["index"] == 1
    assert problem["pointer"] == "/transactions/1"
    assert "transactions[1]" in problem["detail"]
    assert await written_rows(owner_engine) == before
    ok_items = [item(wallet, shop, 70), item(wallet, shop, 30)]
    key = fresh_id("batch")
    done = await batch(client, ok_items, atomic=True, key=key)
    assert done.status_code == 200, done.text
    assert [r["status"] for r in done.json()["results"]] == [201, 201]
    assert await balance(client, wallet) == 0
    replay = await batch(client, ok_items, atomic=True, key=key)
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert [r["transaction"]["id"] for r in replay.json()["results"]] == [
        r["transaction"]["id"] for r in done.json()["results"]
    ]
    other = await batch(client, [item(wallet, shop, 1)], atomic=True, key=key)
    assert other.status_code == 409 and other.json()["code"] == "idempotency-key-reused"
    assert await balance(client, wallet) == 0


async def test_an_atomic_batch_of_only_replays_writes_no_posting_and_replays(client, owner_engine):
    """Every item's key was used before: the batch writes its own key and
    the items' audit rows, no posting, and answers the stored ones."""
    a, b = await make_account(client), await make_account(client, normal_side="credit")
    items = [item(a, b, 4), item(a, b, 6)]
    posted = (await batch(client, items)).json()["results"]
    key = fresh_id("batch")
    done = await batch(client, items, atomic=True, key=key)
    assert done.status_code == 200, done.text
    results = done.json()["results"]
    assert [r["status"] for r in results] == [200, 200]
    assert [r["transaction"]["id"] for r in results] == [r["transaction"]["id"] for r in posted]
    again = await batch(client, items, atomic=True, key=key)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert [r["transaction"]["id"] for r in again.json()["results"]] == [
        r["transaction"]["id"] for r in posted
    ]
    assert await balance(client, a) == 10


async def test_an_atomic_batch_needs_its_own_key(client):
    a, b = await make_account(client), await make_account(client)
    response = await batch(client, [item(a, b, 1)], atomic=True)
    assert response.status_code == 400
    assert response.json()["code"] == "missing-idempotency-key"


@pytest.mark.parametrize(
    "body, status, named",
    [
        ({"transactions": []}, 422, "transactions"),
        ({"transactions": "x"}, 400, "transactions"),
        ({"transactions": [{"entries": []}]}, 400, "idempotency_key"),
        ({"transactions": [{"idempotency_key": "a", "entries": [], "x": 1}]}, 400, "x"),
        ({"transactions": [], "atomic": "yes"}, 400, "atomic"),
    ],
)
async def test_malformed_batches_are_refused_whole(client, owner_engine, body, status, named):
    before = await written_rows(owner_engine)
    response = await client.post(BATCH, json=body)
    assert response.status_code == status, response.text
    assert named in response.json()["detail"]
    assert await written_rows(owner_engine) == before


async def test_a_repeated_key_or_too_many_items_refuse_the_whole_batch(client, owner_engine):
    a, b = await make_account(client), await make_account(client)
    before = await written_rows(owner_engine)
    twice = await batch(client, [item(a, b, 1, key="same"), item(a, b, 2, key="same")])
    assert twice.status_code == 422
    assert twice.json()["index"] == 1 and twice.json()["pointer"].startswith("/transactions/1")
    bad_key = await batch(client, [item(a, b, 1), item(a, b, 1) | {"idempotency_key": ""}])
    assert bad_key.status_code == 400 and bad_key.json()["index"] == 1
    too_many = await client.post(BATCH, json={"transactions": [item(a, b, 1)] * 1001})
    assert too_many.status_code == 422 and too_many.json()["max_batch"] == 1000
    assert await written_rows(owner_engine) == before


async def test_items_refused_before_the_database_are_named_by_index(client):
    a, b = await make_account(client), await make_account(client)
    items = [
        item(a, b, 0),
        {**item(a, b, 1), "entries": item(a, b, 1)["entries"][:1]},
        item(a, b, 2),
    ]
    results = (await batch(client, items)).json()["results"]
    assert [(r["index"], r["status"]) for r in results] == [(0, 422), (1, 422), (2, 201)]
    assert results[0]["problem"]["code"] == "invalid-amount"
    assert results[1]["problem"]["code"] == "too-few-legs"


async def test_every_item_leaves_its_audit_row(client):
    a, b = await make_account(client), await make_account(client, normal_side="credit")
    used = item(a, b, 4)
    await batch(client, [used])
    results = (await batch(client, [used, item(a, b, 0), item(a, b, 3)])).json()["results"]
    new_id = results[2]["transaction"]["id"]
    rows = (await client.get("/audit", params={"target": new_id})).json()["items"]
    assert [(r["action"], r["outcome"]) for r in rows] == [("transaction.create", "created")]
    replayed = (
        await client.get("/audit", params={"target": results[0]["transaction"]["id"]})
    ).json()["items"]
    assert ("transaction.create", "replayed") in [(r["action"], r["outcome"]) for r in replayed]


async def test_pending_items_hold_and_expire_like_single_ones(client):
    a, b = await make_account(client), await make_account(client, normal_side="credit")
    results = (await batch(client, [item(a, b, 8, pending=True, timeout_seconds=3600)])).json()[
        "results"
    ]
    held = results[0]["transaction"]
    assert held["state"] == "pending" and held["expires_at"]
    posted = await client.post(
        f"/transactions/{held['id']}/post", headers={"Idempotency-Key": fresh_id("k")}
    )
    assert posted.status_code == 201, posted.text
    assert await balance(client, b) == 8


async def test_batches_racing_single_postings_on_one_limited_account(client):
    """Concurrent batches and single postings against one account that may
    not go below zero: whatever was accepted, the final balance is exactly
    what the accepted items imply, and never below zero."""
    funding = await make_account(client)
    wallet = await make_account(
        client, normal_side="credit", flags={"debits_must_not_exceed_credits": True}
    )
    shop = await make_account(client, normal_side="credit")
    await batch(client, [item(funding, wallet, 500)])

    async def one_batch():
        response = await batch(client, [item(wallet, shop, 7) for _ in range(10)])
        assert response.status_code == 200, response.text
        return [r["status"] for r in response.json()["results"]]

    async def one_single():
        response = await client.post(
            "/transactions",
            json={"entries": item(wallet, shop, 7)["entries"]},
            headers={"Idempotency-Key": fresh_id("k")},
        )
        assert response.status_code in (201, 422), response.text
        return [response.status_code]

    outcomes = await asyncio.gather(
        *[one_batch() for _ in range(6)], *[one_single() for _ in range(12)]
    )
    accepted = sum(s == 201 for statuses in outcomes for s in statuses)
    assert accepted == 500 // 7
    assert await balance(client, shop) == 7 * accepted
    assert await balance(client, wallet) == 500 - 7 * accepted
