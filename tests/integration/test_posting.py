"""Posting, idempotency and reversal through the engine and the real store."""

import asyncio
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from sqlalchemy import text

from ledger.engine import errors
from ledger.engine.model import (
    AccountFlags,
    Leg,
    NewTransaction,
    ReversalRequest,
)
from support.ids import fresh_id, key
from support.ledger import open_account


@pytest.fixture(params=["batched", "four messages"])
def ledger(request, ledger, four_message_ledger):
    """Every test here runs on both posting paths: two messages with
    BEGIN and COMMIT folded in (PostgreSQL), and four (CockroachDB)."""
    return ledger if request.param == "batched" else four_message_ledger


def transfer(debit: str, credit: str, amount: int, **kw) -> NewTransaction:
    return NewTransaction(
        entries=[Leg(debit, "debit", amount), Leg(credit, "credit", amount)], **kw
    )


async def count_rows(owner_engine, table: str, where: str = "", params=None) -> int:
    async with owner_engine.connect() as conn:
        sql = f"SELECT count(*) FROM {table} {where}"
        return (await conn.execute(text(sql), params or {})).scalar_one()


async def test_a_posting_moves_both_balances(ledger):
    cash = await open_account(ledger, normal_side="debit")
    revenue = await open_account(ledger, normal_side="credit")
    result = await ledger.postings.post(transfer(cash, revenue, 250), key())
    assert not result.replayed
    assert [(e.account_id, e.direction, e.amount) for e in result.transaction.entries] == [
        (cash, "debit", 250),
        (revenue, "credit", 250),
    ]
    assert (await ledger.accounts.balance(cash)).posted.balance == 250
    assert (await ledger.accounts.balance(revenue)).posted.balance == 250
    stored = await ledger.postings.get(result.transaction.id)
    assert stored == result.transaction


async def test_same_key_same_body_replays_without_writing(ledger, owner_engine):
    a, b = await open_account(ledger), await open_account(ledger)
    k = key()
    first = await ledger.postings.post(transfer(a, b, 10), k)
    again = await ledger.postings.post(transfer(a, b, 10), k)
    assert again.replayed and again.transaction == first.transaction
    assert await count_rows(owner_engine, "entries", "WHERE account_id = :a", {"a": a}) == 1
    assert (await ledger.accounts.balance(a)).posted.debits == 10


async def test_same_key_other_body_is_a_conflict_naming_the_key(ledger):
    a, b = await open_account(ledger), await open_account(ledger)
    k = key()
    await ledger.postings.post(transfer(a, b, 10), k)
    with pytest.raises(errors.IdempotencyKeyReused) as caught:
        await ledger.postings.post(transfer(a, b, 11), k)
    assert caught.value.details["idempotency_key"] == k.key


async def test_keys_are_scoped_per_client(ledger):
    a, b = await open_account(ledger), await open_account(ledger)
    k = fresh_id("key")
    one = await ledger.postings.post(transfer(a, b, 10), key(k, client="one"))
    two = await ledger.postings.post(transfer(a, b, 10), key(k, client="two"))
    assert one.transaction.id != two.transaction.id
    assert not two.replayed


async def test_fifty_identical_requests_at_once_post_exactly_once(ledger, owner_engine):
    a, b = await open_account(ledger), await open_account(ledger)
    k = key()
    results = await asyncio.gather(*(ledger.postings.post(transfer(a, b, 7), k) for _ in range(50)))
    assert len({r.transaction.id for r in results}) == 1
    assert len({msgspec.json.encode(r.transaction) for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert await count_rows(owner_engine, "entries", "WHERE account_id = :a", {"a": a}) == 1
    assert (await ledger.accounts.balance(b)).posted.credits == 7


async def test_a_refused_posting_writes_nothing(ledger, owner_engine):
    wallet = await open_account(
        ledger, normal_side="credit", flags=AccountFlags(debits_must_not_exceed_credits=True)
    )
    other = await open_account(ledger)
    before = await count_rows(owner_engine, "transactions")
    k = key()
    with pytest.raises(errors.LimitExceeded):
        await ledger.postings.post(transfer(wallet, other, 1), k)
    assert await count_rows(owner_engine, "transactions") == before
    assert (await ledger.accounts.balance(wallet)).posted.debits == 0
    # The key was not consumed by the refusal: a corrected request may use it.
    await ledger.postings.post(transfer(other, wallet, 1), k)


async def test_unknown_account_and_currency_mismatch_are_refused(ledger):
    usd = await open_account(ledger, currency="USD")
    eur = await open_account(ledger, currency="EUR")
    with pytest.raises(errors.UnknownAccount):
        await ledger.postings.post(transfer(usd, fresh_id("ghost"), 5), key())
    with pytest.raises(errors.UnbalancedTransaction):
        await ledger.postings.post(transfer(usd, eur, 5), key())
    with pytest.raises(errors.CurrencyMismatch):
        await ledger.postings.post(
            NewTransaction([Leg(usd, "debit", 5, "EUR"), Leg(eur, "credit", 5, "EUR")]), key()
        )


async def test_reversal_swaps_legs_references_the_original_and_happens_once(ledger, owner_engine):
    a, b = await open_account(ledger), await open_account(ledger, normal_side="credit")
    original = (await ledger.postings.post(transfer(a, b, 40), key())).transaction
    reversal = await ledger.postings.reverse(original.id, ReversalRequest(), key())
    assert reversal.transaction.reverses == original.id
    assert [(e.account_id, e.direction) for e in reversal.transaction.entries] == [
        (a, "credit"),
        (b, "debit"),
    ]
    assert (await ledger.accounts.balance(a)).posted.balance == 0
    assert (await ledger.postings.get(original.id)).reversed_by == reversal.transaction.id
    with pytest.raises(errors.AlreadyReversed):
        await ledger.postings.reverse(original.id, ReversalRequest(), key())
    # The original's row is untouched: same entries, same header.
    again = await ledger.postings.get(original.id)
    assert again.entries == original.entries and again.created_at == original.created_at


async def test_racing_reversals_commit_once(ledger):
    a, b = await open_account(ledger), await open_account(ledger)
    original = (await ledger.postings.post(transfer(a, b, 3), key())).transaction
    outcomes = await asyncio.gather(
        *(ledger.postings.reverse(original.id, ReversalRequest(), key()) for _ in range(8)),
        return_exceptions=True,
    )
    assert sum(not isinstance(o, Exception) for o in outcomes) == 1
    assert all(isinstance(o, errors.AlreadyReversed) for o in outcomes if isinstance(o, Exception))
    assert (await ledger.accounts.balance(a)).posted.balance == 0


async def test_reversing_an_unknown_transaction_is_not_found(ledger):
    with pytest.raises(errors.TransactionNotFound):
        await ledger.postings.reverse(
            "00000000-0000-4000-8000-000000000000", ReversalRequest(), key()
        )
    with pytest.raises(errors.TransactionNotFound):
        await ledger.postings.get("not-a-uuid")


async def test_balance_as_of_a_time_sums_the_journal_up_to_it(ledger):
    a, b = await open_account(ledger), await open_account(ledger)
    first = (await ledger.postings.post(transfer(a, b, 100), key())).transaction
    await asyncio.sleep(0.01)
    second = (await ledger.postings.post(transfer(a, b, 5), key())).transaction
    between = first.created_at + (second.created_at - first.created_at) / 2
    assert (await ledger.accounts.balance(a, as_of=between)).posted.balance == 100
    assert (await ledger.accounts.balance(a, as_of=second.created_at)).posted.balance == 105
    before = first.created_at - timedelta(seconds=1)
    assert (await ledger.accounts.balance(a, as_of=before)).posted.balance == 0
    # The future is not history yet: refused, not answered as the present.
    with pytest.raises(errors.InvalidValue):
        await ledger.accounts.balance(a, as_of=datetime.now(UTC) + timedelta(days=1))


async def test_history_pages_cover_every_entry_once_in_order(ledger):
    a, b = await open_account(ledger), await open_account(ledger)
    for amount in range(1, 8):
        await ledger.postings.post(transfer(a, b, amount), key())
    seen, cursor = [], None
    while True:
        page = await ledger.accounts.entries(a, cursor, 3)
        seen.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert [e.amount for e in seen] == list(range(1, 8))
    assert len({e.entry_id for e in seen}) == 7
    with pytest.raises(errors.InvalidCursor):
        await ledger.accounts.entries(a, "!!!", 3)
    with pytest.raises(errors.InvalidValue):
        await ledger.accounts.entries(a, None, 0)


async def test_account_creation_is_idempotent_for_identical_attributes(ledger):
    from ledger.engine.model import NewAccount

    cmd = NewAccount(id=fresh_id(), currency="JPY", scale=0, normal_side="credit")
    first, created = await ledger.accounts.create(cmd)
    again, created_again = await ledger.accounts.create(cmd)
    assert created and not created_again and again == first
    with pytest.raises(errors.AccountExists):
        await ledger.accounts.create(
            NewAccount(id=cmd.id, currency="USD", scale=2, normal_side="credit")
        )


async def test_list_accounts_pages_in_id_order(ledger):
    for _ in range(3):
        await open_account(ledger)
    page = await ledger.accounts.page(None, 2)
    assert len(page.items) == 2 and page.items[0].id < page.items[1].id
    assert page.next_cursor is not None
    nxt = await ledger.accounts.page(page.next_cursor, 2)
    assert nxt.items and all(x.id > page.items[-1].id for x in nxt.items)


async def test_a_replay_returns_the_original_even_when_its_limit_is_now_used_up(ledger):
    funding = await open_account(ledger)
    wallet = await open_account(
        ledger, normal_side="credit", flags=AccountFlags(debits_must_not_exceed_credits=True)
    )
    shop = await open_account(ledger)
    await ledger.postings.post(transfer(funding, wallet, 10), key())
    k = key()
    spend = await ledger.postings.post(transfer(wallet, shop, 10), k)
    # The wallet is now empty: posting the same spend anew would be refused,
    # but a retry of the original request must get the original answer.
    again = await ledger.postings.post(transfer(wallet, shop, 10), k)
    assert again.replayed and again.transaction.id == spend.transaction.id
    with pytest.raises(errors.LimitExceeded):
        await ledger.postings.post(transfer(wallet, shop, 10), key())
