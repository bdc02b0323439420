"""The tenancy boundary, tried as an attacker would: a key **L** with every
scope limited to one prefix, against the resources of a key **K2** limited
to another (and of the unlimited admin). Each test is one finding of the
audit that found the boundary leaking; each failed before the reach rule
moved into the engine."""

from __future__ import annotations

import asyncio
import json

import pytest

from ledger.engine.access import (
    ACCOUNTS_READ,
    AUDIT_READ,
    DIRECT,
    EVENTS_READ,
    KEYS_ADMIN,
    SCOPES,
    TRANSACTIONS_WRITE,
)
from support.access import bearer, refused, transfer
from support.events import head
from support.ids import fresh_id
from support.ledger import app_client, make_key
from support.reconciliation import XML, camt, days


class Tenants:
    """Two tenants, each with an every-scope key limited to its prefix and
    two EUR accounts of its own."""

    def __init__(self, ledger) -> None:
        self.ledger = ledger
        self.p1 = fresh_id("m1") + ":"
        self.p2 = fresh_id("m2") + ":"

    async def setup(self, client) -> Tenants:
        self.l_key = await make_key(self.ledger, *SCOPES, accounts=[self.p1])
        self.k2_key = await make_key(self.ledger, *SCOPES, accounts=[self.p2])
        self.l = bearer(self.l_key)
        self.k2 = bearer(self.k2_key)
        self.a1, self.b1 = await self._pair(client, self.p1)
        self.a2, self.b2 = await self._pair(client, self.p2)
        return self

    async def _pair(self, client, prefix: str) -> tuple[str, str]:
        made = []
        for side in ("debit", "credit"):
            body = {"id": prefix + fresh_id(), "currency": "EUR", "scale": 2, "normal_side": side}
            answer = await client.post("/accounts", json=body)
            assert answer.status_code == 201, answer.text
            made.append(body["id"])
        return made[0], made[1]

    async def post(self, client, debit: str, credit: str, headers, amount: int = 100) -> dict:
        answer = await client.post(
            "/transactions",
            json=transfer(debit, credit, amount),
            headers={**headers, "Idempotency-Key": fresh_id("k")},
        )
        assert answer.status_code == 201, answer.text
        return answer.json()


@pytest.fixture
async def tenants(client, ledger) -> Tenants:
    return await Tenants(ledger).setup(client)


def key_id(key: str) -> str:
    return key.split("_")[1]


# --- 1. keys cannot mint more than they hold ------------------------------------------


async def test_a_limited_key_cannot_mint_a_key_beyond_its_prefixes(client, tenants):
    def new(**fields) -> dict:
        return {"name": fresh_id("n"), "client_id": "c", "scopes": [ACCOUNTS_READ], **fields}

    # No `accounts` is every account: more than L holds.
    body = refused(await client.post("/keys", json=new(), headers=tenants.l), 403, "forbidden")
    assert body["field"] == "accounts"
    # A shorter prefix reaches more than L's.
    refused(
        await client.post("/keys", json=new(accounts=["m"]), headers=tenants.l), 403, "forbidden"
    )
    refused(
        await client.post("/keys", json=new(accounts=[tenants.p1, tenants.p2]), headers=tenants.l),
        403,
        "forbidden",
    )
    # Within its prefixes it may: the same prefix, or a longer one.
    narrower = new(accounts=[tenants.p1 + "shop-"])
    made = await client.post("/keys", json=narrower, headers=tenants.l)
    assert made.status_code == 201, made.text
    # The new key reads nothing of m2.
    foreign = await client.get(
        f"/accounts/{tenants.a2}/balance", headers=bearer(made.json()["key"])
    )
    assert foreign.status_code == 403


async def test_a_key_cannot_give_a_scope_it_lacks(client, ledger):
    admin_of_reads = await make_key(ledger, KEYS_ADMIN, ACCOUNTS_READ)
    body = {
        "name": fresh_id("n"),
        "client_id": "c",
        "scopes": [AUDIT_READ, TRANSACTIONS_WRITE, KEYS_ADMIN],
    }
    problem = refused(
        await client.post("/keys", json=body, headers=bearer(admin_of_reads)), 403, "forbidden"
    )
    assert problem["field"] == "scopes" and problem["scope"] == AUDIT_READ
    body["scopes"] = [ACCOUNTS_READ]
    made = await client.post("/keys", json=body, headers=bearer(admin_of_reads))
    assert made.status_code == 201, made.text


# --- 2. keys above the ceiling are neither seen nor revoked ---------------------------


async def test_a_limited_key_lists_reads_and_revokes_only_keys_under_its_ceiling(
    client, ledger, tenants
):
    unlimited = await make_key(ledger, ACCOUNTS_READ)
    own = await make_key(ledger, ACCOUNTS_READ, accounts=[tenants.p1 + "x"])
    # Revoking the unlimited key: not found, and it still works.
    refused(
        await client.post(f"/keys/{key_id(unlimited)}/revoke", headers=tenants.l),
        404,
        "key-not-found",
    )
    assert (await client.get("/accounts", headers=bearer(unlimited))).status_code == 200
    refused(await client.get(f"/keys/{key_id(unlimited)}", headers=tenants.l), 404, "key-not-found")
    refused(
        await client.get(f"/keys/{key_id(tenants.k2_key)}", headers=tenants.l),
        404,
        "key-not-found",
    )
    # The listing holds L's own kind of key and nothing above it.
    seen, cursor = set(), None
    while True:
        page = (
            await client.get("/keys", params={"limit": 100, "cursor": cursor}, headers=tenants.l)
        ).json()
        seen |= {k["id"] for k in page["items"]}
        for k in page["items"]:
            assert k["accounts"] and all(a.startswith(tenants.p1) for a in k["accounts"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert key_id(own) in seen and key_id(tenants.l_key) in seen
    assert key_id(unlimited) not in seen and key_id(tenants.k2_key) not in seen
    # Under the ceiling, revoking works.
    revoked = await client.post(f"/keys/{key_id(own)}/revoke", headers=tenants.l)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]


# --- 3. reconciliation ----------------------------------------------------------------


async def k2_source_with_an_exception(client, tenants) -> tuple[str, dict]:
    """A source of K2's on its own account, and the open exception a run
    found (a statement line the ledger does not have)."""
    src = fresh_id("src")
    body = {
        "id": src,
        "account_id": tenants.a2,
        "format": "camt.053",
        "currency": "EUR",
        "settlement_lag_days": 0,
    }
    made = await client.post("/reconciliation/sources", json=body, headers=tenants.k2)
    assert made.status_code == 201, made.text
    up = await client.post(
        f"/reconciliation/sources/{src}/statements",
        content=camt([(4200, "NOT-IN-LEDGER")]),
        headers={**tenants.k2, **XML},
    )
    assert up.status_code == 201, up.text
    ran = await client.post(
        "/reconciliation/runs",
        json={"source_id": src, "from": days(-1), "to": days(1)},
        headers=tenants.k2,
    )
    assert ran.status_code == 201, ran.text
    found = await client.get(
        "/reconciliation/exceptions", params={"source_id": src}, headers=tenants.k2
    )
    (exception,) = found.json()["items"]
    return src, {"run": ran.json(), "exception": exception}


async def test_reconciliation_of_another_tenant_is_not_found_and_cannot_be_touched(client, tenants):
    src, made = await k2_source_with_an_exception(client, tenants)
    run_id, exception_id = made["run"]["id"], made["exception"]["id"]
    l = tenants.l  # noqa: E741
    gone = "reconciliation-not-found"
    refused(await client.get(f"/reconciliation/sources/{src}", headers=l), 404, gone)
    refused(await client.get(f"/reconciliation/runs/{run_id}", headers=l), 404, gone)
    refused(await client.get(f"/reconciliation/runs/{run_id}/matches", headers=l), 404, gone)
    refused(await client.get(f"/reconciliation/exceptions/{exception_id}", headers=l), 404, gone)
    for path, params in (
        ("/reconciliation/sources", {"limit": 500}),
        ("/reconciliation/exceptions", {"limit": 500}),
        ("/reconciliation/exceptions", {"source_id": src}),
    ):
        listed = (await client.get(path, params=params, headers=l)).json()["items"]
        assert src not in {x.get("source_id", x.get("id")) for x in listed}
    # Writes: upload to it, run it, resolve its exception, make one on m2.
    refused(
        await client.post(
            f"/reconciliation/sources/{src}/statements",
            content=camt([(1, "X")]),
            headers={**l, **XML},
        ),
        404,
        gone,
    )
    refused(
        await client.post(
            "/reconciliation/runs",
            json={"source_id": src, "from": days(-1), "to": days(1)},
            headers=l,
        ),
        404,
        gone,
    )
    refused(
        await client.post(
            f"/reconciliation/exceptions/{exception_id}/resolve",
            json={"resolution": "accepted", "note": "not mine"},
            headers=l,
        ),
        404,
        gone,
    )
    mine = {
        "id": fresh_id("src"),
        "account_id": tenants.b2,
        "format": "camt.053",
        "currency": "EUR",
    }
    body = refused(
        await client.post("/reconciliation/sources", json=mine, headers=l), 403, "forbidden"
    )
    assert body["account_id"] == tenants.b2
    # K2 still sees all of it, the exception still open.
    again = await client.get(f"/reconciliation/exceptions/{exception_id}", headers=tenants.k2)
    assert again.json()["status"] == "open"


# --- 4. the audit trail ---------------------------------------------------------------


async def test_a_limited_key_reads_only_audit_rows_within_its_prefixes(client, tenants):
    mine = await tenants.post(client, tenants.a1, tenants.b1, tenants.l)
    theirs = await tenants.post(client, tenants.a2, tenants.b2, tenants.k2)
    rows, cursor = [], None
    while True:
        page = (
            await client.get("/audit", params={"limit": 500, "cursor": cursor}, headers=tenants.l)
        ).json()
        rows += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert rows, "a limited key reads the rows of its own accounts"
    for row in rows:
        assert row["reach"] and all(a.startswith(tenants.p1) for a in row["reach"]), row
    targets = {r["target"] for r in rows}
    assert mine["id"] in targets and theirs["id"] not in targets
    assert tenants.a1 in targets and tenants.a2 not in targets
    # Asked by target, the other tenant's rows are not there either.
    by_target = await client.get("/audit", params={"target": theirs["id"]}, headers=tenants.l)
    assert by_target.json()["items"] == []
    everything = await client.get("/audit", params={"target": theirs["id"]})
    assert [r["action"] for r in everything.json()["items"]] == ["transaction.create"]


# --- 5. webhooks ----------------------------------------------------------------------


async def test_webhook_endpoints_of_another_tenant_are_not_found(client, tenants):
    made = await client.post(
        "/webhooks", json={"url": "http://127.0.0.1:9/hook"}, headers=tenants.k2
    )
    assert made.status_code == 201, made.text
    hook = made.json()["id"]
    l = tenants.l  # noqa: E741
    gone = "webhook-not-found"
    listed = (await client.get("/webhooks", params={"limit": 500}, headers=l)).json()["items"]
    assert hook not in {w["id"] for w in listed}
    refused(await client.get(f"/webhooks/{hook}", headers=l), 404, gone)
    refused(await client.get(f"/webhooks/{hook}/deliveries", headers=l), 404, gone)
    refused(await client.post(f"/webhooks/{hook}/rotate-secret", headers=l), 404, gone)
    refused(await client.post(f"/webhooks/{hook}/replay", headers=l), 404, gone)
    refused(await client.post(f"/webhooks/{hook}/resume", headers=l), 404, gone)
    refused(await client.delete(f"/webhooks/{hook}", headers=l), 404, gone)
    # It is untouched: same secret generation, still there.
    still = await client.get(f"/webhooks/{hook}", headers=tenants.k2)
    assert still.status_code == 200 and still.json()["previous_secret_until"] is None


# --- 6. replays judge reach first -----------------------------------------------------


async def test_a_replay_answers_only_a_caller_that_could_have_made_the_request(
    client, ledger, tenants
):
    theirs = await tenants.post(client, tenants.a2, tenants.b2, {})
    key = fresh_id("k")
    reversal = await client.post(
        f"/transactions/{theirs['id']}/reversal", json={}, headers={"Idempotency-Key": key}
    )
    assert reversal.status_code == 201, reversal.text
    # A limited key of the admin's own client sends the admin's key and body.
    sharing = bearer(await make_key(ledger, *SCOPES, client="default", accounts=[tenants.p1]))
    same = await client.post(
        f"/transactions/{theirs['id']}/reversal",
        json={},
        headers={**sharing, "Idempotency-Key": key},
    )
    # The same answer as a fresh request: that transaction is not found.
    body = refused(same, 404, "transaction-not-found")
    assert "idempotent-replayed" not in same.headers
    other = await client.post(
        f"/transactions/{theirs['id']}/reversal",
        json={"description": "another body"},
        headers={**sharing, "Idempotency-Key": key},
    )
    body = refused(other, 404, "transaction-not-found")
    assert reversal.json()["id"] not in json.dumps(body)
    # A posting's key of another tenant, reused on the posting path, too.
    posted = await client.post(
        "/transactions",
        json=transfer(tenants.a2, tenants.b2, 5),
        headers={"Idempotency-Key": key + "-p"},
    )
    assert posted.status_code == 201
    for body_json in (transfer(tenants.a2, tenants.b2, 5), transfer(tenants.a1, tenants.b1, 5)):
        again = await client.post(
            "/transactions", json=body_json, headers={**sharing, "Idempotency-Key": key + "-p"}
        )
        problem = refused(again, 403, "forbidden")
        assert posted.json()["id"] not in json.dumps(problem)
        assert tenants.p2 not in json.dumps(problem) or tenants.p2 in json.dumps(body_json)


# --- 7. revocation ends what is open --------------------------------------------------


async def test_revoking_a_key_ends_its_open_stream_and_long_poll(
    client, ledger, database_url, settings
):
    key = await make_key(ledger, EVENTS_READ)
    # Events of an account nobody posts to: none arrive to end either early.
    quiet = {"after": await head(client), "account_id": fresh_id("quiet")}

    async def long_poll():
        async with app_client(database_url, settings, key) as c:
            return await c.get("/events", params={**quiet, "wait": 20})

    async def stream() -> list[str]:
        lines = []
        async with (
            app_client(database_url, settings, key) as c,
            c.stream("GET", "/events/stream", params=quiet) as answer,
        ):
            assert answer.status_code == 200
            async for line in answer.aiter_lines():
                lines.append(line)
        return lines

    # Litestar's test client blocks its caller's loop while a request runs:
    # each reader runs in a thread with a loop of its own.
    loop = asyncio.get_running_loop()
    polling = asyncio.ensure_future(asyncio.to_thread(asyncio.run, long_poll()))
    streaming = asyncio.ensure_future(asyncio.to_thread(asyncio.run, stream()))
    await asyncio.sleep(1.0)
    started = loop.time()
    await ledger.keys.revoke(key_id(key), DIRECT)
    # The test settings cache keys for 0.3 s: both end well before the
    # poll's 20 s or the stream's five minutes.
    answer, lines = await asyncio.wait_for(asyncio.gather(polling, streaming), timeout=10)
    assert loop.time() - started < 10
    refused(answer, 401, "unauthenticated")
    assert "event: error" in lines
    data = json.loads(lines[lines.index("event: error") + 1].removeprefix("data: "))
    assert data["code"] == "unauthenticated"


async def test_revoking_a_key_pauses_its_webhooks_until_a_key_that_reaches_them_resumes(
    client, ledger, tenants
):
    owner = await make_key(ledger, KEYS_ADMIN, "webhooks:admin", accounts=[tenants.p1])
    made = await client.post(
        "/webhooks", json={"url": "http://127.0.0.1:9/hook"}, headers=bearer(owner)
    )
    hook = made.json()["id"]
    assert made.json()["key_id"] == key_id(owner)
    revoked = await client.post(f"/keys/{key_id(owner)}/revoke", headers=tenants.l)
    assert revoked.status_code == 200
    paused = (await client.get(f"/webhooks/{hook}", headers=tenants.l)).json()
    assert (paused["status"], paused["status_reason"]) == ("paused", "key-revoked")
    # A replay moves its cursor but does not turn it on again.
    replayed = await client.post(f"/webhooks/{hook}/replay", headers=tenants.l)
    assert replayed.json()["status"] == "paused"
    # K2 does not reach it; L does, and owns it from then on.
    refused(
        await client.post(f"/webhooks/{hook}/resume", headers=tenants.k2), 404, "webhook-not-found"
    )
    resumed = await client.post(f"/webhooks/{hook}/resume", headers=tenants.l)
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["status"] == "active"
    assert resumed.json()["key_id"] == key_id(tenants.l_key)
    refused(
        await client.post(f"/webhooks/{hook}/resume", headers=tenants.l),
        409,
        "webhook-not-paused",
    )
