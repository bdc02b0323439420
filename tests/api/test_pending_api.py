"""Pending transactions through HTTP: the three balances, post, void, and
the sweeper running inside the service."""

import asyncio

from support.ids import fresh_id
from support.ledger import app_client


async def account(client, **overrides):
    body = {"id": fresh_id(), "currency": "USD", "scale": 2, "normal_side": "debit", **overrides}
    response = await client.post("/accounts", json=body)
    assert response.status_code == 201
    return body["id"]


async def send(client, path, body=None, key=None):
    return await client.post(
        path,
        json=body if body is not None else {},
        headers={"Idempotency-Key": key or fresh_id("key")},
    )


async def funded_wallet(client, funds=100):
    bank = await account(client)
    wallet = await account(
        client, normal_side="credit", flags={"debits_must_not_exceed_credits": True}
    )
    shop = await account(client, normal_side="credit")
    r = await send(
        client,
        "/transactions",
        {
            "entries": [
                {"account_id": bank, "direction": "debit", "amount": funds},
                {"account_id": wallet, "direction": "credit", "amount": funds},
            ]
        },
    )
    assert r.status_code == 201
    return wallet, shop


def authorisation(wallet, shop, amount, **extra):
    return {
        "pending": True,
        "entries": [
            {"account_id": wallet, "direction": "debit", "amount": amount},
            {"account_id": shop, "direction": "credit", "amount": amount},
        ],
        **extra,
    }


async def test_authorise_then_post_part_shows_three_balances(client):
    wallet, shop = await funded_wallet(client)
    auth = await send(client, "/transactions", authorisation(wallet, shop, 30, timeout_seconds=600))
    assert auth.status_code == 201, auth.text
    body = auth.json()
    assert (body["pending"], body["state"]) == (True, "pending") and body["expires_at"]
    balance = (await client.get(f"/accounts/{wallet}/balance")).json()
    assert balance["posted"] == {"debits": 0, "credits": 100, "balance": 100}
    assert balance["pending"] == {"debits": 30, "credits": 0}
    assert balance["available"] == 70

    posted = await send(client, f"/transactions/{body['id']}/post", {"amount": 20})
    assert posted.status_code == 201, posted.text
    assert posted.json()["resolves"] == body["id"]
    balance = (await client.get(f"/accounts/{wallet}/balance")).json()
    assert (balance["posted"]["balance"], balance["pending"]["debits"], balance["available"]) == (
        80,
        0,
        80,
    )
    original = (await client.get(f"/transactions/{body['id']}")).json()
    assert (original["state"], original["resolved_by"]) == ("posted", posted.json()["id"])


async def test_void_with_an_empty_body_and_the_resolution_errors(client):
    wallet, shop = await funded_wallet(client)
    auth = (await send(client, "/transactions", authorisation(wallet, shop, 10))).json()
    void = await client.post(
        f"/transactions/{auth['id']}/void", headers={"Idempotency-Key": fresh_id("key")}
    )
    assert void.status_code == 201 and void.json()["entries"] == []
    again = await send(client, f"/transactions/{auth['id']}/post")
    assert again.status_code == 409 and again.json()["code"] == "already-resolved"
    assert again.json()["state"] == "voided"

    other = (await send(client, "/transactions", authorisation(wallet, shop, 10))).json()
    too_much = await send(client, f"/transactions/{other['id']}/post", {"amount": 11})
    assert too_much.status_code == 422 and too_much.json()["code"] == "invalid-resolution"
    unbalanced = await send(client, f"/transactions/{other['id']}/post", {"amounts": [5, 6]})
    assert unbalanced.status_code == 422 and unbalanced.json()["code"] == "invalid-resolution"
    unknown = await send(client, f"/transactions/{other['id']}/post", {"amout": 5})
    assert unknown.status_code == 400 and unknown.json()["code"] == "unknown-field"
    assert (await client.get(f"/accounts/{wallet}/balance")).json()["pending"]["debits"] == 10

    plain = (
        await send(
            client,
            "/transactions",
            {
                "entries": [
                    {"account_id": wallet, "direction": "debit", "amount": 1},
                    {"account_id": shop, "direction": "credit", "amount": 1},
                ]
            },
        )
    ).json()
    not_pending = await send(client, f"/transactions/{plain['id']}/void")
    assert not_pending.status_code == 409 and not_pending.json()["code"] == "not-pending"
    not_reversible = await send(client, f"/transactions/{other['id']}/reversal")
    assert not_reversible.status_code == 409
    assert not_reversible.json()["code"] == "not-reversible"
    missing_key = await client.post(f"/transactions/{other['id']}/post", json={})
    assert missing_key.status_code == 400


async def test_bad_pending_requests_are_refused(client):
    wallet, shop = await funded_wallet(client)
    for extra, code in [
        ({"timeout_seconds": 0}, "invalid-value"),
        ({"timeout_seconds": 1.5}, "wrong-type"),
        ({"pending": "yes"}, "wrong-type"),
    ]:
        r = await send(client, "/transactions", authorisation(wallet, shop, 5, **extra))
        assert 400 <= r.status_code < 500 and r.json()["code"] == code, r.text
    no_pending = authorisation(wallet, shop, 5, timeout_seconds=5)
    no_pending["pending"] = False
    r = await send(client, "/transactions", no_pending)
    assert r.status_code == 422 and r.json()["code"] == "invalid-value"
    over = await send(client, "/transactions", authorisation(wallet, shop, 101))
    assert over.status_code == 422 and over.json()["code"] == "limit-exceeded"
    assert (await client.get(f"/accounts/{wallet}/balance")).json()["available"] == 100


async def test_the_service_sweeper_expires_holds_and_a_late_post_is_refused(
    database_url, settings, admin_key
):
    async with app_client(database_url, settings, admin_key) as client:  # sweeper on, each second
        await _sweeper_expires_holds(client)


async def _sweeper_expires_holds(client):
    wallet, shop = await funded_wallet(client)
    auth = (
        await send(client, "/transactions", authorisation(wallet, shop, 10, timeout_seconds=1))
    ).json()
    assert (await client.get(f"/accounts/{wallet}/balance")).json()["available"] == 90
    state = None
    for _ in range(50):  # the sweeper runs every second in the service
        await asyncio.sleep(0.2)
        state = (await client.get(f"/transactions/{auth['id']}")).json()["state"]
        if state == "expired":
            break
    assert state == "expired"
    late = await send(client, f"/transactions/{auth['id']}/post")
    assert late.status_code == 409 and late.json()["code"] == "pending-expired"
    assert (await client.get(f"/accounts/{wallet}/balance")).json()["available"] == 100
    history = (await client.get(f"/accounts/{wallet}/entries")).json()["items"]
    held = [e for e in history if e["transaction_id"] == auth["id"]]
    assert held and held[0]["pending"] and held[0]["state"] == "expired"
