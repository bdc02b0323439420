"""Pending transactions on the real database: authorise, post (in full or in
part), void, expire; exactly one resolution each, whatever races."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from ledger.app import build_ledger, build_store
from ledger.engine import errors
from ledger.engine.model import (
    AccountFlags,
    Leg,
    NewTransaction,
    PostPendingRequest,
    ReversalRequest,
    VoidRequest,
)
from support.ids import key
from support.ledger import open_account


@pytest.fixture(params=["batched", "four messages"])
def ledger(request, ledger, four_message_ledger):
    """Every test here runs on both posting paths: two messages with
    BEGIN and COMMIT folded in (PostgreSQL), and four (CockroachDB)."""
    return ledger if request.param == "batched" else four_message_ledger


def hold(debit: str, credit: str, amount: int, timeout: int | None = None) -> NewTransaction:
    return NewTransaction(
        [Leg(debit, "debit", amount), Leg(credit, "credit", amount)],
        pending=True,
        timeout_seconds=timeout,
    )


async def wallet_with(ledger, funds: int) -> tuple[str, str, str]:
    """A credit-normal wallet that may not go below zero, funded from a bank
    account, and a merchant to pay."""
    bank = await open_account(ledger)
    wallet = await open_account(
        ledger, normal_side="credit", flags=AccountFlags(debits_must_not_exceed_credits=True)
    )
    merchant = await open_account(ledger, normal_side="credit")
    if funds:
        await ledger.postings.post(
            NewTransaction([Leg(bank, "debit", funds), Leg(wallet, "credit", funds)]), key()
        )
    return bank, wallet, merchant


async def resolutions_of(owner_engine, transaction_id: str) -> int:
    async with owner_engine.connect() as conn:
        return (
            await conn.execute(
                text("SELECT count(*) FROM transactions WHERE resolves = CAST(:t AS UUID)"),
                {"t": transaction_id},
            )
        ).scalar_one()


async def test_an_authorisation_reduces_available_but_not_posted(ledger):
    _, wallet, merchant = await wallet_with(ledger, 100)
    auth = await ledger.postings.post(hold(wallet, merchant, 30, timeout=60), key())
    assert auth.transaction.pending and auth.transaction.state == "pending"
    assert auth.transaction.expires_at is not None
    balance = await ledger.accounts.balance(wallet)
    assert (balance.posted.balance, balance.pending.debits, balance.available) == (100, 30, 70)
    merchant_balance = await ledger.accounts.balance(merchant)
    # Pending credits do not count until posted.
    assert (merchant_balance.pending.credits, merchant_balance.available) == (30, 0)
    assert (await ledger.verify()).ok


async def test_posting_for_less_posts_the_part_and_releases_the_rest(ledger):
    _, wallet, merchant = await wallet_with(ledger, 100)
    auth = (await ledger.postings.post(hold(wallet, merchant, 30), key())).transaction
    posted = await ledger.postings.post_pending(auth.id, PostPendingRequest(amount=25), key())
    assert posted.transaction.resolves == auth.id
    assert posted.transaction.resolution == "posted"
    assert [e.amount for e in posted.transaction.entries] == [25, 25]
    balance = await ledger.accounts.balance(wallet)
    assert (balance.posted.balance, balance.pending.debits, balance.available) == (75, 0, 75)
    assert (await ledger.accounts.balance(merchant)).posted.balance == 25
    original = await ledger.postings.get(auth.id)
    assert (original.state, original.resolved_by) == ("posted", posted.transaction.id)
    assert original.entries == auth.entries  # the pending row never changes
    assert (await ledger.verify()).ok


async def test_voiding_releases_everything_and_posts_nothing(ledger):
    _, wallet, merchant = await wallet_with(ledger, 100)
    auth = (await ledger.postings.post(hold(wallet, merchant, 40), key())).transaction
    void = await ledger.postings.void_pending(
        auth.id, VoidRequest(description="customer cancelled"), key()
    )
    assert void.transaction.entries == [] and void.transaction.resolution == "voided"
    balance = await ledger.accounts.balance(wallet)
    assert (balance.posted.balance, balance.pending.debits, balance.available) == (100, 0, 100)
    assert (await ledger.postings.get(auth.id)).state == "voided"
    assert (await ledger.verify()).ok


async def test_a_pending_transaction_resolves_at_most_once(ledger):
    _, wallet, merchant = await wallet_with(ledger, 100)
    auth = (await ledger.postings.post(hold(wallet, merchant, 10), key())).transaction
    await ledger.postings.post_pending(auth.id, PostPendingRequest(), key())
    with pytest.raises(errors.AlreadyResolved) as caught:
        await ledger.postings.post_pending(auth.id, PostPendingRequest(), key())
    assert caught.value.details["state"] == "posted"
    with pytest.raises(errors.AlreadyResolved):
        await ledger.postings.void_pending(auth.id, VoidRequest(), key())
    other = (await ledger.postings.post(hold(wallet, merchant, 10), key())).transaction
    await ledger.postings.void_pending(other.id, VoidRequest(), key())
    with pytest.raises(errors.AlreadyResolved):
        await ledger.postings.post_pending(other.id, PostPendingRequest(), key())


async def test_resolutions_replay_under_their_key(ledger):
    _, wallet, merchant = await wallet_with(ledger, 100)
    auth = (await ledger.postings.post(hold(wallet, merchant, 10), key())).transaction
    k = key()
    first = await ledger.postings.post_pending(auth.id, PostPendingRequest(amount=5), k)
    again = await ledger.postings.post_pending(auth.id, PostPendingRequest(amount=5), k)
    assert again.replayed and again.transaction.id == first.transaction.id
    with pytest.raises(errors.IdempotencyKeyReused):
        await ledger.postings.post_pending(auth.id, PostPendingRequest(amount=6), k)
    with pytest.raises(errors.IdempotencyKeyReused):
        await ledger.postings.void_pending(auth.id, VoidRequest(), k)


async def test_only_pending_transactions_are_posted_or_voided_and_they_are_not_reversed(ledger):
    _, wallet, merchant = await wallet_with(ledger, 100)
    plain = (
        await ledger.postings.post(
            NewTransaction([Leg(wallet, "debit", 1), Leg(merchant, "credit", 1)]), key()
        )
    ).transaction
    with pytest.raises(errors.NotPending):
        await ledger.postings.post_pending(plain.id, PostPendingRequest(), key())
    auth = (await ledger.postings.post(hold(wallet, merchant, 10), key())).transaction
    with pytest.raises(errors.NotReversible, match="post or void it instead"):
        await ledger.postings.reverse(auth.id, ReversalRequest(), key())
    void = (await ledger.postings.void_pending(auth.id, VoidRequest(), key())).transaction
    with pytest.raises(errors.NotReversible, match="is a void"):
        await ledger.postings.reverse(void.id, ReversalRequest(), key())
    with pytest.raises(errors.NotReversible, match="authorisation that was voided"):
        await ledger.postings.reverse(auth.id, ReversalRequest(), key())
    second = (await ledger.postings.post(hold(wallet, merchant, 10), key())).transaction
    posted = (
        await ledger.postings.post_pending(second.id, PostPendingRequest(), key())
    ).transaction
    with pytest.raises(errors.NotReversible, match=f"posted by '{posted.id}'"):
        await ledger.postings.reverse(second.id, ReversalRequest(), key())
    reversal = await ledger.postings.reverse(posted.id, ReversalRequest(), key())
    assert reversal.transaction.reverses == posted.id
    assert (await ledger.accounts.balance(wallet)).posted.balance == 99
    with pytest.raises(errors.TransactionNotFound):
        await ledger.postings.void_pending(
            "00000000-0000-4000-8000-000000000000", VoidRequest(), key()
        )


async def test_a_post_after_expiry_is_refused_even_before_the_sweeper_runs(ledger):
    _, wallet, merchant = await wallet_with(ledger, 100)
    auth = (await ledger.postings.post(hold(wallet, merchant, 10, timeout=1), key())).transaction
    await asyncio.sleep(1.1)
    with pytest.raises(errors.PendingExpired):
        await ledger.postings.post_pending(auth.id, PostPendingRequest(), key())
    assert await ledger.postings.expire_due() >= 1
    expired = await ledger.postings.get(auth.id)
    assert expired.state == "expired"
    assert (await ledger.accounts.balance(wallet)).available == 100
    # The same refusal once the sweeper has expired it.
    with pytest.raises(errors.PendingExpired):
        await ledger.postings.void_pending(auth.id, VoidRequest(), key())


async def test_history_shows_pending_and_what_became_of_it(ledger):
    _, wallet, merchant = await wallet_with(ledger, 100)
    kept = (await ledger.postings.post(hold(wallet, merchant, 7), key())).transaction
    dropped = (await ledger.postings.post(hold(wallet, merchant, 8), key())).transaction
    open_ = (await ledger.postings.post(hold(wallet, merchant, 9), key())).transaction
    posted = (await ledger.postings.post_pending(kept.id, PostPendingRequest(), key())).transaction
    voided = (await ledger.postings.void_pending(dropped.id, VoidRequest(), key())).transaction
    history = (await ledger.accounts.entries(wallet, None, 50)).items
    by_tx = {e.transaction_id: e for e in history}
    assert (by_tx[kept.id].pending, by_tx[kept.id].state, by_tx[kept.id].resolved_by) == (
        True,
        "posted",
        posted.id,
    )
    assert (by_tx[dropped.id].state, by_tx[dropped.id].resolved_by) == ("voided", voided.id)
    assert (by_tx[open_.id].state, by_tx[open_.id].resolved_by) == ("pending", None)
    assert (by_tx[posted.id].pending, by_tx[posted.id].state) == (False, "posted")


async def test_pending_as_of_a_time_counts_what_was_held_then(ledger):
    _, wallet, merchant = await wallet_with(ledger, 100)
    auth = (await ledger.postings.post(hold(wallet, merchant, 10), key())).transaction
    await asyncio.sleep(0.01)
    void = (await ledger.postings.void_pending(auth.id, VoidRequest(), key())).transaction
    during = auth.created_at + (void.created_at - auth.created_at) / 2
    assert (await ledger.accounts.balance(wallet, as_of=during)).pending.debits == 10
    assert (await ledger.accounts.balance(wallet, as_of=void.created_at)).pending.debits == 0


# --- the races ---------------------------------------------------------------------------


@pytest.mark.parametrize("round_", range(5))
async def test_post_and_void_racing_one_wins(ledger, owner_engine, round_):
    _, wallet, merchant = await wallet_with(ledger, 100)
    auth = (await ledger.postings.post(hold(wallet, merchant, 10), key())).transaction
    outcomes = await asyncio.gather(
        ledger.postings.post_pending(auth.id, PostPendingRequest(), key()),
        ledger.postings.void_pending(auth.id, VoidRequest(), key()),
        return_exceptions=True,
    )
    winners = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(winners) == 1, outcomes
    assert all(isinstance(o, errors.AlreadyResolved) for o in outcomes if o not in winners)
    assert await resolutions_of(owner_engine, auth.id) == 1
    balance = await ledger.accounts.balance(wallet)
    expected = 90 if winners[0].transaction.resolution == "posted" else 100
    assert (balance.posted.balance, balance.pending.debits) == (expected, 0)


async def test_two_posts_racing_post_once(ledger, owner_engine):
    _, wallet, merchant = await wallet_with(ledger, 100)
    auth = (await ledger.postings.post(hold(wallet, merchant, 10), key())).transaction
    outcomes = await asyncio.gather(
        *(ledger.postings.post_pending(auth.id, PostPendingRequest(), key()) for _ in range(6)),
        return_exceptions=True,
    )
    assert sum(not isinstance(o, BaseException) for o in outcomes) == 1
    assert await resolutions_of(owner_engine, auth.id) == 1
    assert (await ledger.accounts.balance(wallet)).posted.balance == 90


@pytest.mark.parametrize("round_", range(3))
async def test_a_post_racing_the_expiry_sweeper_resolves_once(ledger, owner_engine, round_):
    _, wallet, merchant = await wallet_with(ledger, 100)
    auth = (await ledger.postings.post(hold(wallet, merchant, 10, timeout=1), key())).transaction
    # Fire both around the deadline, a little before and a little after.
    await asyncio.sleep(0.9 + 0.05 * round_)
    post, _swept = await asyncio.gather(
        ledger.postings.post_pending(auth.id, PostPendingRequest(), key()),
        _sweep_until_resolved(ledger, auth.id),
        return_exceptions=True,
    )
    assert await resolutions_of(owner_engine, auth.id) == 1
    state = (await ledger.postings.get(auth.id)).state
    if isinstance(post, BaseException):
        assert isinstance(post, errors.PendingExpired | errors.AlreadyResolved), post
        assert state == "expired"
        assert (await ledger.accounts.balance(wallet)).posted.balance == 100
    else:
        assert state == "posted"
        assert (await ledger.accounts.balance(wallet)).posted.balance == 90
    assert (await ledger.accounts.balance(wallet)).pending.debits == 0


async def _sweep_until_resolved(ledger, transaction_id: str) -> None:
    for _ in range(40):
        await ledger.postings.expire_due()
        if (await ledger.postings.get(transaction_id)).state != "pending":
            return
        await asyncio.sleep(0.05)


async def test_many_authorisations_against_one_limited_account_exactly_those_that_fit(ledger):
    _, wallet, merchant = await wallet_with(ledger, 100)
    outcomes = await asyncio.gather(
        *(ledger.postings.post(hold(wallet, merchant, 10), key()) for _ in range(25)),
        return_exceptions=True,
    )
    accepted = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(accepted) == 10
    assert all(isinstance(o, errors.LimitExceeded) for o in refused)
    balance = await ledger.accounts.balance(wallet)
    assert (balance.posted.balance, balance.pending.debits, balance.available) == (100, 100, 0)


async def test_two_service_instances_sweeping_at_once_expire_each_once(
    database_url, settings, owner_engine, ledger
):
    _, wallet, merchant = await wallet_with(ledger, 1000)
    auths = [
        (await ledger.postings.post(hold(wallet, merchant, 10, timeout=1), key())).transaction
        for _ in range(20)
    ]
    stores = [
        build_store(database_url, settings, application_name=f"sweeper-{i}") for i in range(2)
    ]
    instances = [build_ledger(store, settings) for store in stores]
    await asyncio.sleep(1.2)
    counts = []
    try:
        # Rounds of small batches by both instances at once, as their
        # sweepers would run, until all of ours are expired.
        for _ in range(30):
            counts += await asyncio.gather(*(i.postings.expire_due(limit=7) for i in instances))
            states = {(await ledger.postings.get(a.id)).state for a in auths}
            if states == {"expired"}:
                break
    finally:
        for store in stores:
            await store.engine.dispose()
    # No other sweeper runs in the tests, so these two did it all; other
    # tests' expired holds may be in the queue too: at least ours.
    assert sum(counts) >= 20
    for auth in auths:
        assert await resolutions_of(owner_engine, auth.id) == 1
        assert (await ledger.postings.get(auth.id)).state == "expired"
    balance = await ledger.accounts.balance(wallet)
    assert (balance.pending.debits, balance.available) == (0, 1000)
    assert (await ledger.verify()).ok
