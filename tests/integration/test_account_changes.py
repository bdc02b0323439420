"""Accounts that change after they are made, on the real database: status
(frozen, closed), metadata, limit flags; each change recorded with its
reason, each refusal writing nothing, and races with postings settled by
the database."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from ledger.engine import errors
from ledger.engine.access import DIRECT
from ledger.engine.model import (
    AccountFlags,
    AccountPatch,
    FlagsPatch,
    Leg,
    NewTransaction,
    PostPendingRequest,
    ReversalRequest,
    VoidRequest,
)
from support.ids import key
from support.ledger import open_account


def move(debit: str, credit: str, amount: int, *, pending: bool = False) -> NewTransaction:
    return NewTransaction(
        [Leg(debit, "debit", amount), Leg(credit, "credit", amount)], pending=pending
    )


async def changes_of(ledger, account_id: str) -> list:
    return (await ledger.accounts.changes(account_id, None, 100)).items


async def test_a_frozen_account_takes_no_new_posting_but_releases_its_holds(ledger):
    bank, wallet = await open_account(ledger), await open_account(ledger, normal_side="credit")
    await ledger.postings.post(move(bank, wallet, 100), key())
    hold = (await ledger.postings.post(move(wallet, bank, 30, pending=True), key())).transaction
    held_too = (await ledger.postings.post(move(wallet, bank, 5, pending=True), key())).transaction
    posted = (await ledger.postings.post(move(wallet, bank, 10), key())).transaction

    reason = msgspec.structs.replace(DIRECT, reason="fraud review #12")
    account, changed = await ledger.accounts.update(wallet, AccountPatch(status="frozen"), reason)
    assert changed and account.status == "frozen"

    with pytest.raises(errors.AccountFrozen) as caught:
        await ledger.postings.post(move(bank, wallet, 1), key())
    assert caught.value.details["account_id"] == wallet
    assert caught.value.details["pointer"] == "/entries/1/account_id"
    with pytest.raises(errors.AccountFrozen):
        await ledger.postings.post_pending(hold.id, PostPendingRequest(), key())
    with pytest.raises(errors.AccountFrozen):
        await ledger.postings.reverse(posted.id, ReversalRequest(), key())
    # What is held may still be let go: a void moves nothing.
    await ledger.postings.void_pending(held_too.id, VoidRequest(), key())
    assert (await ledger.accounts.balance(wallet)).posted.balance == 90

    account, changed = await ledger.accounts.update(wallet, AccountPatch(status="active"))
    assert changed and account.status == "active"
    await ledger.postings.post_pending(hold.id, PostPendingRequest(), key())
    assert (await ledger.accounts.balance(wallet)).posted.balance == 60

    recorded = await changes_of(ledger, wallet)
    assert [(c.field, c.old_value, c.new_value) for c in recorded] == [
        ("status", "active", "frozen"),
        ("status", "frozen", "active"),
    ]
    assert recorded[0].reason == "fraud review #12" and recorded[1].reason is None


async def test_only_an_empty_account_closes_and_a_closed_one_never_changes(ledger):
    bank, wallet = await open_account(ledger), await open_account(ledger, normal_side="credit")
    await ledger.postings.post(move(bank, wallet, 100), key())
    hold = (await ledger.postings.post(move(wallet, bank, 100, pending=True), key())).transaction
    with pytest.raises(errors.AccountNotEmpty) as caught:
        await ledger.accounts.update(wallet, AccountPatch(status="closed"))
    assert caught.value.details["posted_credits"] == 100
    await ledger.postings.post_pending(hold.id, PostPendingRequest(), key())
    # Zero posted, nothing held: it may close, for good.
    account, _ = await ledger.accounts.update(wallet, AccountPatch(status="closed"))
    assert account.status == "closed"
    for patch in (
        AccountPatch(status="active"),
        AccountPatch(metadata={"a": 1}),
        AccountPatch(hot=True),
    ):
        with pytest.raises(errors.AccountClosed):
            await ledger.accounts.update(wallet, patch)
    with pytest.raises(errors.AccountClosed):
        await ledger.postings.post(move(bank, wallet, 1), key())
    assert [c.field for c in await changes_of(ledger, wallet)] == ["status"]


async def test_a_close_racing_postings_never_leaves_a_closed_account_holding_money(ledger):
    for _ in range(5):
        bank, wallet = await open_account(ledger), await open_account(ledger, normal_side="credit")
        outcomes = await asyncio.gather(
            *(ledger.postings.post(move(bank, wallet, 1), key()) for _ in range(3)),
            ledger.accounts.update(wallet, AccountPatch(status="closed")),
            return_exceptions=True,
        )
        *posts, close = outcomes
        account = await ledger.accounts.get(wallet)
        balance = (await ledger.accounts.balance(wallet)).posted.balance
        assert balance == sum(not isinstance(p, BaseException) for p in posts)
        if account.status == "closed":
            assert balance == 0 and all(isinstance(p, errors.AccountClosed) for p in posts)
        else:
            assert isinstance(close, errors.AccountNotEmpty), close


async def test_metadata_merges_and_an_unchanged_patch_records_nothing(ledger):
    account_id = await open_account(ledger)
    patch = AccountPatch(metadata={"owner": "ada", "tier": {"level": 1, "since": 2020}})
    account, changed = await ledger.accounts.update(account_id, patch)
    assert changed and account.metadata == patch.metadata
    account, changed = await ledger.accounts.update(
        account_id, AccountPatch(metadata={"owner": None, "tier": {"level": 2}})
    )
    assert account.metadata == {"tier": {"level": 2, "since": 2020}}
    _, changed = await ledger.accounts.update(account_id, AccountPatch(metadata={"owner": None}))
    assert not changed
    recorded = await changes_of(ledger, account_id)
    assert [c.field for c in recorded] == ["metadata", "metadata"]
    assert recorded[1].old_value == patch.metadata
    with pytest.raises(errors.NothingToChange):
        await ledger.accounts.update(account_id, AccountPatch())


async def test_a_limit_is_added_only_where_the_balance_keeps_it(ledger):
    bank = await open_account(ledger)
    wallet = await open_account(ledger, normal_side="credit")
    await ledger.postings.post(move(bank, wallet, 50), key())
    await ledger.postings.post(move(wallet, bank, 80), key())  # overdrawn by 30
    no_overdraft = AccountPatch(flags=FlagsPatch(debits_must_not_exceed_credits=True))
    with pytest.raises(errors.LimitExceeded) as caught:
        await ledger.accounts.update(wallet, no_overdraft)
    assert caught.value.details["shortfall"] == 30
    assert (await ledger.accounts.get(wallet)).flags == AccountFlags()
    await ledger.postings.post(move(bank, wallet, 40), key())
    account, _ = await ledger.accounts.update(wallet, no_overdraft)
    assert account.flags.debits_must_not_exceed_credits
    with pytest.raises(errors.LimitExceeded):
        await ledger.postings.post(move(wallet, bank, 11), key())
    # Removing a limit is always allowed; a limited account cannot be hot.
    with pytest.raises(errors.HotAccountLimited):
        await ledger.accounts.update(wallet, AccountPatch(hot=True))
    both = AccountPatch(flags=FlagsPatch(credits_must_not_exceed_debits=True))
    with pytest.raises(errors.InvalidAccount):
        await ledger.accounts.update(wallet, both)
    account, _ = await ledger.accounts.update(
        wallet, AccountPatch(flags=FlagsPatch(debits_must_not_exceed_credits=False), hot=True)
    )
    assert account.hot and account.flags == AccountFlags()
    await ledger.postings.post(move(wallet, bank, 11), key())
    assert [c.field for c in await changes_of(ledger, wallet)] == [
        "debits_must_not_exceed_credits",
        "hot",
        "debits_must_not_exceed_credits",
    ]


async def test_a_hot_account_closes_only_once_its_deltas_sum_to_nothing(ledger):
    bank, fees = await open_account(ledger), await open_account(ledger, hot=True)
    await ledger.postings.post(move(bank, fees, 7), key())
    with pytest.raises(errors.AccountNotEmpty):
        await ledger.accounts.update(fees, AccountPatch(status="closed"))
    await ledger.postings.post(move(fees, bank, 7), key())
    account, _ = await ledger.accounts.update(fees, AccountPatch(status="closed"))
    assert account.status == "closed" and account.hot
