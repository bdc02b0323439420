"""Every mistake a client can make gets a 4xx problem that names it, and
writes nothing."""

import pytest

from support.ids import fresh_id


@pytest.fixture(scope="module")
async def accounts(client):
    made = {}
    for name, body in {
        "usd": {"currency": "USD", "normal_side": "debit"},
        "usd2": {"currency": "USD", "normal_side": "credit"},
        "eur": {"currency": "EUR", "normal_side": "credit"},
        "wallet": {
            "currency": "USD",
            "normal_side": "credit",
            "flags": {"debits_must_not_exceed_credits": True},
        },
    }.items():
        account_id = fresh_id(name)
        response = await client.post("/accounts", json={"id": account_id, "scale": 2, **body})
        assert response.status_code == 201
        made[name] = account_id
    return made


async def totals(client, accounts):
    out = {}
    for name, account_id in accounts.items():
        posted = (await client.get(f"/accounts/{account_id}/balance")).json()["posted"]
        out[name] = (posted["debits"], posted["credits"])
    return out


def leg(account, direction, amount):
    return {"account_id": account, "direction": direction, "amount": amount}


def body(a, b, amount=10):
    return {"entries": [leg(a, "debit", amount), leg(b, "credit", amount)]}


CASES = {
    "malformed JSON": (lambda A: b'{"entries": [', 400, "malformed-json"),
    "empty body": (lambda A: b"", 400, "malformed-json"),
    "unknown field": (lambda A: {**body(A["usd"], A["usd2"]), "memo": "x"}, 400, "unknown-field"),
    "unknown leg field": (
        lambda A: {
            "entries": [leg(A["usd"], "debit", 1) | {"fee": 1}, leg(A["usd2"], "credit", 1)]
        },
        400,
        "unknown-field",
    ),
    "wrong type": (
        lambda A: {"entries": [leg(A["usd"], "debit", "10"), leg(A["usd2"], "credit", 10)]},
        400,
        "wrong-type",
    ),
    "entries not a list": (lambda A: {"entries": {}}, 400, "wrong-type"),
    "missing field": (
        lambda A: {"entries": [{"account_id": A["usd"], "amount": 1}]},
        400,
        "missing-field",
    ),
    "float amount": (
        lambda A: {"entries": [leg(A["usd"], "debit", 10.5), leg(A["usd2"], "credit", 10.5)]},
        400,
        "float-amount",
    ),
    "zero amount": (lambda A: body(A["usd"], A["usd2"], 0), 422, "invalid-amount"),
    "negative amount": (lambda A: body(A["usd"], A["usd2"], -5), 422, "invalid-amount"),
    "oversized amount": (lambda A: body(A["usd"], A["usd2"], 2**53), 422, "invalid-amount"),
    "amount beyond 64 bits": (lambda A: body(A["usd"], A["usd2"], 10**30), 422, "invalid-amount"),
    "bad direction": (
        lambda A: {"entries": [leg(A["usd"], "sideways", 1), leg(A["usd2"], "credit", 1)]},
        422,
        "invalid-value",
    ),
    "unbalanced": (
        lambda A: {"entries": [leg(A["usd"], "debit", 10), leg(A["usd2"], "credit", 9)]},
        422,
        "unbalanced-transaction",
    ),
    "one leg": (lambda A: {"entries": [leg(A["usd"], "debit", 10)]}, 422, "too-few-legs"),
    "too many legs": (
        lambda A: {"entries": [leg(A["usd"], "debit", 1), leg(A["usd2"], "credit", 1)] * 33},
        422,
        "too-many-legs",
    ),
    "unknown account": (lambda A: body(A["usd"], "no-such-account"), 422, "unknown-account"),
    "currency mismatch": (
        lambda A: {
            "entries": [
                leg(A["usd"], "debit", 1) | {"currency": "EUR"},
                leg(A["usd2"], "credit", 1),
            ]
        },
        422,
        "currency-mismatch",
    ),
    "cross-currency unbalanced": (
        lambda A: body(A["usd"], A["eur"]),
        422,
        "unbalanced-transaction",
    ),
    "limit breach": (lambda A: body(A["wallet"], A["usd"], 1), 422, "limit-exceeded"),
    "oversized body": (
        lambda A: {**body(A["usd"], A["usd2"]), "description": "x" * 70_000},
        413,
        "body-too-large",
    ),
    "NUL in description": (
        lambda A: {**body(A["usd"], A["usd2"]), "description": "a\u0000b"},
        422,
        "invalid-value",
    ),
}


@pytest.mark.parametrize("case", CASES)
async def test_a_bad_posting_is_a_named_4xx_and_writes_nothing(client, accounts, case):
    make, status, code = CASES[case]
    before = await totals(client, accounts)
    payload = make(accounts)
    kwargs = {"content": payload} if isinstance(payload, bytes) else {"json": payload}
    response = await client.post(
        "/transactions",
        headers={"Idempotency-Key": fresh_id("key"), "Content-Type": "application/json"},
        **kwargs,
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"] == f"/problems/{code}"
    assert problem["status"] == status and problem["title"] and problem["detail"]
    assert await totals(client, accounts) == before


async def test_a_missing_idempotency_key_is_refused(client, accounts):
    response = await client.post("/transactions", json=body(accounts["usd"], accounts["usd2"]))
    assert response.status_code == 400
    assert response.json()["code"] == "missing-idempotency-key"
    response = await client.post(f"/transactions/{fresh_id()}/reversal", json={})
    assert response.status_code == 400
    assert response.json()["code"] == "missing-idempotency-key"


async def test_an_overlong_idempotency_key_is_refused(client, accounts):
    response = await client.post(
        "/transactions",
        json=body(accounts["usd"], accounts["usd2"]),
        headers={"Idempotency-Key": "k" * 256},
    )
    assert response.status_code == 422 and response.json()["code"] == "invalid-value"


@pytest.mark.parametrize(
    ("account", "code"),
    [
        (
            {"id": "bad id!", "currency": "USD", "scale": 2, "normal_side": "debit"},
            "invalid-account",
        ),
        ({"currency": "dollars", "scale": 2, "normal_side": "debit"}, "invalid-account"),
        ({"currency": "USD", "scale": 40, "normal_side": "debit"}, "invalid-account"),
        (
            {
                "currency": "USD",
                "scale": 2,
                "normal_side": "debit",
                "flags": {
                    "debits_must_not_exceed_credits": True,
                    "credits_must_not_exceed_debits": True,
                },
            },
            "invalid-account",
        ),
        ({"currency": "USD", "scale": 2}, "missing-field"),
        ({"currency": "USD", "scale": 2.0, "normal_side": "debit"}, "wrong-type"),
        ({"currency": "USD", "scale": 2, "normal_side": "debit", "colour": 1}, "unknown-field"),
        ({"currency": "USD", "scale": 2, "normal_side": "debit", "hot": 1}, "wrong-type"),
        (
            {
                "currency": "USD",
                "scale": 2,
                "normal_side": "credit",
                "hot": True,
                "flags": {"credits_must_not_exceed_debits": True},
            },
            "hot-account-limited",
        ),
    ],
)
async def test_bad_accounts_are_refused(client, account, code):
    response = await client.post("/accounts", json=account)
    assert 400 <= response.status_code < 500
    assert response.json()["code"] == code
    if "id" in account:
        assert (await client.get(f"/accounts/{account['id']}")).status_code == 404


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/accounts/no-such-account", {}, 404, "account-not-found"),
        ("/accounts/no-such-account/balance", {}, 404, "account-not-found"),
        ("/accounts/no-such-account/entries", {}, 404, "account-not-found"),
        ("/transactions/00000000-0000-4000-8000-000000000000", {}, 404, "transaction-not-found"),
        ("/transactions/not-a-uuid", {}, 404, "transaction-not-found"),
        ("/accounts", {"limit": 0}, 422, "invalid-value"),
        ("/accounts", {"limit": 100_000}, 422, "invalid-value"),
        ("/accounts", {"limit": "many"}, 400, "wrong-type"),
        ("/accounts", {"cursor": "%%%"}, 400, "invalid-cursor"),
        ("/nowhere", {}, 404, "not-found"),
    ],
)
async def test_bad_reads_are_named_4xx(client, path, params, status, code):
    response = await client.get(path, params=params)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code


async def test_bad_as_of_is_refused(client, accounts):
    for value in ("yesterday", "2026-01-01T00:00:00"):
        response = await client.get(f"/accounts/{accounts['usd']}/balance", params={"as_of": value})
        assert response.status_code == 422 and response.json()["code"] == "invalid-value"


async def test_reversing_an_unknown_transaction_is_not_found(client):
    response = await client.post(
        "/transactions/00000000-0000-4000-8000-000000000000/reversal",
        headers={"Idempotency-Key": fresh_id("key")},
    )
    assert response.status_code == 404


async def test_wrong_method_is_a_problem_too(client):
    response = await client.delete("/transactions/00000000-0000-4000-8000-000000000000")
    assert response.status_code == 405 and response.json()["code"] == "method-not-allowed"
