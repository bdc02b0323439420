"""Every endpoint through HTTP, on the real database."""

import asyncio

from ledger.storage import dialect
from support.database import written_rows
from support.ids import fresh_id


async def make_account(client, **overrides):
    body = {"id": fresh_id(), "currency": "USD", "scale": 2, "normal_side": "debit", **overrides}
    response = await client.post("/accounts", json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def post(client, entries, key=None, **extra):
    return await client.post(
        "/transactions",
        json={"entries": entries, **extra},
        headers={"Idempotency-Key": key or fresh_id("key")},
    )


def legs(debit, credit, amount):
    return [
        {"account_id": debit, "direction": "debit", "amount": amount},
        {"account_id": credit, "direction": "credit", "amount": amount},
    ]


async def test_account_shape_and_lookup(client):
    body = {
        "id": fresh_id("shop:42.eur"),
        "currency": "EUR",
        "scale": 2,
        "normal_side": "credit",
        "flags": {"debits_must_not_exceed_credits": True},
        "metadata": {"owner": "shop 42"},
    }
    created = (await client.post("/accounts", json=body)).json()
    assert created["flags"] == {
        "debits_must_not_exceed_credits": True,
        "credits_must_not_exceed_debits": False,
    }
    assert {"id", "currency", "scale", "normal_side", "flags", "metadata", "created_at"} <= set(
        created
    )
    fetched = await client.get(f"/accounts/{body['id']}")
    assert fetched.status_code == 200 and fetched.json() == created


async def test_an_account_without_an_id_needs_an_idempotency_key(client, owner_engine):
    body = {"currency": "USD", "normal_side": "debit"}
    before = await written_rows(owner_engine)
    refused = await client.post("/accounts", json=body)
    assert refused.status_code == 400 and refused.json()["code"] == "missing-idempotency-key"
    assert await written_rows(owner_engine) == before
    key = {"Idempotency-Key": fresh_id()}
    first = await client.post("/accounts", json=body, headers=key)
    assert first.status_code == 201
    assert (await client.get(f"/accounts/{first.json()['id']}")).status_code == 200
    # A retry finds the same account rather than making a second one.
    again = await client.post("/accounts", json=body, headers=key)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    other = await client.post("/accounts", json={**body, "currency": "EUR"}, headers=key)
    assert other.status_code == 409 and other.json()["code"] == "idempotency-key-reused"
    fresh = await client.post("/accounts", json=body, headers={"Idempotency-Key": fresh_id()})
    assert fresh.status_code == 201 and fresh.json()["id"] != first.json()["id"]


async def test_creating_the_same_account_again_is_a_replay(client):
    body = {"id": fresh_id(), "currency": "USD", "scale": 2, "normal_side": "debit"}
    first = await client.post("/accounts", json=body)
    again = await client.post("/accounts", json=body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.headers["Idempotent-Replayed"] == "true"
    # Leaving out the scale asks for the same account (USD's scale is 2).
    same = await client.post("/accounts", json={k: v for k, v in body.items() if k != "scale"})
    assert same.status_code == 200
    other = await client.post("/accounts", json={**body, "normal_side": "credit"})
    assert other.status_code == 409 and other.json()["code"] == "account-exists"


async def test_list_accounts_pages_with_a_cursor(client):
    for _ in range(3):
        await make_account(client)
    seen, cursor = [], None
    for _ in range(1000):
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/accounts", params=params)).json()
        assert set(page) == {"items", "next_cursor"}
        seen += [a["id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen) and len(seen) == len(set(seen)) >= 3


async def test_post_read_and_reverse_a_transaction(client):
    cash = (await make_account(client))["id"]
    sales = (await make_account(client, normal_side="credit"))["id"]
    response = await post(
        client, legs(cash, sales, 1999), description="order 7", metadata={"order": 7}
    )
    assert response.status_code == 201, response.text
    tx = response.json()
    assert {
        "id",
        "entries",
        "created_at",
        "reverses",
        "reversed_by",
        "description",
        "metadata",
    } <= set(tx)
    assert tx["entries"][0] | {"entry_id": None} == {
        "account_id": cash,
        "direction": "debit",
        "amount": 1999,
        "currency": "USD",
        "entry_id": None,
    }
    assert (await client.get(f"/transactions/{tx['id']}")).json() == tx

    reversal = await client.post(
        f"/transactions/{tx['id']}/reversal", headers={"Idempotency-Key": fresh_id("key")}
    )
    assert reversal.status_code == 201, reversal.text
    assert reversal.json()["reverses"] == tx["id"]
    original = (await client.get(f"/transactions/{tx['id']}")).json()
    assert original["reversed_by"] == reversal.json()["id"]
    twice = await client.post(
        f"/transactions/{tx['id']}/reversal", headers={"Idempotency-Key": fresh_id("key")}
    )
    assert twice.status_code == 409 and twice.json()["code"] == "already-reversed"
    balance = (await client.get(f"/accounts/{cash}/balance")).json()
    assert balance["posted"] == {"debits": 1999, "credits": 1999, "balance": 0}


async def test_replay_returns_the_original_with_the_replay_header(client):
    a, b = (await make_account(client))["id"], (await make_account(client))["id"]
    key = fresh_id("key")
    first = await post(client, legs(a, b, 5), key)
    again = await post(client, legs(a, b, 5), key)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert again.json() == first.json()
    conflict = await post(client, legs(a, b, 6), key)
    assert conflict.status_code == 409
    assert conflict.json()["code"] == "idempotency-key-reused"
    assert key in conflict.json()["detail"]


async def test_fifty_identical_http_requests_at_once_make_one_posting(client):
    a, b = (await make_account(client))["id"], (await make_account(client))["id"]
    key = fresh_id("key")
    responses = await asyncio.gather(*(post(client, legs(a, b, 3), key) for _ in range(50)))
    assert sorted(r.status_code for r in responses) == [200] * 49 + [201]
    # The same transaction each time; a later answer may also show the
    # place the sequencer gave it meanwhile.
    unsealed = [{**r.json(), "sequence": None, "block": None} for r in responses]
    assert all(body == unsealed[0] for body in unsealed)
    history = (await client.get(f"/accounts/{a}/entries")).json()
    assert len(history["items"]) == 1


async def test_balance_as_of_and_its_shape(client):
    a, b = (await make_account(client))["id"], (await make_account(client))["id"]
    tx = (await post(client, legs(a, b, 70))).json()
    now = (await client.get(f"/accounts/{a}/balance")).json()
    assert set(now) >= {"account_id", "currency", "as_of", "posted"}
    assert now["posted"] == {"debits": 70, "credits": 0, "balance": 70}
    earlier = (
        await client.get(f"/accounts/{a}/balance", params={"as_of": "2000-01-01T00:00:00Z"})
    ).json()
    assert earlier["posted"]["balance"] == 0 and earlier["as_of"].startswith("2000-01-01")
    at = (await client.get(f"/accounts/{a}/balance", params={"as_of": tx["created_at"]})).json()
    assert at["posted"]["balance"] == 70


async def test_history_pages(client):
    a, b = (await make_account(client))["id"], (await make_account(client))["id"]
    for amount in (1, 2, 3):
        await post(client, legs(a, b, amount))
    first = (await client.get(f"/accounts/{a}/entries", params={"limit": 2})).json()
    second = (
        await client.get(
            f"/accounts/{a}/entries", params={"limit": 2, "cursor": first["next_cursor"]}
        )
    ).json()
    assert [e["amount"] for e in first["items"] + second["items"]] == [1, 2, 3]
    assert second["next_cursor"] is None


async def test_health_ready_metrics_and_docs(client):
    assert (await client.get("/health")).json() == {"status": "ok"}
    assert (await client.get("/ready")).status_code == 200
    assert (await client.get("/health", params={"ready": 1})).json() == {"status": "ready"}
    metrics = await client.get("/metrics")
    assert "ledger_db_transaction_attempts_total" in metrics.text
    spec = (await client.get("/schema/openapi.json")).json()
    body = spec["paths"]["/transactions"]["post"]["requestBody"]["content"]["application/json"]
    leg = body["schema"]["properties"]["entries"]["items"]
    assert set(leg["properties"]) == {"account_id", "direction", "amount", "currency"}
    assert leg["properties"]["amount"]["type"] == "integer"
    assert set(leg["required"]) == {"account_id", "direction", "amount"}
    assert (await client.get("/schema")).status_code == 200


async def test_stale_reads_answer_and_bad_consistency_is_refused(client, database_url):
    a, b = (await make_account(client))["id"], (await make_account(client))["id"]
    tx = (await post(client, legs(a, b, 9))).json()
    stale = {"consistency": "stale"}
    # On PostgreSQL a stale read is an ordinary read; on CockroachDB it may
    # lag a few seconds, so only the shape is checked here.
    balance = await client.get(f"/accounts/{a}/balance", params=stale)
    assert balance.status_code == 200 and set(balance.json()["posted"]) == {
        "debits",
        "credits",
        "balance",
    }
    assert (await client.get(f"/accounts/{a}/entries", params=stale)).status_code == 200
    found = await client.get(f"/transactions/{tx['id']}", params=stale)
    if dialect.dialect_name(database_url) == dialect.POSTGRESQL:
        assert found.status_code == 200 and found.json()["id"] == tx["id"]
    else:  # a follower read a few seconds old may not have it yet
        assert found.status_code in (200, 404)
    bad = await client.get(f"/accounts/{a}/balance", params={"consistency": "eventual"})
    assert bad.status_code == 422 and bad.json()["code"] == "invalid-value"
