"""PATCH /accounts/{id} through HTTP: status, metadata and limits, each
change on /changes with its Ledger-Reason and in the audit trail; the
problems a client gets when a posting meets a frozen account."""

from __future__ import annotations

import pytest

from support.database import written_rows
from support.ids import fresh_id


async def account(client, **fields) -> str:
    body = {"id": fresh_id(), "currency": "USD", "normal_side": "debit", **fields}
    assert (await client.post("/accounts", json=body)).status_code == 201
    return body["id"]


async def post(client, body):
    return await client.post("/transactions", json=body, headers={"Idempotency-Key": fresh_id()})


def transfer(a: str, b: str, amount: int = 10) -> dict:
    return {
        "entries": [
            {"account_id": a, "direction": "debit", "amount": amount},
            {"account_id": b, "direction": "credit", "amount": amount},
        ]
    }


async def test_freezing_is_recorded_with_its_reason_and_refuses_postings(client):
    bank, wallet = await account(client), await account(client, normal_side="credit")
    frozen = await client.patch(
        f"/accounts/{wallet}",
        json={"status": "frozen", "metadata": {"case": "KYC-7"}},
        headers={"Ledger-Reason": "KYC documents expired"},
    )
    assert frozen.status_code == 200, frozen.text
    assert frozen.json()["status"] == "frozen" and frozen.json()["metadata"] == {"case": "KYC-7"}
    refused = await post(client, transfer(bank, wallet))
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert problem["code"] == "account-frozen" and problem["account_id"] == wallet
    assert problem["pointer"] == "/entries/1/account_id" and wallet in problem["detail"]
    changes = (await client.get(f"/accounts/{wallet}/changes")).json()["items"]
    assert [(c["field"], c["reason"]) for c in changes] == [
        ("status", "KYC documents expired"),
        ("metadata", "KYC documents expired"),
    ]
    trail = (await client.get("/audit", params={"target": wallet})).json()["items"]
    update = [r for r in trail if r["action"] == "account.update"]
    assert update and update[-1]["reason"] == "KYC documents expired"
    active = await client.patch(f"/accounts/{wallet}", json={"status": "active"})
    assert active.json()["status"] == "active"
    assert (await post(client, transfer(bank, wallet))).status_code == 201


@pytest.mark.parametrize(
    ("patch", "status", "code"),
    [
        ({"status": "closed"}, 422, "account-not-empty"),
        ({"flags": {"debits_must_not_exceed_credits": True}}, 422, "limit-exceeded"),
        ({"flags": {"debits_must_not_exceed_credits": "yes"}}, 400, "wrong-type"),
        ({"flags": {"overdraft": True}}, 400, "unknown-field"),
        ({"currency": "EUR"}, 400, "unknown-field"),
        ({"metadata": {"a": "\u0000"}}, 422, "invalid-value"),
        ({"metadata": {"a": "x" * 5000}}, 422, "invalid-value"),
    ],
)
async def test_refused_patches_name_the_mistake_and_write_nothing(
    client, owner_engine, patch, status, code
):
    bank, wallet = await account(client), await account(client, normal_side="credit")
    assert (await post(client, transfer(bank, wallet, 5))).status_code == 201
    before = await written_rows(owner_engine)
    response = await client.patch(f"/accounts/{bank}", json=patch)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert await written_rows(owner_engine) == before


async def test_a_limit_message_names_the_way_to_remove_it(client):
    wallet = await account(client, flags={"debits_must_not_exceed_credits": True})
    response = await client.patch(f"/accounts/{wallet}", json={"hot": True})
    assert response.status_code == 422
    assert '"flags"' in response.json()["detail"]
    removed = await client.patch(
        f"/accounts/{wallet}", json={"flags": {"debits_must_not_exceed_credits": False}}
    )
    assert removed.status_code == 200 and removed.json()["flags"] == {
        "debits_must_not_exceed_credits": False,
        "credits_must_not_exceed_debits": False,
    }
    assert (await client.patch(f"/accounts/{wallet}", json={"hot": True})).json()["hot"] is True
