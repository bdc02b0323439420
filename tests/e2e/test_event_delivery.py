"""Events and webhooks with real service processes: the Server-Sent Events
stream resumes with exactly the missing tail, and webhook deliveries
survive kill -9 of the process holding the endpoint's lease while the
receiver fails at random."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from ledger.engine.access import new_key
from ledger.ops.receiver import Receiver
from ledger.storage.database import create_engine
from support.database import new_database
from support.ids import fresh_id
from support.processes import start

# Quick takeovers and retries, for a test's patience.
FAST = {
    "LEDGER_WEBHOOK_ALLOW_PRIVATE": "1",
    "LEDGER_WEBHOOK_LEASE_SECONDS": "2",
    "LEDGER_WEBHOOK_CLAIM_SECONDS": "0.2",
    "LEDGER_WEBHOOK_BACKOFF_BASE_SECONDS": "0.05",
    "LEDGER_WEBHOOK_BACKOFF_CAP_SECONDS": "0.3",
    "LEDGER_WEBHOOK_TIMEOUT_SECONDS": "2",
    "LEDGER_ACCESS_LOG": "0",
    "LEDGER_POOL_SIZE": "4",
}


def service(tmp_path: Path, name: str, database_url: str) -> tuple[subprocess.Popen, str]:
    where = tmp_path / name
    where.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    return start(where, ["--database-url", database_url], {**env, **FAST})


async def two_accounts(client: httpx.AsyncClient) -> tuple[str, str]:
    ids = []
    for side in ("debit", "credit"):
        body = {"id": fresh_id("ev"), "currency": "USD", "scale": 2, "normal_side": side}
        assert (await client.post("/accounts", json=body)).status_code == 201
        ids.append(body["id"])
    return ids[0], ids[1]


async def post(
    client: httpx.AsyncClient,
    a: str,
    b: str,
    amount: int = 3,
    *,
    key: str | None = None,
    tries: int = 100,
) -> str:
    """Post (retrying with the same key on a 503 or a lost connection)."""
    body = {
        "entries": [
            {"account_id": a, "direction": "debit", "amount": amount},
            {"account_id": b, "direction": "credit", "amount": amount},
        ]
    }
    headers = {"Idempotency-Key": key or fresh_id("key")}
    for attempt in range(tries):
        try:
            answer = await client.post("/transactions", json=body, headers=headers)
        except httpx.TransportError:
            if attempt == tries - 1:
                raise
            await asyncio.sleep(0.1)
            continue
        if answer.status_code in (200, 201):
            return answer.json()["id"]
        assert answer.status_code == 503, answer.text
        await asyncio.sleep(0.1)
    raise AssertionError("no service took the posting")


async def read_stream(client: httpx.AsyncClient, params: dict, headers: dict, count: int):
    """The first `count` SSE messages that carry an event: (id, event)."""
    got = []
    async with client.stream("GET", "/events/stream", params=params, headers=headers) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        message: dict[str, str] = {}
        async for line in r.aiter_lines():
            if line == "":
                if "data" in message:
                    got.append((message["id"], json.loads(message["data"])))
                    if len(got) == count:
                        return got
                message = {}
                continue
            field, _, value = line.partition(": ")
            if field in ("id", "data", "event"):
                message[field] = value
    raise AssertionError("the stream ended early")


async def test_the_stream_resumes_with_exactly_the_missing_tail(tmp_path, database_url, admin_key):
    process, base = service(tmp_path, "s", database_url)
    try:
        auth = {"Authorization": f"Bearer {admin_key}"}
        async with httpx.AsyncClient(base_url=base, timeout=60, headers=auth) as client:
            a, b = await two_accounts(client)
            ids = [await post(client, a, b, n) for n in range(1, 6)]
            params = {"account_id": a}
            first = await asyncio.wait_for(read_stream(client, params, {}, 2), 60)
            assert [e["data"]["id"] for _, e in first] == ids[:2]
            # Disconnected after the second; resuming from its id gives the
            # third onwards, nothing twice, nothing skipped.
            resume = {"Last-Event-ID": first[-1][0]}
            rest = await asyncio.wait_for(read_stream(client, params, resume, 3), 60)
            assert [e["data"]["id"] for _, e in rest] == ids[2:]
            assert [e["type"] for _, e in first + rest] == ["transaction.posted"] * 5
            # A new posting arrives on a stream that is already open.
            # ... resumed with `after` this time, and a filter on types.
            typed = {**params, "after": rest[-1][0], "types": "transaction.posted"}
            follow = asyncio.create_task(read_stream(client, typed, {}, 1))
            await asyncio.sleep(0.5)
            later = await post(client, a, b)
            ((_, event),) = await asyncio.wait_for(follow, 60)
            assert event["data"]["id"] == later
            bad = await client.get("/events/stream", params={"after": "nonsense!"})
            assert bad.status_code == 400 and bad.json()["type"].endswith("invalid-cursor")
    finally:
        process.kill()
        process.wait()


async def lease_holder(owner_engine, webhook_id: str) -> int | None:
    async with owner_engine.connect() as conn:
        owner = (
            await conn.execute(
                text(
                    "SELECT lease_owner FROM webhook_endpoints "
                    "WHERE id = :id AND lease_until > now()"
                ),
                {"id": webhook_id},
            )
        ).scalar_one_or_none()
    return None if owner is None else int(owner.split(":")[1])


@pytest.mark.slow
async def test_deliveries_survive_kill_9_of_the_lease_holder_while_the_receiver_fails(
    tmp_path, server_url, settings
):
    # A database of its own: no other deliverer (the test session's app
    # has one) may take the endpoint's lease.
    database_url = await asyncio.to_thread(new_database, server_url, "ledger_webhookkill")
    admin_key = new_key()[1]
    FAST["LEDGER_BOOTSTRAP_KEY"] = admin_key
    receiver = Receiver(fail_rate=0.2).start()
    services = dict([service(tmp_path, f"s{n}", database_url)[::-1] for n in range(2)])
    auth = {"Authorization": f"Bearer {admin_key}"}
    kills, started = 0, 2
    owner_engine = create_engine(database_url, settings, role="", application_name="ledger-kill")
    deadline = time.monotonic() + 180
    try:
        bases = list(services)
        clients = [httpx.AsyncClient(base_url=b, timeout=30, headers=auth) for b in bases]
        made = await clients[0].post("/webhooks", json={"url": receiver.url})
        assert made.status_code == 201, made.text
        hook = made.json()
        receiver.secret = hook["secret"]
        a, b = await two_accounts(clients[0])
        acknowledged: list[str] = []

        async def keep_posting():
            for n in range(120):
                key = fresh_id("key")
                for _ in range(100):  # the service picked may be one just killed
                    base = random.choice(list(services))
                    async with httpx.AsyncClient(base_url=base, timeout=30, headers=auth) as c:
                        try:
                            acknowledged.append(await post(c, a, b, n + 1, key=key, tries=1))
                            break
                        except (httpx.TransportError, AssertionError):
                            await asyncio.sleep(0.1)
                await asyncio.sleep(0.02)

        posting = asyncio.create_task(keep_posting())
        while not posting.done() or kills < 3:
            assert time.monotonic() < deadline, f"only {kills} lease holders killed"
            await asyncio.sleep(random.uniform(0.5, 1.5))
            pid = await lease_holder(owner_engine, hook["id"])
            victim = next((base for base, p in services.items() if p.pid == pid), None)
            if victim is None:
                continue
            os.kill(pid, signal.SIGKILL)
            services.pop(victim).wait()
            kills += 1
            new_process, new_base = service(tmp_path, f"s{started}", database_url)
            started += 1
            services[new_base] = new_process
        await posting
        receiver.fail_rate = 0.0
        deadline = time.monotonic() + 120
        while not set(acknowledged) <= receiver.transaction_ids():
            assert time.monotonic() < deadline, "some events never arrived"
            await asyncio.sleep(0.2)
        verdict = receiver.verdict(set(acknowledged))
        assert kills >= 3
        assert verdict.missing == [] and verdict.out_of_order == 0
        assert verdict.bad_signatures == 0
        # Duplicates only ever under the same webhook-id: one event id per
        # transaction, however often it came.
        by_transaction: dict[str, set[str]] = {}
        for arrival in receiver.arrivals:
            by_transaction.setdefault(arrival.transaction_id, set()).add(arrival.event_id)
        assert all(len(ids) == 1 for ids in by_transaction.values())
        async with httpx.AsyncClient(base_url=next(iter(services)), headers=auth) as c:
            await c.delete(f"/webhooks/{hook['id']}")
        for client in clients:
            await client.aclose()
    finally:
        FAST.pop("LEDGER_BOOTSTRAP_KEY", None)
        await owner_engine.dispose()
        receiver.stop()
        for process in services.values():
            process.kill()
            process.wait()


async def test_a_background_process_seals_and_delivers_and_dies_with_its_service(
    tmp_path, server_url
):
    """LEDGER_BACKGROUND_PROCESS: the loops run in a child of `ledger
    serve` (on a database of its own, where no other sequencer runs), and
    the child goes when the service is killed with -9."""
    import psutil

    database_url = await asyncio.to_thread(new_database, server_url, "ledger_background")
    admin_key = new_key()[1]
    receiver = Receiver().start()
    env = {"LEDGER_BOOTSTRAP_KEY": admin_key, "LEDGER_BACKGROUND_PROCESS": "1"}
    FAST.update(env)
    try:
        process, base = service(tmp_path, "s", database_url)
    finally:
        for name in env:
            FAST.pop(name)
    try:
        (child,) = psutil.Process(process.pid).children()
        assert "ledger.background" in " ".join(child.cmdline())
        auth = {"Authorization": f"Bearer {admin_key}"}
        async with httpx.AsyncClient(base_url=base, timeout=30, headers=auth) as client:
            made = await client.post("/webhooks", json={"url": receiver.url})
            receiver.secret = made.json()["secret"]
            a, b = await two_accounts(client)
            posted = await post(client, a, b)
            deadline = time.monotonic() + 60
            while posted not in receiver.transaction_ids():
                assert time.monotonic() < deadline, "never sealed and delivered"
                await asyncio.sleep(0.1)
            assert (await client.get(f"/transactions/{posted}")).json()["sequence"] is not None
            # The child's metrics are on the service's /metrics, beside its own.
            exposed = (await client.get("/metrics")).text
            delivered = re.search(
                r'^ledger_webhook_attempts_total\{outcome="delivered"\} (\S+)$', exposed, re.M
            )
            assert delivered and float(delivered.group(1)) >= 1
            assert "ledger_journal_sealed_transactions_total" in exposed
            assert "ledger_http_requests_total" in exposed
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        child.wait(timeout=30)  # not ours to reap: psutil waits for it to go
        assert not child.is_running()
    finally:
        receiver.stop()
        if process.poll() is None:
            process.kill()
            process.wait()
