"""Webhook helpers: a receiver's endpoint, and waiting for what arrived."""

from __future__ import annotations

import asyncio
import contextlib

from ledger.ops.receiver import Receiver


async def until(check, what: str, seconds: float = 60.0):
    for _ in range(int(seconds / 0.05)):
        if found := await check():
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {seconds:g} s")


@contextlib.asynccontextmanager
async def endpoint(client, receiver: Receiver, **extra):
    """A webhook to `receiver`, whose secret it learns; deleted afterwards."""
    made = await client.post("/webhooks", json={"url": receiver.url, **extra})
    assert made.status_code == 201, made.text
    hook = made.json()
    receiver.secret = hook["secret"]
    try:
        yield hook
    finally:
        await client.delete(f"/webhooks/{hook['id']}")
        receiver.stop()


def arrived(receiver: Receiver, ids: list[str]):
    async def check():
        return set(ids) <= receiver.transaction_ids()

    return check
