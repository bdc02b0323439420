"""Reconciliation exceptions as events over HTTP: in the feed (merged with
the transactions under one cursor, waited for by a long poll), to a
webhook, only for keys that may read reconciliation, and numbered in the
commit order of the runs that found them."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from ledger.engine import events as ev
from ledger.engine.access import (
    EVENTS_READ,
    RECONCILIATION_READ,
    TRANSACTIONS_READ,
    WEBHOOKS_ADMIN,
    system,
)
from ledger.engine.reconcile.model import NewRun
from ledger.ops.receiver import Receiver
from support.events import head
from support.ledger import app_client, make_key
from support.reconciliation import XML, account, camt, open_exceptions, post, run, source
from support.webhooks import arrived, endpoint, until

EXCEPTION = "reconciliation.exception"
ONLY = {"types": EXCEPTION}


async def events_after(client, cursor: str, **params) -> tuple[list[dict], str]:
    got = await client.get("/events", params={"after": cursor, **params})
    assert got.status_code == 200, got.text
    return got.json()["events"], got.json()["cursor"]


async def books_with_differences(client) -> tuple[str, str, str]:
    """A bank account with two postings the statement lacks and a statement
    line the ledger lacks: three exceptions for its source's first run."""
    bank, revenue = await account(client, "debit"), await account(client, "credit")
    client.postings = [
        await post(client, bank, revenue, 100, "EV-A"),
        await post(client, bank, revenue, 200, "EV-B"),
    ]
    src = await source(client, bank)
    up = await client.post(
        f"/reconciliation/sources/{src}/statements", content=camt([(999, "EV-X")]), headers=XML
    )
    assert up.status_code == 201, up.text
    return bank, revenue, src


async def test_each_exception_a_run_opens_is_one_event_whose_body_never_changes(
    client, owner_engine
):
    bank, revenue, src = await books_with_differences(client)
    start = await head(client, **ONLY)
    await run(client, src, dry_run=True)
    assert (await events_after(client, start, **ONLY))[0] == []

    first = await run(client, src)
    assert sum(first["counts"]["exceptions"].values()) == 3
    found, cursor = await events_after(client, start, **ONLY)
    opened = {x["id"]: x for x in await open_exceptions(client, src)}
    assert sorted(e["data"]["id"] for e in found) == sorted(opened)
    for event in found:
        assert event["type"] == EXCEPTION and event["id"] == f"evt_rec_{event['sequence']}"
        assert event["data"] == opened[event["data"]["id"]]
    numbers = [e["sequence"] for e in found]
    assert numbers == list(range(numbers[0], numbers[0] + 3))
    # The last event's cursor is the place right after it: the page's own
    # cursor counts the same exceptions (its journal part may have moved on
    # over blocks sealed meanwhile, which this filter leaves out), and
    # resuming from the event's finds nothing more.
    last, page_end = ev.decode_cursor(found[-1]["cursor"]), ev.decode_cursor(cursor)
    assert last.exception == page_end.exception and last <= page_end
    assert (await events_after(client, found[-1]["cursor"], **ONLY))[0] == []
    # The account filter is the source's account.
    assert len((await events_after(client, start, account_id=bank, **ONLY))[0]) == 3
    assert (await events_after(client, start, account_id=revenue, **ONLY))[0] == []

    # Found again at the same severity: no event. Resolved: the event
    # still shows the exception as it was found.
    await run(client, src)
    assert (await events_after(client, cursor, **ONLY))[0] == []
    resolved = next(iter(opened))
    ok = await client.post(
        f"/reconciliation/exceptions/{resolved}/resolve",
        json={"resolution": "accepted", "note": "known"},
    )
    assert ok.status_code == 200, ok.text
    again, _ = await events_after(client, start, **ONLY)
    assert again == found

    # Found again with a higher severity than it had: an event again.
    lowered = next(i for i in opened if i != resolved)
    async with owner_engine.begin() as conn:
        await conn.execute(
            text("UPDATE recon_exceptions SET severity = 'info' WHERE id = :id"), {"id": lowered}
        )
    await run(client, src)
    (risen,), _ = await events_after(client, cursor, **ONLY)
    assert risen["data"]["id"] == lowered
    assert risen["data"]["severity"] == opened[lowered]["severity"] != "info"
    assert risen["sequence"] == numbers[-1] + 1


async def test_both_streams_merge_under_one_cursor_page_by_page(client):
    bank, revenue, src = await books_with_differences(client)
    start = await head(client, account_id=bank)
    posted = await post(client, bank, revenue, 300, "EV-C")
    await run(client, src)
    # A posting after the run: each stream has events before the other's.
    later = await post(client, bank, revenue, 400, "EV-D")
    expected = {posted, later} | {x["id"] for x in await open_exceptions(client, src)}

    async def everything() -> list[dict]:
        for _ in range(1200):
            found, _ = await events_after(client, start, account_id=bank, limit=100)
            if {e["data"]["id"] for e in found} >= expected:
                return found
            await asyncio.sleep(0.05)
        raise AssertionError("the posting was not sealed within 60 s")

    whole = await everything()
    # The postings made before `start` may have been sealed after it.
    assert expected <= {e["data"]["id"] for e in whole} <= expected | set(client.postings)
    paged, cursor = [], start
    for _ in range(len(whole) + 1):
        found, cursor = await events_after(client, cursor, account_id=bank, limit=1)
        assert len(found) <= 1
        paged += found
        if found:
            assert found[0]["cursor"] == cursor
    assert [e["id"] for e in paged] == [e["id"] for e in whole]
    for stream in ("transaction", "reconciliation"):
        numbers = [e["sequence"] for e in paged if e["type"].startswith(stream)]
        assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    assert (await events_after(client, cursor, account_id=bank))[0] == []


async def test_a_long_poll_wakes_for_a_reconciliation_event(client, ledger):
    """Through the engine: the test client answers one request at a time,
    so a long poll over it would hold up the run it waits for."""
    _, _, src = await books_with_differences(client)
    start = await head(client, **ONLY)
    waiting = asyncio.create_task(ledger.events.feed(start, types=EXCEPTION, wait=30))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    await run(client, src)
    page = await asyncio.wait_for(waiting, 60)
    assert len(page.events) == 3 and {e.type for e in page.events} == {EXCEPTION}


async def test_only_keys_that_may_read_reconciliation_see_its_events(
    database_url, settings, ledger, client
):
    bank, revenue, src = await books_with_differences(client)
    start = await head(client)
    await run(client, src)
    # A transaction after the run, so the key without reconciliation:read
    # has an event to see beside the exceptions it must not.
    posted = await post(client, bank, revenue, 100, None)
    plain = await make_key(ledger, EVENTS_READ, TRANSACTIONS_READ)
    both = await make_key(ledger, EVENTS_READ, RECONCILIATION_READ)
    elsewhere = await make_key(ledger, EVENTS_READ, RECONCILIATION_READ, accounts=["elsewhere"])
    hooks_only = await make_key(ledger, WEBHOOKS_ADMIN)
    async with app_client(database_url, settings, plain) as reader:
        named = await reader.get("/events", params={"after": start, **ONLY})
        assert named.status_code == 403 and RECONCILIATION_READ in named.text
        # Until the posting after the run is seen (the book's own postings
        # may be sealed after `start` was taken, and come first).
        found, cursor = [], start
        for _ in range(20):
            page, cursor = await events_after(reader, cursor, account_id=bank, wait=5)
            found += page
            if posted in [e["data"]["id"] for e in found]:
                break
        assert posted in [e["data"]["id"] for e in found]
        assert all(e["type"] != EXCEPTION for e in found)
    async with app_client(database_url, settings, both) as reader:
        found, _ = await events_after(reader, start, account_id=bank, **ONLY)
        assert len(found) == 3
    async with app_client(database_url, settings, elsewhere) as reader:
        assert (await events_after(reader, start, limit=500, **ONLY))[0] == []
    async with app_client(database_url, settings, hooks_only) as admin:
        url = Receiver().start().url  # nothing is delivered to it: only registered
        named = await admin.post("/webhooks", json={"url": url, "event_types": [EXCEPTION]})
        assert named.status_code == 403 and RECONCILIATION_READ in named.text
        made = await admin.post("/webhooks", json={"url": url})
        assert made.status_code == 201, made.text
        assert EXCEPTION not in made.json()["event_types"]
        assert await admin.delete(f"/webhooks/{made.json()['id']}")


async def test_a_webhook_gets_reconciliation_events_signed(client):
    _, _, src = await books_with_differences(client)
    receiver = Receiver().start()
    async with endpoint(client, receiver, event_types=[EXCEPTION]) as hook:
        await run(client, src)
        ids = [x["id"] for x in await open_exceptions(client, src)]
        await until(arrived(receiver, ids), "delivery of the exceptions")
        verdict = receiver.verdict()
        assert verdict.bad_signatures == 0 and verdict.out_of_order == 0
        assert {a.stream for a in receiver.arrivals} == {"reconciliation"}

        async def cursor_moved():
            shown = (await client.get(f"/webhooks/{hook['id']}")).json()
            return shown["cursor"] != hook["cursor"]

        await until(cursor_moved, "the endpoint's cursor to move")


async def test_event_numbers_are_given_in_the_commit_order_of_runs(client, ledger, owner_engine):
    """A run takes the counter's row lock in its own transaction: while
    another transaction holds it, the run waits and nothing of it shows;
    once free, its numbers follow on without a gap. (The run goes through
    the engine: the test client answers one request at a time.)"""
    _, _, src = await books_with_differences(client)
    start = await head(client, **ONLY)
    today = datetime.now(UTC).date()
    window = NewRun(source_id=src, from_=today - timedelta(days=1), to=today + timedelta(days=1))
    async with owner_engine.connect() as holder:
        await holder.execute(
            text("UPDATE recon_event_counter SET last_sequence = last_sequence WHERE id = 1")
        )
        running = asyncio.create_task(ledger.reconciliation.run(window, system("test")))
        await asyncio.sleep(1.0)
        assert not running.done()
        assert (await ledger.events.feed(start, types=EXCEPTION)).events == []
        await holder.rollback()
    await asyncio.wait_for(running, 60)
    found, _ = await events_after(client, start, **ONLY)
    numbers = [e["sequence"] for e in found]
    assert len(numbers) == 3 and numbers == list(range(numbers[0], numbers[0] + 3))


async def test_the_sse_stream_names_each_reconciliation_event_and_resumes_after_it(
    client, database_url, settings, admin_key
):
    _, _, src = await books_with_differences(client)
    start = await head(client, **ONLY)
    await run(client, src)
    short = settings.with_overrides(events_stream_seconds=1.0)

    async def messages(**params) -> list[dict[str, str]]:
        """Every message that carries an event, until the stream ends."""
        got, message = [], {}
        async with (
            app_client(database_url, short, admin_key) as reader,
            reader.stream("GET", "/events/stream", params=params) as answer,
        ):
            assert answer.status_code == 200
            async for line in answer.aiter_lines():
                if line == "" and "data" in message:
                    got.append(message)
                if line == "":
                    message = {}
                    continue
                field, _, value = line.partition(": ")
                message[field] = value
        return got

    streamed = await messages(after=start, **ONLY)
    assert [m["event"] for m in streamed] == [EXCEPTION] * 3
    bodies = [json.loads(m["data"]) for m in streamed]
    assert [m["id"] for m in streamed] == [b["cursor"] for b in bodies]
    assert {b["stream"] for b in bodies} == {"reconciliation"}
    # Resumed from the first one's id: exactly the other two.
    rest = await messages(after=streamed[0]["id"], **ONLY)
    assert [json.loads(m["data"])["id"] for m in rest] == [b["id"] for b in bodies[1:]]
