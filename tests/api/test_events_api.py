"""The event feed over HTTP, every query parameter as a client sends it:
the cursor, types, an account, a page size and a long poll."""

from __future__ import annotations

import asyncio

from support.journal import accounts, post


async def test_the_feed_takes_every_parameter_it_documents(client):
    a, b = await accounts(client)
    start = (await client.get("/events", params={"account_id": a})).json()["cursor"]
    first = (await post(client, a, b, 1))["id"]
    waiting = asyncio.create_task(
        client.get("/events", params={"after": start, "account_id": a, "wait": 30})
    )
    answer = await asyncio.wait_for(waiting, 60)
    assert answer.status_code == 200, answer.text
    assert [e["data"]["id"] for e in answer.json()["events"]] == [first]
    second = (await post(client, a, b, 2))["id"]
    for _ in range(200):
        page = await client.get(
            "/events",
            params={
                "after": answer.json()["cursor"],
                "account_id": a,
                "types": "transaction.posted,transaction.reversed",
                "limit": 1,
            },
        )
        assert page.status_code == 200, page.text
        if page.json()["events"]:
            break
        await asyncio.sleep(0.05)
    (event,) = page.json()["events"]
    assert event["data"]["id"] == second and event["type"] == "transaction.posted"
    assert event["cursor"] == page.json()["cursor"]


async def test_bad_feed_parameters_are_named(client):
    for params, status, named in [
        ({"after": "nonsense!"}, 400, "cursor"),
        ({"types": "transaction.bogus"}, 422, "types"),
        ({"wait": 31}, 422, "wait"),
        ({"limit": 0}, 422, "limit"),
        ({"order": "desc"}, 400, "order"),
    ]:
        answer = await client.get("/events", params=params)
        assert answer.status_code == status, (params, answer.text)
        assert named in answer.text
