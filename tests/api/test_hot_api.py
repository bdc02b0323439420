"""Hot accounts through HTTP: creating, PATCHing, the recorded changes, and
every bad request refused with a problem that names it, changing nothing."""

import pytest

from support.ids import fresh_id


async def account(client, **overrides):
    body = {"id": fresh_id(), "currency": "USD", "scale": 2, "normal_side": "credit", **overrides}
    response = await client.post("/accounts", json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def pay(client, debit, credit, amount):
    response = await client.post(
        "/transactions",
        json={
            "entries": [
                {"account_id": debit, "direction": "debit", "amount": amount},
                {"account_id": credit, "direction": "credit", "amount": amount},
            ]
        },
        headers={"Idempotency-Key": fresh_id("key")},
    )
    assert response.status_code == 201, response.text


async def test_a_hot_account_is_created_posted_to_and_read_like_any_other(client):
    fees = await account(client, hot=True)
    assert fees["hot"] is True
    payer = (await account(client, normal_side="debit"))["id"]
    for amount in (3, 4):
        await pay(client, payer, fees["id"], amount)
    balance = (await client.get(f"/accounts/{fees['id']}/balance")).json()
    assert balance["posted"] == {"debits": 0, "credits": 7, "balance": 7}
    assert balance["available"] == 7
    assert (await client.get(f"/accounts/{fees['id']}")).json()["hot"] is True
    history = (await client.get(f"/accounts/{fees['id']}/entries")).json()["items"]
    assert [e["amount"] for e in history] == [3, 4]


async def test_patch_makes_an_account_hot_and_records_the_change(client):
    settlement = (await account(client))["id"]
    payer = (await account(client, normal_side="debit"))["id"]
    await pay(client, payer, settlement, 10)
    response = await client.patch(f"/accounts/{settlement}", json={"hot": True})
    assert response.status_code == 200
    assert response.json()["hot"] is True
    await pay(client, payer, settlement, 5)
    assert (await client.get(f"/accounts/{settlement}/balance")).json()["posted"]["balance"] == 15
    again = await client.patch(f"/accounts/{settlement}", json={"hot": True})
    assert again.status_code == 200
    back = await client.patch(f"/accounts/{settlement}", json={"hot": False})
    assert back.json()["hot"] is False
    assert (await client.get(f"/accounts/{settlement}/balance")).json()["posted"]["balance"] == 15
    changes = (await client.get(f"/accounts/{settlement}/changes")).json()
    assert [(c["field"], c["old_value"], c["new_value"]) for c in changes["items"]] == [
        ("hot", False, True),
        ("hot", True, False),
    ]
    assert changes["next_cursor"] is None


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{", 400, "malformed-json"),
        (b"{}", 422, "nothing-to-change"),
        (b'{"status": "gone"}', 422, "invalid-value"),
        (b'{"hot": "yes"}', 400, "wrong-type"),
        (b'{"hot": true, "currency": "EUR"}', 400, "unknown-field"),
        (b"[true]", 400, "wrong-type"),
    ],
)
async def test_bad_patches_are_refused_and_change_nothing(client, body, status, code):
    target = (await account(client))["id"]
    response = await client.patch(
        f"/accounts/{target}", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status, response.text
    assert response.json()["type"].endswith(f"/problems/{code}")
    assert (await client.get(f"/accounts/{target}")).json()["hot"] is False
    assert (await client.get(f"/accounts/{target}/changes")).json()["items"] == []


async def test_a_limited_account_cannot_be_made_hot(client):
    wallet = (await account(client, flags={"debits_must_not_exceed_credits": True}))["id"]
    response = await client.patch(f"/accounts/{wallet}", json={"hot": True})
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"].endswith("/problems/hot-account-limited")
    assert problem["account_id"] == wallet
    assert (await client.get(f"/accounts/{wallet}")).json()["hot"] is False
    assert (await client.get(f"/accounts/{wallet}/changes")).json()["items"] == []


async def test_patching_or_listing_changes_of_an_unknown_account_is_404(client):
    ghost = fresh_id("ghost")
    assert (await client.patch(f"/accounts/{ghost}", json={"hot": True})).status_code == 404
    assert (await client.get(f"/accounts/{ghost}/changes")).status_code == 404
