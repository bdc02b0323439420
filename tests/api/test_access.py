"""API keys as a client meets them: missing, malformed, unknown, revoked,
short of a scope, limited to other accounts, rate-limited; the keys'
endpoints; and the surface a browser could reach."""

from __future__ import annotations

import asyncio

import pytest

from ledger.engine.access import (
    ACCOUNTS_READ,
    ACCOUNTS_WRITE,
    DIRECT,
    TRANSACTIONS_READ,
    TRANSACTIONS_WRITE,
    new_key,
)
from support.access import bearer, refused, transfer
from support.ids import fresh_id
from support.ledger import app_client, make_key


async def open_pair(client, prefix: str = "acct") -> tuple[str, str]:
    a, b = fresh_id(prefix), fresh_id(prefix)
    for account_id in (a, b):
        r = await client.post(
            "/accounts",
            json={"id": account_id, "currency": "USD", "scale": 2, "normal_side": "debit"},
        )
        assert r.status_code == 201, r.text
    return a, b


@pytest.mark.parametrize(
    ("authorization", "says"),
    [
        (None, "send an API key"),
        ("Basic dXNlcjpwYXNz", "must be 'Bearer <API key>'"),
        ("Bearer ", "must be 'Bearer <API key>'"),
        ("Bearer not-a-key", "malformed"),
        ("Bearer lk_abc_short", "malformed"),
        (f"Bearer {new_key()[1]}", "not one this ledger issued"),
    ],
)
async def test_a_request_without_a_valid_key_is_401_and_says_why(client, authorization, says):
    request = client.build_request("GET", "/accounts")
    del request.headers["authorization"]  # the client's admin key
    if authorization is not None:
        request.headers["authorization"] = authorization
    response = await client.send(request)
    body = refused(response, 401, "unauthenticated")
    assert says in body["detail"]
    assert response.headers["www-authenticate"] == 'Bearer realm="ledger"'


async def test_a_wrong_secret_for_a_real_key_id_is_refused(client, ledger):
    key = await make_key(ledger, ACCOUNTS_READ)
    forged = key[: key.rindex("_") + 1] + "A" * 43
    refused(await client.get("/accounts", headers=bearer(forged)), 401, "unauthenticated")
    assert (await client.get("/accounts", headers=bearer(key))).status_code == 200


async def test_a_key_without_the_scope_is_403_naming_the_scope(client, ledger):
    reader = await make_key(ledger, ACCOUNTS_READ)
    a, b = await open_pair(client)
    assert (await client.get(f"/accounts/{a}", headers=bearer(reader))).status_code == 200
    body = refused(
        await client.post(
            "/transactions",
            json=transfer(a, b),
            headers={**bearer(reader), "Idempotency-Key": fresh_id("k")},
        ),
        403,
        "forbidden",
    )
    assert body["scope"] == TRANSACTIONS_WRITE and "transactions:write" in body["detail"]
    body = refused(await client.get("/keys", headers=bearer(reader)), 403, "forbidden")
    assert body["scope"] == "keys:admin"
    refused(await client.get("/metrics", headers=bearer(reader)), 403, "forbidden")
    refused(await client.get("/audit", headers=bearer(reader)), 403, "forbidden")
    # Nothing was written by the refused posting.
    balance = (await client.get(f"/accounts/{a}/balance")).json()
    assert balance["posted"]["debits"] == 0


async def test_a_key_limited_to_prefixes_reaches_only_those_accounts(client, ledger):
    prefix = fresh_id("merchant") + ":"
    mine_a, mine_b = await open_pair(client, prefix)
    other_a, _other_b = await open_pair(client)
    key = await make_key(
        ledger,
        ACCOUNTS_READ,
        ACCOUNTS_WRITE,
        TRANSACTIONS_READ,
        TRANSACTIONS_WRITE,
        accounts=[prefix],
    )
    auth = bearer(key)
    assert (await client.get(f"/accounts/{mine_a}/balance", headers=auth)).status_code == 200
    for path in (
        f"/accounts/{other_a}",
        f"/accounts/{other_a}/balance",
        f"/accounts/{other_a}/entries",
        f"/accounts/{other_a}/changes",
    ):
        body = refused(await client.get(path, headers=auth), 403, "forbidden")
        assert body["account_id"] == other_a, path
    # A posting with one leg outside: refused, naming that account, nothing written.
    body = refused(
        await client.post(
            "/transactions",
            json=transfer(mine_a, other_a),
            headers={**auth, "Idempotency-Key": fresh_id("k")},
        ),
        403,
        "forbidden",
    )
    assert body["account_id"] == other_a
    assert (await client.get(f"/accounts/{other_a}/balance")).json()["posted"]["credits"] == 0
    # Inside its prefixes it posts and reads.
    posted = await client.post(
        "/transactions",
        json=transfer(mine_a, mine_b),
        headers={**auth, "Idempotency-Key": fresh_id("k")},
    )
    assert posted.status_code == 201, posted.text
    assert (
        await client.get(f"/transactions/{posted.json()['id']}", headers=auth)
    ).status_code == 200
    # A transaction touching an account outside cannot be read (it is not
    # found: its existence is not confirmed), reversed or resolved.
    theirs = await client.post(
        "/transactions", json=transfer(mine_a, other_a), headers={"Idempotency-Key": fresh_id()}
    )
    theirs_id = theirs.json()["id"]
    refused(
        await client.get(f"/transactions/{theirs_id}", headers=auth), 404, "transaction-not-found"
    )
    refused(
        await client.post(
            f"/transactions/{theirs.json()['id']}/reversal",
            headers={**auth, "Idempotency-Key": fresh_id("k")},
        ),
        404,
        "transaction-not-found",
    )
    # Listing shows only its accounts; creating one outside, or without an id, is refused.
    listed = (await client.get("/accounts?limit=500", headers=auth)).json()["items"]
    assert {a["id"] for a in listed} == {mine_a, mine_b}
    for body in (
        {"id": fresh_id("elsewhere"), "currency": "USD", "scale": 2, "normal_side": "debit"},
        {"currency": "USD", "scale": 2, "normal_side": "debit"},
    ):
        refused(
            await client.post(
                "/accounts", json=body, headers={**auth, "Idempotency-Key": fresh_id("k")}
            ),
            403,
            "forbidden",
        )


async def test_a_revoked_key_stops_working_within_the_cache_time(client, ledger, settings):
    key = await make_key(ledger, ACCOUNTS_READ)
    key_id = key.split("_")[1]
    assert (await client.get("/accounts", headers=bearer(key))).status_code == 200
    # Revoked in another process (straight in the store): this one notices
    # once its cached row is older than the cache time.
    await ledger.keys.revoke(key_id, DIRECT)
    await asyncio.sleep(settings.key_cache_seconds + 0.1)
    body = refused(await client.get("/accounts", headers=bearer(key)), 401, "unauthenticated")
    assert "revoked" in body["detail"]


async def test_keys_are_made_listed_and_revoked_over_http(client):
    made = await client.post(
        "/keys",
        json={"name": "payouts", "client_id": "payouts-svc", "scopes": [ACCOUNTS_READ]},
    )
    assert made.status_code == 201, made.text
    issued = made.json()
    key, key_id = issued["key"], issued["id"]
    assert key.startswith(f"lk_{key_id}_") and issued["revoked_at"] is None
    shown = (await client.get(f"/keys/{key_id}")).json()
    assert "key" not in shown and "secret_sha256" not in shown
    assert shown["client_id"] == "payouts-svc" and shown["scopes"] == [ACCOUNTS_READ]
    assert (await client.get("/accounts", headers=bearer(key))).status_code == 200
    revoked = await client.post(f"/keys/{key_id}/revoke")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    # Revoked in this process: refused at once, not after the cache time.
    refused(await client.get("/accounts", headers=bearer(key)), 401, "unauthenticated")
    refused(await client.post("/keys/nosuchkey/revoke"), 404, "key-not-found")
    for bad, field in (
        ({"name": "x", "client_id": "c", "scopes": ["accounts:delete"]}, "scopes"),
        ({"name": "x", "client_id": "c", "scopes": []}, "scopes"),
        ({"name": "", "client_id": "c", "scopes": [ACCOUNTS_READ]}, "name"),
        ({"name": "x", "client_id": "c", "scopes": [ACCOUNTS_READ], "accounts": []}, "accounts"),
    ):
        body = refused(await client.post("/keys", json=bad), 422, "invalid-value")
        assert body["field"] == field
    refused(await client.post("/keys", json={"name": "x"}), 400, "missing-field")


async def test_keys_of_one_client_share_idempotency_and_two_clients_do_not(client, ledger):
    a, b = await open_pair(client)
    scopes = (TRANSACTIONS_WRITE,)
    first, rotated = (
        await make_key(ledger, *scopes, client="c1"),
        await make_key(ledger, *scopes, client="c1"),
    )
    other = await make_key(ledger, *scopes, client="c2")
    idem = fresh_id("k")
    one = await client.post(
        "/transactions", json=transfer(a, b), headers={**bearer(first), "Idempotency-Key": idem}
    )
    again = await client.post(
        "/transactions", json=transfer(a, b), headers={**bearer(rotated), "Idempotency-Key": idem}
    )
    theirs = await client.post(
        "/transactions", json=transfer(a, b), headers={**bearer(other), "Idempotency-Key": idem}
    )
    assert one.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == one.json()["id"]
    assert theirs.status_code == 201 and theirs.json()["id"] != one.json()["id"]


async def test_failed_attempts_are_limited_and_never_lock_out_a_valid_key(
    database_url, settings, ledger
):
    key = await make_key(ledger, ACCOUNTS_READ)
    other = await make_key(ledger, ACCOUNTS_READ)
    wrong = f"lk_{other.split('_')[1]}_{'x' * 43}"  # a real key id, a made-up secret
    limited = settings.with_overrides(auth_failures_per_minute=3, expiry_sweep_seconds=0)
    async with app_client(database_url, limited) as c:
        # Made-up keys from one address: three 401s, then 429 for them...
        for _ in range(3):
            refused(await c.get("/accounts", headers=bearer(new_key()[1])), 401, "unauthenticated")
        response = await c.get("/accounts", headers=bearer(new_key()[1]))
        body = refused(response, 429, "rate-limited")
        # A whole number of seconds, within the limiter's one-minute window.
        assert body["retry_after_seconds"] in range(1, 61)
        assert int(response.headers["retry-after"]) == body["retry_after_seconds"]
        # ... while a valid key from the same address is answered.
        assert (await c.get("/accounts", headers=bearer(key))).status_code == 200
        # Guessing the secret of a real key id is limited for that id alone,
        # and the key's holder, from the same address, is still let in.
        for _ in range(3):
            refused(await c.get("/accounts", headers=bearer(wrong)), 401, "unauthenticated")
        refused(await c.get("/accounts", headers=bearer(wrong)), 429, "rate-limited")
        assert (await c.get("/accounts", headers=bearer(other))).status_code == 200
        assert (await c.get("/accounts", headers=bearer(key))).status_code == 200


def behind(app, peer: str):
    """`app` as a server sees it when every request comes from `peer`."""

    async def asgi(scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            scope = {**scope, "client": (peer, 40000)}
        await app(scope, receive, send)

    return asgi


async def test_trusted_proxies_name_the_client_for_limits_and_the_audit_row(
    database_url, settings, ledger, owner_engine
):
    from litestar.testing import AsyncTestClient
    from sqlalchemy import text

    from ledger.app import create_app

    key = await make_key(ledger, ACCOUNTS_READ, ACCOUNTS_WRITE)
    limited = settings.with_overrides(
        auth_failures_per_minute=2, expiry_sweep_seconds=0, trusted_proxies="10.9.0.0/16"
    )
    app = behind(create_app(limited, database_url), "10.9.0.7")
    async with AsyncTestClient(app=app) as c:
        # Two clients behind the proxy: one fails past the limit, the
        # other's made-up keys are still only 401.
        for _ in range(3):
            await c.get(
                "/accounts",
                headers={**bearer(new_key()[1]), "X-Forwarded-For": "203.0.113.5, 10.9.0.2"},
            )
        refused(
            await c.get(
                "/accounts", headers={**bearer(new_key()[1]), "X-Forwarded-For": "203.0.113.5"}
            ),
            429,
            "rate-limited",
        )
        refused(
            await c.get(
                "/accounts", headers={**bearer(new_key()[1]), "Forwarded": "for=198.51.100.1"}
            ),
            401,
            "unauthenticated",
        )
        # A client cannot choose its address by writing one to the left.
        request_id = fresh_id("req")
        made = await c.post(
            "/accounts",
            json={"id": fresh_id(), "currency": "USD", "scale": 2, "normal_side": "debit"},
            headers={
                **bearer(key),
                "X-Request-Id": request_id,
                "X-Forwarded-For": "1.2.3.4, 198.51.100.9",
            },
        )
        assert made.status_code == 201
    async with owner_engine.connect() as conn:
        source = (
            await conn.execute(
                text("SELECT source FROM audit.log WHERE request_id = :r"), {"r": request_id}
            )
        ).scalar_one()
    assert source == "198.51.100.9"


async def test_a_key_may_carry_its_own_request_rate(client, ledger):
    key = await make_key(ledger, ACCOUNTS_READ, requests_per_second=2)
    statuses = []
    # At two a second, a burst meets the limit within a few requests however
    # the one-second windows fall; only the first two are sure to pass.
    while 429 not in statuses and len(statuses) < 50:
        statuses.append((await client.get("/accounts", headers=bearer(key))).status_code)
    assert statuses[:2] == [200, 200] and statuses[-1] == 429
    # Every answer to it says the policy and what is left of the window.
    answer = await client.get("/accounts", headers=bearer(key))
    assert answer.headers["ratelimit-policy"] == '"key";q=2;w=1'
    remaining, reset = answer.headers["ratelimit"].removeprefix('"key";').split(";")
    assert remaining.startswith("r=") and int(remaining[2:]) in (0, 1)
    assert reset.startswith("t=") and 0 <= int(reset[2:]) <= 1
    unlimited = await client.get("/accounts")
    assert "ratelimit" not in unlimited.headers


async def test_write_bodies_must_be_json(client):
    a, b = await open_pair(client)
    form = await client.post(
        "/accounts",
        content=b"id=x&currency=USD",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    body = refused(form, 415, "unsupported-media-type")
    assert "application/json" in body["detail"]
    plain = await client.post(
        "/transactions",
        content=b'{"entries": []}',
        headers={"Content-Type": "text/plain", "Idempotency-Key": fresh_id("k")},
    )
    refused(plain, 415, "unsupported-media-type")
    # An empty body needs no type (a void or a reversal takes none).
    tx = await client.post(
        "/transactions", json=transfer(a, b), headers={"Idempotency-Key": fresh_id("k")}
    )
    reversal = await client.post(
        f"/transactions/{tx.json()['id']}/reversal", headers={"Idempotency-Key": fresh_id("k")}
    )
    assert reversal.status_code == 201, reversal.text


async def test_every_response_carries_the_request_id(client):
    given = await client.get("/health", headers={"X-Request-Id": "trace-123"})
    assert given.headers["x-request-id"] == "trace-123"
    made = await client.get("/accounts")
    assert len(made.headers["x-request-id"]) == 32
    unrouted = await client.get("/no/such/route", headers={"X-Request-Id": "trace-404"})
    assert unrouted.status_code == 404 and unrouted.headers["x-request-id"] == "trace-404"
    refusal = await client.get("/accounts", headers={"Authorization": "", "X-Request-Id": "r-401"})
    assert refusal.headers["x-request-id"] == "r-401"


async def test_cors_is_off_unless_origins_are_configured(client, database_url, settings, admin_key):
    origin = {"Origin": "https://evil.example"}
    answer = await client.get("/accounts", headers=origin)
    assert "access-control-allow-origin" not in answer.headers
    allowed = settings.with_overrides(cors_origins="https://ops.example", expiry_sweep_seconds=0)
    async with app_client(database_url, allowed, admin_key) as c:
        ok = await c.get("/accounts", headers={"Origin": "https://ops.example"})
        assert ok.headers["access-control-allow-origin"] == "https://ops.example"
        other = await c.get("/accounts", headers=origin)
        assert "access-control-allow-origin" not in other.headers


async def test_the_documentation_is_public_read_only_and_can_be_turned_off(
    client, database_url, settings, admin_key
):
    for path in ("/schema", "/schema/swagger", "/schema/openapi.json"):
        assert (await client.get(path, headers={"Authorization": ""})).status_code == 200
    asset = await client.get("/schema/assets/swagger-ui-bundle.js", headers={"Authorization": ""})
    assert asset.status_code == 200 and len(asset.content) > 100_000
    # Only the page's own files: the package's others are not served.
    other = await client.get("/schema/assets/swagger-editor.js", headers={"Authorization": ""})
    assert other.status_code == 404
    written = await client.post("/schema/openapi.json", headers={"Authorization": ""})
    assert written.status_code == 405 and written.headers["allow"]
    off = settings.with_overrides(docs=False, expiry_sweep_seconds=0)
    async with app_client(database_url, off, admin_key) as c:
        for path in ("/schema", "/schema/openapi.json", "/schema/assets/swagger-ui.css"):
            assert (await c.get(path)).status_code == 404
