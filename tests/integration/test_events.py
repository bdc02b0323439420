"""Events are the sealed sequence: every committed transaction once, in
sequence order, as it was when it committed; none for a posting that
rolled back; a transaction still open holds the feed back and takes its
place once it commits."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from ledger.app import build_ledger
from ledger.engine import access, errors
from ledger.engine import events as ev
from ledger.engine.access import Actor
from ledger.engine.model import (
    Leg,
    NewTransaction,
    PostPendingRequest,
    ReversalRequest,
)
from ledger.storage.database import create_engine
from ledger.storage.retry import RetryPolicy
from ledger.storage.store import SqlStore
from support.database import HeldStore
from support.ids import key
from support.ledger import open_account


def transfer(a: str, b: str, amount: int = 5, **extra) -> NewTransaction:
    return NewTransaction([Leg(a, "debit", amount), Leg(b, "credit", amount)], **extra)


async def here(ledger) -> str:
    """The cursor at the journal's head: the events after it are new."""
    await seal_all(ledger)
    head = await ledger.journal.head()
    return ev.encode_cursor(ev.Position(head.block or 0, head.last_sequence))


async def seal_all(ledger, *transaction_ids: str) -> None:
    """Seal what is waiting; then, for each of `transaction_ids`, wait until
    it has its place. The session app's sequencer may hold the sealing
    guard, and then sealing here seals nothing: it seals them itself
    moments later."""
    while await ledger.journal.seal(1000):
        pass
    deadline = asyncio.get_running_loop().time() + 15
    for transaction_id in transaction_ids:
        while (await ledger.postings.get(transaction_id)).sequence is None:
            assert asyncio.get_running_loop().time() < deadline, f"{transaction_id} not sealed"
            await asyncio.sleep(0.05)
            await ledger.journal.seal(1000)


async def test_each_committed_transaction_is_one_event_of_its_type_in_sequence_order(ledger):
    a, b = await open_account(ledger), await open_account(ledger, normal_side="credit")
    start = await here(ledger)
    plain = (await ledger.postings.post(transfer(a, b), key())).transaction
    held = (await ledger.postings.post(transfer(a, b, 7, pending=True), key())).transaction
    posted = (
        await ledger.postings.post_pending(held.id, PostPendingRequest(amount=6), key())
    ).transaction
    reversal = (await ledger.postings.reverse(plain.id, ReversalRequest(), key())).transaction
    await seal_all(ledger, reversal.id)

    page = await ledger.events.feed(start, account_id=a)
    assert [(e.data.id, e.type) for e in page.events] == [
        (plain.id, ev.POSTED),
        (held.id, ev.PENDING),
        (posted.id, ev.RESOLVED),
        (reversal.id, ev.REVERSED),
    ]
    sequences = [e.sequence for e in page.events]
    assert sequences == sorted(sequences) and len(set(sequences)) == 4
    assert page.events[2].data.resolution == "posted"
    assert page.events[3].data.reverses == plain.id
    # The data is the transaction as it was at commit: the plain posting
    # reads the same now (it gained only `reversed_by`, an event of its own)...
    now = await ledger.postings.get(plain.id)
    assert page.events[0].data == msgspec.structs.replace(now, reversed_by=None)
    # ... and the pending one was pending then, whatever it is now.
    assert page.events[1].data.state == "pending" and page.events[1].data.resolved_by is None
    assert (await ledger.postings.get(held.id)).state == "posted"
    # Event ids are stable, and the page's cursor continues after the last.
    assert page.events[0].id == ev.event_id(plain.id)
    # (The page's cursor has also passed the reconciliation stream's
    # events, none of them this account's.)
    last, reached = ev.decode_cursor(page.events[-1].cursor), ev.decode_cursor(page.cursor)
    assert (reached.block, reached.sequence) == (last.block, last.sequence)
    assert reached.exception >= last.exception
    assert (await ledger.events.feed(page.cursor, account_id=a)).events == []
    # Read again from the start: the same events, byte for byte.
    again = await ledger.events.feed(start, account_id=a)
    assert again.events == page.events


async def test_filters_by_type_and_by_account_and_pages_on(ledger):
    a, b = await open_account(ledger), await open_account(ledger, normal_side="credit")
    c = await open_account(ledger)
    start = await here(ledger)
    ids = []
    for n in range(5):
        ids.append((await ledger.postings.post(transfer(a, b, n + 1), key())).transaction.id)
    other = (await ledger.postings.post(transfer(c, b), key())).transaction.id
    pending = (await ledger.postings.post(transfer(a, b, pending=True), key())).transaction
    await seal_all(ledger, pending.id)

    # The session app's sequencer may hold the sealing guard (seal_all then
    # seals nothing): each page is a long poll that waits for its events.
    seen, cursor = [], start
    while len(seen) < len(ids):
        page = await ledger.events.feed(
            cursor, account_id=a, limit=2, types="transaction.posted", wait=10
        )
        if not page.events:
            break
        assert len(page.events) <= 2
        seen += [e.data.id for e in page.events]
        cursor = page.cursor
    assert seen == ids
    after = await ledger.events.feed(cursor, account_id=a, types="transaction.posted")
    assert after.events == []
    only_pending = await ledger.events.feed(start, account_id=a, types=[ev.PENDING], wait=10)
    assert [e.data.id for e in only_pending.events] == [pending.id]
    on_c = await ledger.events.feed(start, account_id=c, wait=10)
    assert [e.data.id for e in on_c.events] == [other]


async def test_a_key_limited_to_prefixes_gets_only_the_events_it_may_read(ledger):
    mine = await open_account(ledger, prefix="evreach")
    theirs = await open_account(ledger, prefix="elsewhere")
    b = await open_account(ledger, prefix="evreach", normal_side="credit")
    start = await here(ledger)
    inside = (await ledger.postings.post(transfer(mine, b), key())).transaction.id
    await ledger.postings.post(transfer(theirs, b), key())
    await seal_all(ledger)
    limited = Actor(request_id="t", client_id="tests", accounts=("evreach",))
    # The session app's sequencer may hold the sealing guard (seal_all then
    # seals nothing): a long poll waits for the first event to be sealed.
    page = await ledger.events.feed(start, account_id=b, actor=limited, wait=10)
    assert [e.data.id for e in page.events] == [inside]
    with pytest.raises(errors.AccountOutOfReach):
        await ledger.events.feed(start, account_id=theirs, actor=limited)


async def test_a_posting_that_rolls_back_has_no_event(ledger, database_url, settings):
    class RollsBack(SqlStore):
        async def run(self, work):
            async def wrote_then_failed(unit):
                await work(unit)
                raise RuntimeError("the posting fails after its rows were written")

            return await super().run(wrote_then_failed)

    policy = RetryPolicy(1, 0.001, 0.001)
    engine = create_engine(database_url, settings, application_name="ledger-rollback")
    doomed = build_ledger(RollsBack(engine, policy, batch_postings=False), settings)
    try:
        a, b = await open_account(ledger), await open_account(ledger, normal_side="credit")
        start = await here(ledger)
        with pytest.raises(RuntimeError):
            await doomed.postings.post(transfer(a, b), key())
        kept = (await ledger.postings.post(transfer(a, b, 9), key())).transaction.id
        await seal_all(ledger, kept)
        page = await ledger.events.feed(start, account_id=a)
        assert [e.data.id for e in page.events] == [kept]
    finally:
        await engine.dispose()


async def test_an_open_transaction_holds_the_feed_back_and_keeps_its_place(
    ledger, database_url, settings
):
    engine = create_engine(database_url, settings, application_name="ledger-held-events")
    held_store = HeldStore(engine, RetryPolicy(5, 0.001, 0.01))
    held_ledger = build_ledger(held_store, settings)
    try:
        # Hot accounts for the held posting, far in key order from the
        # others' (see the journal's test of the same: otherwise PostgreSQL's
        # page-grained SERIALIZABLE check makes it retry with a new header).
        a = await open_account(ledger, hot=True, prefix="aaa")
        b = await open_account(ledger, normal_side="credit", hot=True, prefix="aaa")
        c = await open_account(ledger, prefix="zzz")
        d = await open_account(ledger, normal_side="credit", prefix="zzz")
        start = await here(ledger)
        first = asyncio.create_task(held_ledger.postings.post(transfer(a, b), key()))
        await asyncio.wait_for(held_store.written.wait(), 30)
        later = (await ledger.postings.post(transfer(c, d), key())).transaction.id
        await seal_all(ledger)
        # The later transaction committed, but the open one's xid is below
        # it: neither is sealed, so the feed shows neither yet.
        assert [e.data.id for e in (await ledger.events.feed(start, account_id=c)).events] == []
        held_store.release.set()
        earlier = (await first).transaction.id
        await seal_all(ledger, earlier, later)
        page = await ledger.events.feed(start)
        order = [e.data.id for e in page.events if e.data.id in (earlier, later)]
        assert order == [earlier, later]
    finally:
        held_store.release.set()
        await engine.dispose()


async def test_a_long_poll_answers_when_an_event_comes(ledger):
    a, b = await open_account(ledger), await open_account(ledger, normal_side="credit")
    start = await here(ledger)
    waiting = asyncio.create_task(ledger.events.feed(start, account_id=a, wait=30))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    posted = (await ledger.postings.post(transfer(a, b), key())).transaction.id
    await seal_all(ledger)
    page = await asyncio.wait_for(waiting, 30)
    assert [e.data.id for e in page.events] == [posted]
    # Nothing comes: the wait ends empty, with a cursor to go on from.
    quiet = await ledger.events.feed(page.cursor, account_id=a, wait=0.3)
    assert quiet.events == [] and ev.decode_cursor(quiet.cursor) >= ev.decode_cursor(page.cursor)


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"cursor": "not a cursor!"}, errors.InvalidCursor),
        ({"cursor": ev.paging.encode_cursor("12")}, errors.InvalidCursor),
        ({"types": "transaction.bogus"}, errors.InvalidValue),
        ({"types": ","}, errors.InvalidValue),
        ({"wait": 31}, errors.InvalidValue),
        ({"wait": -1}, errors.InvalidValue),
        ({"limit": 0}, errors.InvalidValue),
        ({"account_id": "x" * 129}, errors.InvalidValue),
    ],
)
async def test_bad_feed_arguments_are_refused(ledger, arguments, error):
    cursor = arguments.pop("cursor", None)
    with pytest.raises(error):
        await ledger.events.feed(cursor, **arguments)


def test_every_event_type_is_a_filter_storage_knows():
    from ledger.storage.queries.events import _TYPE_OF

    assert set(_TYPE_OF) == set(ev.TRANSACTION_TYPES)
    assert access.EVENTS_READ in access.SCOPES
