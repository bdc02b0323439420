"""Reach, walked over the route table: for every route, a key with every
scope but limited to one tenant's prefix, asked about another tenant's
resources, gets no answer that names anything of theirs it did not name
itself, and every write it tries on them is refused and writes nothing.

The cases come from the application's own routes: a route added later is
tried with its path parameters (and the query parameters it declares)
filled with the other tenant's ids, and a write with the body below for its
route, or an empty JSON object."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from litestar.params import QueryParameter

from ledger.api.access import SCOPE_OPT
from ledger.engine.access import SCOPES
from support.database import written_rows
from support.ids import fresh_id
from support.ledger import app_client, make_key
from support.reconciliation import XML, camt
from support.routes import documentation, handlers

WRITES = {"POST", "PATCH", "PUT", "DELETE"}
# Writes that touch nothing of another tenant whatever they are given: the
# caller's own endpoint, made under its own prefixes.
OWN_WRITES = {("POST", "/webhooks")}


def days(n: int) -> str:
    return (datetime.now(UTC).date() + timedelta(days=n)).isoformat()


class Victim:
    """Everything the other tenant has: accounts, a posting, a pending
    hold, a key, a webhook endpoint, a reconciliation source with a run and
    an open exception. `ids` maps a parameter name to one of its ids."""

    async def make(self, client, ledger) -> Victim:
        self.prefix = fresh_id("victim") + ":"
        key = await make_key(ledger, *SCOPES, accounts=[self.prefix])
        auth = {"Authorization": f"Bearer {key}"}
        a, b = self.prefix + fresh_id(), self.prefix + fresh_id()
        for account_id, side in ((a, "debit"), (b, "credit")):
            made = await client.post(
                "/accounts",
                json={"id": account_id, "currency": "EUR", "scale": 2, "normal_side": side},
                headers=auth,
            )
            assert made.status_code == 201, made.text
        legs = [
            {"account_id": a, "direction": "debit", "amount": 700},
            {"account_id": b, "direction": "credit", "amount": 700},
        ]
        posted = await self._post(client, "/transactions", {"entries": legs}, auth)
        pending = await self._post(
            client, "/transactions", {"entries": legs, "pending": True}, auth
        )
        hook = await client.post("/webhooks", json={"url": "http://127.0.0.1:9/v"}, headers=auth)
        src = fresh_id("src")
        await self._post(
            client,
            "/reconciliation/sources",
            {"id": src, "account_id": a, "format": "camt.053", "currency": "EUR"},
            auth,
        )
        statement = await client.post(
            f"/reconciliation/sources/{src}/statements",
            content=camt([(4200, "VICTIM-ONLY")]),
            headers={**auth, **XML},
        )
        assert statement.status_code == 201, statement.text
        run = await self._post(
            client,
            "/reconciliation/runs",
            {"source_id": src, "from": days(-1), "to": days(1)},
            auth,
        )
        exceptions = await client.get(
            "/reconciliation/exceptions", params={"source_id": src}, headers=auth
        )
        self.accounts = (a, b)
        self.ids = {
            "account_id": a,
            "transaction_id": pending["id"],
            "key_id": key.split("_")[1],
            "webhook_id": hook.json()["id"],
            "source_id": src,
            "run_id": run["id"],
            "exception_id": exceptions.json()["items"][0]["id"],
            "number": "1",
        }
        self.posted = posted["id"]
        # Anything of theirs an answer must not name unless asked about it.
        self.tokens = {self.prefix, posted["id"], *self.ids.values()} - {"1"}
        self.legs = legs
        return self

    @staticmethod
    async def _post(client, path: str, body: dict, auth: dict) -> dict:
        made = await client.post(
            path, json=body, headers={**auth, "Idempotency-Key": fresh_id("k")}
        )
        assert made.status_code in (200, 201), made.text
        return made.json()

    def body(self, method: str, path: str) -> dict | None:
        """A write that would succeed for the victim's own key."""
        b = self.accounts[1]
        item = {"idempotency_key": fresh_id("k"), "entries": self.legs}
        return {
            ("POST", "/accounts"): {
                "id": self.prefix + fresh_id(),
                "currency": "EUR",
                "scale": 2,
                "normal_side": "debit",
            },
            ("PATCH", "/accounts/{account_id:str}"): {"status": "frozen"},
            ("POST", "/transactions"): {"entries": self.legs},
            ("POST", "/transactions/batch"): {"transactions": [item]},
            ("POST", "/transactions/{transaction_id:str}/post"): {},
            ("POST", "/transactions/{transaction_id:str}/void"): {},
            ("POST", "/transactions/{transaction_id:str}/reversal"): {},
            ("POST", "/keys"): {"name": "x", "client_id": "x", "scopes": ["accounts:read"]},
            ("POST", "/webhooks"): {"url": "http://127.0.0.1:9/mine"},
            ("POST", "/webhooks/{webhook_id:str}/replay"): {},
            ("POST", "/reconciliation/sources"): {
                "id": fresh_id("src"),
                "account_id": b,
                "format": "camt.053",
                "currency": "EUR",
            },
            ("POST", "/reconciliation/runs"): {
                "source_id": self.ids["source_id"],
                "from": days(-1),
                "to": days(1),
            },
            ("POST", "/reconciliation/exceptions/{exception_id:str}/resolve"): {
                "resolution": "accepted",
                "note": "not mine",
            },
        }.get((method, path), {})


@pytest.fixture(scope="module")
async def victim(client, ledger) -> Victim:
    return await Victim().make(client, ledger)


@pytest.fixture(scope="module")
async def intruder(ledger) -> str:
    return await make_key(ledger, *SCOPES, accounts=[fresh_id("intruder") + ":"])


def routes():
    """(method, path, handler) of every route a key may call."""
    return sorted(
        {
            (m, p, h)
            for p, m, h in handlers()
            if m not in ("OPTIONS", "HEAD")
            and not documentation(p, m)
            and h.opt.get(SCOPE_OPT) not in (None, "public")
        },
        key=lambda r: (r[1], r[0]),
    )


def query_parameters(handler) -> set[str]:
    return {
        p.kwarg_definition.name or name
        for name, p in handler.parsed_fn_signature.parameters.items()
        if isinstance(p.kwarg_definition, QueryParameter)
    }


@pytest.mark.parametrize(
    ("method", "path", "handler"), routes(), ids=lambda x: x if isinstance(x, str) else ""
)
async def test_no_route_shows_or_touches_another_tenants_resources(
    client, database_url, settings, owner_engine, victim, intruder, method, path, handler
):
    concrete = path
    for name, value in victim.ids.items():
        concrete = concrete.replace(f"{{{name}:str}}", value)
    assert "{" not in concrete, f"{path}: a path parameter this test has no victim id for"
    params = {n: victim.ids[n] for n in query_parameters(handler) & victim.ids.keys()}
    headers = {"Authorization": f"Bearer {intruder}", "Idempotency-Key": fresh_id("k")}
    before = await written_rows(owner_engine) if method in WRITES else None
    if path == "/reconciliation/sources/{source_id:str}/statements":
        request = {"content": camt([(1, "X")]), "headers": {**headers, **XML}}
    elif method in WRITES:
        request = {"json": victim.body(method, path), "headers": headers}
    else:
        request = {"headers": headers}
    quick = settings.with_overrides(events_stream_seconds=0.3, expiry_sweep_seconds=0)
    async with app_client(database_url, quick) as c:
        answer = await c.request(method, concrete, params=params, **request)
    asked = concrete + json.dumps(params) + json.dumps(request.get("json"))
    leaked = sorted(t for t in victim.tokens if t in answer.text and t not in asked)
    assert not leaked, (method, path, answer.status_code, leaked, answer.text[:500])
    if method in WRITES and (method, path) not in OWN_WRITES:
        if path == "/transactions/batch":
            assert answer.status_code in (200, 403), answer.text
            if answer.status_code == 200:
                assert all(r["status"] == 403 for r in answer.json()["results"]), answer.text
        else:
            assert answer.status_code in (403, 404), (method, path, answer.text)
        assert await written_rows(owner_engine) == before, (method, path)
    elif method == "GET" and any(f"{{{n}:str}}" in path for n in victim.ids.keys() - {"number"}):
        # Reading one of theirs by id: never an answer.
        assert answer.status_code >= 400, (method, path, answer.text)
