"""Webhooks over HTTP, delivered by the app's own deliverer to a real
receiver on 127.0.0.1 that checks every signature with the
`standardwebhooks` package."""

from __future__ import annotations

import pytest

from ledger.engine.access import ACCOUNTS_READ, WEBHOOKS_ADMIN
from ledger.ops.receiver import Receiver
from support.database import written_rows
from support.ids import fresh_id
from support.journal import accounts as journal_accounts
from support.journal import post as journal_post
from support.ledger import app_client, make_key
from support.webhooks import arrived, endpoint, until


async def accounts(client) -> tuple[str, str]:
    return await journal_accounts(client)


async def post(client, a: str, b: str, amount: int = 5) -> str:
    return (await journal_post(client, a, b, amount))["id"]


async def test_register_show_list_delete_with_audit_rows_and_the_secret_shown_once(client):
    receiver = Receiver().start()
    async with endpoint(
        client, receiver, event_types=["transaction.posted"], description="payouts"
    ) as hook:
        assert hook["secret"].startswith("whsec_")
        assert hook["status"] == "active" and hook["event_types"] == ["transaction.posted"]
        shown = (await client.get(f"/webhooks/{hook['id']}")).json()
        assert "secret" not in shown and shown["url"] == receiver.url
        listed = (await client.get("/webhooks", params={"limit": 500})).json()["items"]
        assert hook["id"] in [w["id"] for w in listed]
        assert all("secret" not in w for w in listed)
    assert (await client.get(f"/webhooks/{hook['id']}")).status_code == 404
    gone = await client.delete(f"/webhooks/{hook['id']}")
    assert gone.status_code == 404 and gone.json()["type"].endswith("webhook-not-found")
    rows = (await client.get("/audit", params={"target": hook["id"]})).json()["items"]
    assert sorted(r["action"] for r in rows if r["outcome"] != "refused") == [
        "webhook.create",
        "webhook.delete",
    ]


async def test_events_arrive_signed_in_order_and_the_cursor_follows(client):
    a, b = await accounts(client)
    receiver = Receiver().start()
    async with endpoint(client, receiver) as hook:
        ids = [await post(client, a, b, n) for n in range(1, 6)]
        await until(arrived(receiver, ids), "delivery")
        verdict = receiver.verdict(set(ids))
        assert verdict.missing == [] and verdict.out_of_order == 0
        assert verdict.bad_signatures == 0
        ours = [x for x in receiver.arrivals if x.transaction_id in ids]
        assert [x.transaction_id for x in ours] == ids
        assert all(x.event_id == "evt_" + x.transaction_id.replace("-", "") for x in ours)

        async def caught_up():
            shown = (await client.get(f"/webhooks/{hook['id']}")).json()
            return shown["delivered_at"] is not None and shown

        await until(caught_up, "the cursor's progress")
        log = (await client.get(f"/webhooks/{hook['id']}/deliveries")).json()["items"]
        assert {d["outcome"] for d in log} == {"delivered"}
        assert {d["event_id"] for d in log} >= {x.event_id for x in ours}


async def test_a_receiver_that_was_down_gets_every_event_it_missed_in_order(client):
    a, b = await accounts(client)
    receiver = Receiver(down=True).start()
    async with endpoint(client, receiver) as hook:
        ids = [await post(client, a, b, n) for n in range(1, 8)]

        async def failing():
            shown = (await client.get(f"/webhooks/{hook['id']}")).json()
            return shown["failing_since"] is not None and shown

        shown = await until(failing, "the endpoint failing")
        assert shown["last_error"].startswith("HTTP 503") and shown["status"] == "active"
        log = (await client.get(f"/webhooks/{hook['id']}/deliveries")).json()["items"]
        assert log and log[0]["outcome"] == "failed" and log[0]["status_code"] == 503
        receiver.down = False
        await until(arrived(receiver, ids), "delivery after the outage")
        verdict = receiver.verdict(set(ids))
        assert verdict.missing == [] and verdict.out_of_order == 0
        assert verdict.bad_signatures == 0
        assert [x.transaction_id for x in receiver.arrivals if x.transaction_id in ids] == ids

        async def recovered():
            shown = (await client.get(f"/webhooks/{hook['id']}")).json()
            return shown["failing_since"] is None

        await until(recovered, "the failure state cleared")


async def test_410_disables_the_endpoint_and_a_replay_turns_it_on_from_a_cursor(client):
    a, b = await accounts(client)
    receiver = Receiver().start()
    async with endpoint(client, receiver) as hook:
        first = await post(client, a, b)
        await until(arrived(receiver, [first]), "the first delivery")
        receiver.gone = True
        second = await post(client, a, b)

        async def disabled():
            shown = (await client.get(f"/webhooks/{hook['id']}")).json()
            return shown["status"] == "disabled" and shown

        shown = await until(disabled, "the endpoint disabled")
        assert "410" in shown["status_reason"]
        receiver.gone = False
        replay = await client.post(f"/webhooks/{hook['id']}/replay", json={"after": None})
        assert replay.status_code == 200 and replay.json()["status"] == "active"
        # From the first event of the journal: the first one again too.
        await until(arrived(receiver, [second]), "delivery after the replay")
        counted = [x.transaction_id for x in receiver.arrivals]
        assert counted.count(first) == 2 and counted.index(first) < counted.index(second)
        assert receiver.verdict().bad_signatures == 0
        rows = (await client.get("/audit", params={"target": hook["id"]})).json()["items"]
        assert "webhook.replay" in [r["action"] for r in rows]


async def test_a_rotated_secret_signs_beside_the_old_one_during_the_overlap(client):
    a, b = await accounts(client)
    receiver = Receiver().start()
    async with endpoint(client, receiver) as hook:
        old = hook["secret"]
        # A deliverer serves the endpoint already, with the secret it read.
        zero = await post(client, a, b)
        await until(arrived(receiver, [zero]), "delivery before the rotation")
        rotated = await client.post(f"/webhooks/{hook['id']}/rotate-secret")
        assert rotated.status_code == 200
        new = rotated.json()["secret"]
        assert new != old and new.startswith("whsec_")
        assert rotated.json()["previous_secret_until"] is not None
        receiver.secret = new
        one = await post(client, a, b)
        await until(arrived(receiver, [one]), "delivery signed with the new secret")
        receiver.secret = old
        two = await post(client, a, b)
        await until(arrived(receiver, [two]), "delivery signed with the old secret too")
        assert receiver.verdict().bad_signatures == 0


async def test_a_key_limited_to_prefixes_makes_an_endpoint_that_gets_only_its_events(
    client, ledger, database_url, settings
):
    mine = [fresh_id("whreach") for _ in range(2)]
    for account_id, side in zip(mine, ("debit", "credit"), strict=True):
        body = {"id": account_id, "currency": "USD", "scale": 2, "normal_side": side}
        assert (await client.post("/accounts", json=body)).status_code == 201
    a, b = await accounts(client)
    key = await make_key(ledger, WEBHOOKS_ADMIN, accounts=["whreach"])
    receiver = Receiver().start()
    async with (
        app_client(database_url, settings, key) as limited,
        endpoint(limited, receiver) as hook,
    ):
        assert hook["accounts"] == ["whreach"]
        outside = await post(client, a, b)
        inside = await post(client, mine[0], mine[1])
        await until(arrived(receiver, [inside]), "delivery of the reachable event")
        assert outside not in receiver.transaction_ids()


@pytest.mark.slow
async def test_a_receiver_slower_than_the_lease_keeps_one_deliverer(client, database_url, settings):
    """The lease is renewed while a delivery waits on the receiver, so a
    second process's deliverer (this app's) never takes over a live one:
    nothing arrives twice. (The session's settings: a 3 s lease.)"""
    a, b = await accounts(client)
    receiver = Receiver(delay_seconds=2 * settings.webhook_lease_seconds).start()
    async with app_client(database_url, settings), endpoint(client, receiver):
        ids = [await post(client, a, b, n) for n in range(1, 3)]
        await until(arrived(receiver, ids), "delivery to the slow receiver")
        verdict = receiver.verdict(set(ids))
        assert verdict.duplicates == 0 and verdict.out_of_order == 0


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://example.com/hooks", "https"),
        ("https://127.0.0.1/hooks", "127.0.0.1"),
        ("https://localhost/hooks", "not a public address"),
        ("https://10.1.2.3/hooks", "10.1.2.3"),
        ("https://169.254.169.254/latest/meta-data", "169.254.169.254"),
        ("https://[::1]/hooks", "::1"),
        ("https://[::ffff:192.168.0.1]/hooks", "::ffff:192.168.0.1"),
        ("https://0.0.0.0/hooks", "0.0.0.0"),
        ("https://no-such-host.invalid/hooks", "does not resolve"),
    ],
)
async def test_private_addresses_are_refused_unless_allowed(
    database_url, settings, admin_key, owner_engine, url, why
):
    strict = settings.with_overrides(webhook_allow_private=False, webhook_claim_seconds=0)
    async with app_client(database_url, strict, admin_key) as c:
        before = await written_rows(owner_engine)
        answer = await c.post("/webhooks", json={"url": url})
        assert answer.status_code == 422, answer.text
        assert why in answer.json()["detail"] and answer.json()["field"] == "url"
        assert await written_rows(owner_engine) == before


@pytest.mark.parametrize(
    ("body", "status", "named"),
    [
        ({}, 400, "url"),
        ({"url": "https://example.com", "colour": "red"}, 400, "colour"),
        ({"url": 5}, 400, "url"),
        ({"url": "ftp://example.com/x"}, 422, "url"),
        ({"url": "https://user:pw@example.com/x"}, 422, "credentials"),
        ({"url": "https://example.com/" + "x" * 2100}, 422, "2048"),
        ({"url": "http://127.0.0.1/x", "event_types": ["transaction.bogus"]}, 422, "bogus"),
        ({"url": "http://127.0.0.1/x", "event_types": []}, 422, "event type"),
        ({"url": "http://127.0.0.1/x", "description": "d" * 501}, 422, "description"),
    ],
)
async def test_bad_registrations_are_refused_and_write_nothing(
    client, owner_engine, body, status, named
):
    before = await written_rows(owner_engine)
    answer = await client.post("/webhooks", json=body)
    assert answer.status_code == status, answer.text
    assert named in answer.text
    assert await written_rows(owner_engine) == before


async def test_unknown_endpoints_bad_cursors_and_missing_scopes(
    client, ledger, database_url, settings
):
    assert (await client.get("/webhooks/wh_nope")).status_code == 404
    assert (await client.post("/webhooks/wh_nope/rotate-secret")).status_code == 404
    assert (await client.get("/webhooks/wh_nope/deliveries")).status_code == 404
    receiver = Receiver().start()
    async with endpoint(client, receiver) as hook:
        bad = await client.post(f"/webhooks/{hook['id']}/replay", json={"after": "nonsense!"})
        assert bad.status_code == 400 and bad.json()["type"].endswith("invalid-cursor")
        page = await client.get(f"/webhooks/{hook['id']}/deliveries", params={"cursor": "zz"})
        assert page.status_code == 400
    reader = await make_key(ledger, ACCOUNTS_READ)
    async with app_client(database_url, settings, reader) as c:
        assert (await c.get("/webhooks")).status_code == 403
        assert (await c.get("/events")).status_code == 403
        assert (await c.post("/webhooks", json={"url": "https://example.com"})).status_code == 403
