"""The events feed's head, walked to for a test's start."""

from __future__ import annotations


async def head(client, **params) -> str:
    got = await client.get("/events", params={**params, "limit": 1, "after": ""})
    cursor = got.json()["cursor"]
    # The first page may start far back: walk to the end of both streams.
    for _ in range(10_000):
        got = await client.get("/events", params={**params, "after": cursor, "limit": 500})
        assert got.status_code == 200, got.text
        if not got.json()["events"]:
            return got.json()["cursor"]
        cursor = got.json()["cursor"]
    raise AssertionError("the feed did not end")
