"""The audit trail: one row per write request, written with the write (or,
for a refusal or a replay, just before the answer), read through
`GET /audit`."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import text

from ledger.engine.access import ACCOUNTS_READ, AUDIT_READ, TRANSACTIONS_WRITE
from support.ids import fresh_id
from support.ledger import make_key


async def rows(client, **query) -> list[dict]:
    found: list[dict] = []
    cursor = None
    while True:
        params = {k: v for k, v in {**query, "cursor": cursor, "limit": 500}.items() if v}
        page = await client.get("/audit", params=params)
        assert page.status_code == 200, page.text
        found += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return found


async def of_request(owner_engine, request_id: str) -> list[dict]:
    """The rows of one request, read straight from the table (the API has no
    filter by request id: it would be a scan of the whole trail)."""
    async with owner_engine.connect() as conn:
        found = await conn.execute(
            text("SELECT * FROM audit.log WHERE request_id = :r ORDER BY occurred_at"),
            {"r": request_id},
        )
        return [
            {k: (str(v) if isinstance(v, uuid.UUID) else v) for k, v in row._mapping.items()}
            for row in found
        ]


def traced(**headers) -> dict[str, str]:
    return {"X-Request-Id": uuid.uuid4().hex, **headers}


async def new_account(client, **fields) -> str:
    body = {"id": fresh_id(), "currency": "USD", "scale": 2, "normal_side": "debit", **fields}
    assert (await client.post("/accounts", json=body)).status_code == 201
    return body["id"]


def transfer(a: str, b: str, amount: int = 10, **extra) -> dict:
    return {
        "entries": [
            {"account_id": a, "direction": "debit", "amount": amount},
            {"account_id": b, "direction": "credit", "amount": amount},
        ],
        **extra,
    }


async def test_every_kind_of_write_leaves_one_row_saying_who_what_when_and_why(
    client, owner_engine
):
    a, b = await new_account(client), await new_account(client)
    checks = []  # (request headers, action, expected target or None for "the new transaction")

    async def write(method, path, action, target=None, **kwargs):
        headers = traced(**{"Ledger-Reason": f"ticket {action}"}, **kwargs.pop("headers", {}))
        response = await client.request(method, path, headers=headers, **kwargs)
        assert response.status_code in (200, 201), response.text
        checks.append((headers, action, target, response.json()))
        return response.json()

    account_id = fresh_id()
    await write(
        "POST",
        "/accounts",
        "account.create",
        account_id,
        json={"id": account_id, "currency": "EUR", "scale": 2, "normal_side": "credit"},
    )
    patch = {"hot": True}
    await write("PATCH", f"/accounts/{account_id}", "account.update", account_id, json=patch)
    tx = await write(
        "POST",
        "/transactions",
        "transaction.create",
        json=transfer(a, b),
        headers={"Idempotency-Key": fresh_id("k")},
    )
    await write(
        "POST",
        f"/transactions/{tx['id']}/reversal",
        "transaction.reverse",
        tx["id"],
        headers={"Idempotency-Key": fresh_id("k")},
    )
    held = await write(
        "POST",
        "/transactions",
        "transaction.create",
        json=transfer(a, b, pending=True),
        headers={"Idempotency-Key": fresh_id("k")},
    )
    await write(
        "POST",
        f"/transactions/{held['id']}/post",
        "pending.post",
        held["id"],
        headers={"Idempotency-Key": fresh_id("k")},
    )
    held2 = await write(
        "POST",
        "/transactions",
        "transaction.create",
        json=transfer(a, b, pending=True),
        headers={"Idempotency-Key": fresh_id("k")},
    )
    await write(
        "POST",
        f"/transactions/{held2['id']}/void",
        "pending.void",
        held2["id"],
        headers={"Idempotency-Key": fresh_id("k")},
    )
    new_key = {"name": "n", "client_id": "c", "scopes": ["audit:read"]}
    made = await write("POST", "/keys", "key.create", json=new_key)
    await write("POST", f"/keys/{made['id']}/revoke", "key.revoke", made["id"])

    admin = (await client.get("/keys")).json()["items"]
    admin_row = next(k for k in admin if k["name"] == "tests-admin")
    for headers, action, target, answer in checks:
        [row] = await of_request(owner_engine, headers["X-Request-Id"])
        assert row["action"] == action
        assert row["reason"] == f"ticket {action}"
        assert row["key_id"] == admin_row["id"] and row["key_name"] == "tests-admin"
        assert row["client_id"] == "default" and row["source"]
        assert row["outcome"] in ("created", "updated", "revoked")
        if action.startswith(("transaction", "pending")):
            # The row of a posting names the transaction it committed.
            assert row["transaction_id"] == answer["id"]
            assert row["target"] == (target or answer["id"])
            assert len(row["fingerprint"]) == 64
        else:
            # Accounts and keys: the one acted on, or made.
            assert row["target"] == (target or answer["id"]) and row["transaction_id"] is None


async def test_refusals_and_replays_are_recorded_and_a_refused_posting_commits_no_row(
    client, ledger, owner_engine
):
    a = await new_account(client, flags={"debits_must_not_exceed_credits": True})
    b = await new_account(client)
    reader = await make_key(ledger, ACCOUNTS_READ)
    cases = [
        # (headers, body, status, problem)
        ({}, transfer(b, a), 201, None),
        ({"Authorization": ""}, transfer(b, a), 401, "unauthenticated"),
        ({"Authorization": f"Bearer {reader}"}, transfer(b, a), 403, "forbidden"),
        ({}, transfer(a, b, 1_000), 422, "limit-exceeded"),
        ({}, {"entries": "nope"}, 400, "wrong-type"),
    ]
    for extra, body, status, problem in cases:
        headers = traced(**{"Idempotency-Key": fresh_id("k"), **extra})
        response = await client.post("/transactions", json=body, headers=headers)
        assert response.status_code == status, response.text
        [row] = await of_request(owner_engine, headers["X-Request-Id"])
        assert row["action"] == "transaction.create"
        if problem is None:
            assert row["outcome"] == "created"
            continue
        # No row of a write that rolled back: only the refusal's, naming no transaction.
        assert row["outcome"] == "refused" and row["problem"] == problem
        assert row["transaction_id"] is None and row["detail"]
        if status == 401:
            assert row["key_id"] is None and row["key_name"] == "unauthenticated"
        else:
            assert row["key_id"] is not None
    # A key used again: the replay is recorded; a key reused for another body is a 409.
    key = fresh_id("k")
    body = transfer(b, a)
    original = traced(**{"Idempotency-Key": key})
    first = await client.post("/transactions", json=body, headers=original)
    replay = traced(**{"Idempotency-Key": key})
    assert (await client.post("/transactions", json=body, headers=replay)).status_code == 200
    [row] = await of_request(owner_engine, replay["X-Request-Id"])
    assert row["outcome"] == "replayed" and row["target"] == first.json()["id"]
    assert row["transaction_id"] is None
    # The replay's row carries the fingerprint of the request (not of its
    # bytes): the same as the original's, however the JSON was spaced.
    [created] = await of_request(owner_engine, original["X-Request-Id"])
    assert row["fingerprint"] == created["fingerprint"]
    spaced = traced(**{"Idempotency-Key": key, "Content-Type": "application/json"})
    raw = json.dumps(body, indent=3).encode()
    assert (await client.post("/transactions", content=raw, headers=spaced)).status_code == 200
    [again] = await of_request(owner_engine, spaced["X-Request-Id"])
    assert again["outcome"] == "replayed" and again["fingerprint"] == created["fingerprint"]
    clash = traced(**{"Idempotency-Key": key})
    response = await client.post("/transactions", json=transfer(b, a, 2), headers=clash)
    assert response.status_code == 409
    [row] = await of_request(owner_engine, clash["X-Request-Id"])
    assert row["problem"] == "idempotency-key-reused" and row["outcome"] == "refused"
    # A refusal on a route with a target names it.
    missing = traced(**{"Idempotency-Key": fresh_id("k")})
    gone = str(uuid.uuid4())
    response = await client.post(f"/transactions/{gone}/reversal", headers=missing)
    assert response.status_code == 404
    [row] = await of_request(owner_engine, missing["X-Request-Id"])
    assert row["target"] == gone and row["action"] == "transaction.reverse"


async def test_the_expiry_sweeper_leaves_a_row_for_each_expiry(client, ledger):
    a, b = await new_account(client), await new_account(client)
    held = await client.post(
        "/transactions",
        json=transfer(a, b, pending=True, timeout_seconds=1),
        headers={"Idempotency-Key": fresh_id("k")},
    )
    import asyncio

    await asyncio.sleep(1.2)
    await ledger.postings.expire_due()
    hold = (await client.get(f"/transactions/{held.json()['id']}")).json()
    assert hold["state"] == "expired"
    [row] = [r for r in await rows(client, target=hold["id"]) if r["action"] == "pending.expire"]
    assert row["key_name"] == "system:expiry" and row["transaction_id"] == hold["resolved_by"]


async def test_the_trail_filters_and_pages_and_needs_its_scope(client, ledger):
    a, b = await new_account(client), await new_account(client)
    writer = await make_key(ledger, TRANSACTIONS_WRITE)
    writer_id = writer.split("_")[1]
    for _ in range(3):
        r = await client.post(
            "/transactions",
            json=transfer(a, b),
            headers={"Authorization": f"Bearer {writer}", "Idempotency-Key": fresh_id("k")},
        )
        assert r.status_code == 201
    mine = await rows(client, actor=writer_id)
    assert [r["action"] for r in mine] == ["transaction.create"] * 3
    times = [r["occurred_at"] for r in mine]
    assert times == sorted(times)
    page = (await client.get("/audit", params={"actor": writer_id, "limit": 2})).json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = (
        await client.get(
            "/audit", params={"actor": writer_id, "limit": 2, "cursor": page["next_cursor"]}
        )
    ).json()
    assert [r["id"] for r in page["items"] + rest["items"]] == [r["id"] for r in mine]
    assert await rows(client, actor=writer_id, target=mine[0]["target"]) == [mine[0]]
    since = mine[1]["occurred_at"]
    assert await rows(client, actor=writer_id, **{"from": since}) == [
        r for r in mine if r["occurred_at"] >= since
    ]
    assert await rows(client, actor=writer_id, to=mine[0]["occurred_at"]) == []
    assert await rows(client, actor=writer_id, action="account.create") == []
    bad = await client.get("/audit", params={"from": "yesterday"})
    assert bad.status_code == 422 and bad.json()["field"] == "from"
    assert (await client.get("/audit", params={"cursor": "!!"})).status_code == 400
    reader = await make_key(ledger, AUDIT_READ)
    assert (
        await client.get("/audit", headers={"Authorization": f"Bearer {reader}"})
    ).status_code == 200
    assert (
        await client.get("/audit", headers={"Authorization": f"Bearer {writer}"})
    ).status_code == 403
