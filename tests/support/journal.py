"""Postings for the journal's and the events' API tests."""

from __future__ import annotations

from support.ids import fresh_id


async def accounts(client) -> tuple[str, str]:
    ids = []
    for side in ("debit", "credit"):
        body = {"id": fresh_id(), "currency": "USD", "scale": 2, "normal_side": side}
        assert (await client.post("/accounts", json=body)).status_code == 201
        ids.append(body["id"])
    return ids[0], ids[1]


async def post(client, a: str, b: str, amount: int = 5, **extra) -> dict:
    body = {
        "entries": [
            {"account_id": a, "direction": "debit", "amount": amount},
            {"account_id": b, "direction": "credit", "amount": amount},
        ],
        **extra,
    }
    answer = await client.post(
        "/transactions", json=body, headers={"Idempotency-Key": fresh_id("key")}
    )
    assert answer.status_code == 201, answer.text
    return answer.json()
