"""Every route declares its scope, and none but /health, /ready and the
documentation answers without a key: walked over the application's own
route table, so a route added later cannot forget."""

from __future__ import annotations

import re
import uuid

import pytest

from ledger.api.access import ACTION_OPT, AUTHENTICATED, PUBLIC, SCOPE_OPT
from ledger.engine.access import ACCOUNTS_READ, DIRECT, METRICS_READ, SCOPES
from support.ledger import make_key
from support.routes import documentation, handlers

OPEN = {("/health", "GET"), ("/ready", "GET")}


WRITES = {"POST", "PATCH", "PUT", "DELETE"}


def concrete(path: str) -> str:
    return re.sub(r"\{[^}:]+(:[a-z]+)?\}", "x", path)


def test_every_route_declares_a_known_scope_and_only_two_are_public():
    seen = 0
    for path, method, handler in handlers():
        if method == "OPTIONS" and SCOPE_OPT not in handler.opt:
            continue  # Litestar's own answers; the middleware asks for a key
        scope = handler.opt.get(SCOPE_OPT)
        assert scope in (*SCOPES, PUBLIC, AUTHENTICATED), (path, method, scope)
        if scope == PUBLIC:
            assert (path, method) in OPEN or documentation(path, method), (
                f"{method} {path} must not be public"
            )
        if method in WRITES and not path.startswith("/schema"):
            assert handler.opt.get(ACTION_OPT), f"{method} {path} declares no audit action"
        seen += 1
    assert seen > 20


@pytest.mark.parametrize(
    ("path", "method"),
    sorted(
        {
            (concrete(p), m)
            for p, m, _ in handlers()
            if (p, m) not in OPEN and not documentation(p, m)
        }
    ),
)
async def test_nothing_but_health_and_ready_answers_without_a_key(client, path, method):
    response = await client.request(method, path, headers={"Authorization": ""})
    assert response.status_code == 401, (method, path, response.status_code, response.text)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["code"] == "unauthenticated"


@pytest.fixture(scope="module")
async def keys(ledger):
    """A revoked key, and two keys with one scope each, for every route."""
    revoked = await make_key(ledger, *SCOPES)
    await ledger.keys.revoke(revoked.split("_")[1], DIRECT)
    return {
        "revoked": revoked,
        "metrics-only": await make_key(ledger, METRICS_READ),
        "accounts-read-only": await make_key(ledger, ACCOUNTS_READ),
    }


@pytest.mark.parametrize(
    ("path", "method", "scope"),
    sorted(
        {
            (concrete(p), m, h.opt.get(SCOPE_OPT))
            for p, m, h in handlers()
            if (p, m) not in OPEN and m != "OPTIONS" and not documentation(p, m)
        }
    ),
)
async def test_every_route_refuses_a_bad_key_a_revoked_one_and_one_short_of_its_scope(
    client, keys, path, method, scope
):
    forged = f"lk_{uuid.uuid4().hex[:12]}_{uuid.uuid4().hex}"
    for key, status in ((forged, 401), (keys["revoked"], 401)):
        response = await client.request(method, path, headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == status, (method, path, key == forged, response.text)
    if scope == AUTHENTICATED:
        return  # the documentation: any valid key reads it
    other = keys["accounts-read-only" if scope == METRICS_READ else "metrics-only"]
    response = await client.request(method, path, headers={"Authorization": f"Bearer {other}"})
    assert response.status_code == 403, (method, path, response.text)
    assert response.json()["scope"] == scope


@pytest.mark.parametrize("path", ["/health", "/ready"])
async def test_liveness_and_readiness_need_no_key(client, path):
    assert (await client.get(path, headers={"Authorization": ""})).status_code == 200


async def test_the_openapi_document_shows_the_scheme_and_each_operations_scope(client):
    document = (await client.get("/schema/openapi.json")).json()
    scheme = document["components"]["securitySchemes"]["bearer"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    for path, method, handler in handlers():
        if path.startswith("/schema") or method == "OPTIONS":
            continue
        operation = document["paths"][path.replace(":str", "")][method.lower()]
        if (path, method) in OPEN:
            assert operation.get("security") in (None, [])
        else:
            assert operation["security"] == [{"bearer": [handler.opt[SCOPE_OPT]]}], path


async def test_the_openapi_document_tells_a_client_generator_the_whole_contract(client, settings):
    document = (await client.get("/schema/openapi.json")).json()
    post = document["paths"]["/transactions"]["post"]
    header = next(p for p in post["parameters"] if p["name"] == "Idempotency-Key")
    assert header["in"] == "header" and header["required"] is True
    assert {"200", "201", "400", "401", "403", "409", "413", "415", "422", "429", "503"} <= set(
        post["responses"]
    )
    assert "Idempotent-Replayed" in post["responses"]["200"]["headers"]
    refused = post["responses"]["422"]["content"]["application/problem+json"]["schema"]
    assert "unbalanced-transaction" in refused["allOf"][1]["properties"]["code"]["enum"]
    assert "example" in post["requestBody"]["content"]["application/json"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["entries"]["maxItems"] == settings.max_legs
    amount = body["properties"]["entries"]["items"]["properties"]["amount"]
    assert (amount["minimum"], amount["maximum"]) == (1, settings.max_amount)
    create = document["paths"]["/accounts"]["post"]
    optional = next(p for p in create["parameters"] if p["name"] == "Idempotency-Key")
    assert optional["required"] is False
    listing = document["paths"]["/accounts"]["get"]["responses"]["200"]["content"]
    ref = listing["application/json"]["schema"]["$ref"]
    page = document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert page["properties"]["items"]["items"] == {"$ref": "#/components/schemas/Account"}
    assert "/schema" not in document["paths"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert operation.get("description"), f"{method} {path} has no description"
