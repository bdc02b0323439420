"""Hand-made hostile inputs: each gets a 4xx naming the mistake, never a
5xx, and the service stays healthy."""

from __future__ import annotations

import socket

import pytest

from support.database import written_rows
from support.ids import fresh_id
from support.ledger import app_client


@pytest.mark.parametrize(
    "path",
    [
        "/accounts/a%00b",
        "/accounts/a%00b/balance",
        "/accounts/a%00b/entries",
        "/accounts/a%00b/changes",
        "/transactions/a%00b",
    ],
)
async def test_a_nul_in_an_id_is_not_found_not_a_server_error(client, path):
    response = await client.get(path)
    assert response.status_code == 404, response.text
    assert (await client.get("/ready")).status_code == 200


async def test_a_nul_in_an_id_of_a_write_is_refused(client):
    response = await client.patch("/accounts/a%00b", json={"hot": True})
    assert response.status_code == 404, response.text


async def test_a_cursor_that_decodes_to_a_nul_is_invalid(client):
    response = await client.get("/accounts", params={"cursor": "AA"})
    assert response.status_code == 400 and response.json()["code"] == "invalid-cursor"


async def test_deeply_nested_metadata_is_refused_not_a_crash(client):
    account_id = fresh_id()
    nested = '{"a":' * 1000 + "1" + "}" * 1000  # about 6 KiB, built by hand
    body = (
        f'{{"id": "{account_id}", "currency": "USD", "normal_side": "debit", "metadata": {nested}}}'
    ).encode()
    response = await client.post(
        "/accounts", content=body, headers={"Content-Type": "application/json"}
    )
    assert 400 <= response.status_code < 500, response.text
    assert "nested" in response.json()["detail"] or "deep" in response.json()["detail"]
    assert (await client.get(f"/accounts/{account_id}")).status_code == 404


async def test_405_names_the_allowed_methods(client):
    response = await client.delete("/accounts")
    assert response.status_code == 405
    assert set(response.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


async def test_413_states_the_limit(client, settings):
    response = await client.post(
        "/accounts",
        content=b'{"id": "' + b"x" * (settings.max_body_bytes + 10) + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert str(settings.max_body_bytes) in response.json()["detail"]
    assert response.json()["max_bytes"] == settings.max_body_bytes


async def test_metadata_nested_past_the_limit_is_refused_naming_it(client, settings):
    nested: object = "leaf"
    for _ in range(settings.max_metadata_depth + 1):
        nested = {"a": nested}
    body = {"id": fresh_id(), "currency": "USD", "normal_side": "debit", "metadata": nested}
    response = await client.post("/accounts", json=body)
    assert response.status_code == 422 and response.json()["field"] == "metadata"
    assert f"more than {settings.max_metadata_depth} levels" in response.json()["detail"]


@pytest.mark.parametrize(
    ("path", "query", "unknown"),
    [
        ("/accounts", {"order": "desc"}, ["order"]),
        (
            "/accounts",
            {"limit": "2", "from": "x", "metadata.owner": "ada"},
            ["from", "metadata.owner"],
        ),
        ("/audit", {"actor_id": "a"}, ["actor_id"]),
        ("/currencies", {"code": "USD"}, ["code"]),
    ],
)
async def test_unknown_query_parameters_are_named_not_ignored(client, path, query, unknown):
    response = await client.get(path, params=query)
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["code"] == "unknown-query-parameter" and problem["unknown"] == unknown
    assert all(repr(name) in problem["detail"] for name in unknown)


async def test_a_balance_as_of_the_future_is_refused(client):
    body = {"id": fresh_id(), "currency": "USD", "normal_side": "debit"}
    assert (await client.post("/accounts", json=body)).status_code == 201
    response = await client.get(
        f"/accounts/{body['id']}/balance", params={"as_of": "2999-01-01T00:00:00Z"}
    )
    assert response.status_code == 422 and response.json()["field"] == "as_of"
    assert "after the database's current time" in response.json()["detail"]


async def test_a_body_with_a_key_twice_is_refused_and_writes_nothing(client, owner_engine):
    account_id = fresh_id()
    before = await written_rows(owner_engine)
    body = (
        f'{{"id": "{account_id}", "currency": "USD", "normal_side": "debit", '
        '"normal_side": "credit"}'
    ).encode()
    response = await client.post(
        "/accounts", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400 and response.json()["code"] == "duplicate-key"
    assert response.json()["key"] == "normal_side"
    assert await written_rows(owner_engine) == before


async def test_an_unreachable_database_answers_503_unavailable(settings, admin_key):
    # A port nothing listens on: every connection is refused at once.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql+psycopg://ledger@127.0.0.1:{port}/ledger"
    quick = settings.with_overrides(retry_attempts=3, expiry_sweep_seconds=0, hot_compact_seconds=0)
    async with app_client(url, quick, admin_key) as down:
        for path in ("/accounts", "/currencies"):
            response = await down.get(path)
            assert response.status_code == 503, response.text
            assert response.json()["code"] == "unavailable"
            assert "could not be reached" in response.json()["detail"]
            assert response.headers["Retry-After"] == "1"
        assert (await down.get("/ready")).status_code == 503
        assert (await down.get("/health")).status_code == 200


_JSON = {"Content-Type": "application/json"}
_KEYED = {**_JSON, "Idempotency-Key": "hostile"}
_ACCOUNT = b'{"id":"hostile-%s","currency":"USD","normal_side":"debit"%s}'


def _account(suffix: bytes, extra: bytes = b"") -> bytes:
    return _ACCOUNT % (suffix, extra)


# One hand-made input per class of mistake: (class, method, path, body, headers).
CATALOGUE = [
    ("nul in a path id", "GET", "/accounts/a%00b", None, {}),
    ("invalid UTF-8 in a path id", "GET", "/accounts/%FF", None, {}),
    ("a lone surrogate in a path id", "PATCH", "/accounts/%ED%A0%80", b'{"hot":true}', _JSON),
    ("nul in a transaction id", "POST", "/transactions/%00/void", b"{}", _KEYED),
    ("nul in a key id", "POST", "/keys/%00/revoke", None, {}),
    ("nul in a cursor", "GET", "/accounts?cursor=AA", None, {}),
    ("a surrogate cursor", "GET", "/accounts?cursor=%ED%A0%80", None, {}),
    ("nul in a filter", "GET", "/audit?actor=%00", None, {}),
    ("nul in a time", "GET", "/accounts/a/balance?as_of=%00", None, {}),
    ("a negative page size", "GET", "/accounts?limit=-1", None, {}),
    ("a page size past 64 bits", "GET", "/accounts?limit=99999999999999999999", None, {}),
    ("an unknown query parameter", "GET", "/accounts?order=desc", None, {}),
    ("a lone surrogate in an id", "POST", "/accounts", _account(b"\\ud800"), _JSON),
    (
        "a lone surrogate in metadata",
        "POST",
        "/accounts",
        _account(b"1", b',"metadata":{"k":"\\ud800"}'),
        _JSON,
    ),
    ("nul in metadata", "POST", "/accounts", _account(b"2", b',"metadata":{"k":"\\u0000"}'), _JSON),
    (
        "nul in a currency",
        "POST",
        "/accounts",
        b'{"id":"h3","currency":"US\\u0000D","normal_side":"debit"}',
        _JSON,
    ),
    ("not UTF-8 at all", "POST", "/accounts", b"\xff\xfe{}", _JSON),
    ("a key twice", "POST", "/accounts", _account(b"4", b',"normal_side":"credit"'), _JSON),
    (
        "deep nesting",
        "POST",
        "/accounts",
        _account(b"5", b',"metadata":' + b'{"a":' * 500 + b"1" + b"}" * 500),
        _JSON,
    ),
    (
        "a float amount",
        "POST",
        "/transactions",
        b'{"entries":[{"account_id":"a","direction":"debit","amount":1.5}]}',
        _KEYED,
    ),
    (
        "an amount past 64 bits",
        "POST",
        "/transactions",
        b'{"entries":[{"account_id":"a","direction":"debit","amount":99999999999999999999999},{"account_id":"b","direction":"credit","amount":1}]}',
        _KEYED,
    ),
    (
        "a string amount",
        "POST",
        "/transactions",
        b'{"entries":[{"account_id":"a","direction":"debit","amount":"1"}]}',
        _KEYED,
    ),
    ("an unknown field", "POST", "/transactions", b'{"entries":[],"memo":1}', _KEYED),
    ("not an object", "POST", "/transactions", b"[1,2]", _KEYED),
    ("an empty body", "POST", "/transactions", b"", _KEYED),
    (
        "a form body",
        "POST",
        "/transactions",
        b"a=1",
        {"Content-Type": "application/x-www-form-urlencoded", "Idempotency-Key": "h"},
    ),
    (
        "nul in a key name",
        "POST",
        "/keys",
        b'{"name":"\\u0000","client_id":"x","scopes":["accounts:read"]}',
        _JSON,
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "headers"),
    [case[1:] for case in CATALOGUE],
    ids=[case[0] for case in CATALOGUE],
)
async def test_each_hostile_input_is_a_4xx_that_writes_nothing(
    client, owner_engine, method, path, body, headers
):
    before = await written_rows(owner_engine)
    response = await client.request(method, path, content=body, headers=headers)
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["detail"]
    assert await written_rows(owner_engine) == before
    assert (await client.get("/ready")).status_code == 200
