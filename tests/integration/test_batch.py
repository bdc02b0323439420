"""Batches of postings on the real database, through both wire paths (two
messages on PostgreSQL, four as on CockroachDB): a batch gives the same
outcomes and balances as the same postings sent one by one; a hot account
gets one delta per batch; identical batches racing write each item once."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from ledger.app import build_ledger, build_store
from ledger.engine import access, errors
from ledger.engine.batch_model import BatchItem, NewBatch
from ledger.engine.model import AccountFlags, IdempotencyKey, Leg, NewTransaction
from support.ids import fresh_id
from support.ledger import open_account

TESTS = access.system("tests", client_id="tests")
LIMITED = AccountFlags(debits_must_not_exceed_credits=True)


@pytest.fixture(params=["two messages", "four messages"])
def either_ledger(request, ledger, four_message_ledger):
    return ledger if request.param == "two messages" else four_message_ledger


async def open_set(ledger) -> list[str]:
    """Five accounts: a funding account, two limited wallets, a shop and a
    hot fee account."""
    return [
        await open_account(ledger),
        await open_account(ledger, normal_side="credit", flags=LIMITED),
        await open_account(ledger, normal_side="credit", flags=LIMITED),
        await open_account(ledger, normal_side="credit"),
        await open_account(ledger, normal_side="credit", hot=True),
    ]


# An item: (debit index, credit index, amount, fee to the hot account,
# pending, unbalanced by one, unknown account).
items = st.lists(
    st.tuples(
        st.integers(0, 3),
        st.integers(0, 3),
        st.integers(1, 400),
        st.integers(0, 5),
        st.booleans(),
        st.integers(0, 9).map(lambda n: n == 0),
        st.integers(0, 9).map(lambda n: n == 0),
    ).filter(lambda t: t[0] != t[1]),
    min_size=1,
    max_size=25,
)


def transaction(accounts: list[str], spec) -> NewTransaction:
    debit, credit, amount, fee, pending, unbalanced, unknown = spec
    legs = [
        Leg(accounts[debit], "debit", amount + fee + unbalanced),
        Leg("no-such-account" if unknown else accounts[credit], "credit", amount),
    ]
    if fee:
        legs.append(Leg(accounts[4], "credit", fee))
    return NewTransaction(legs, pending=pending)


def outcome_of(result_or_error) -> str:
    if isinstance(result_or_error, Exception):
        return result_or_error.code
    return "replayed" if result_or_error.replayed else "created"


async def totals(ledger, accounts: list[str]) -> list[list[int]]:
    found = []
    for account_id in accounts:
        b = await ledger.accounts.balance(account_id)
        found.append([b.posted.debits, b.posted.credits, b.pending.debits, b.pending.credits])
    return found


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(specs=items, funding=st.integers(0, 800))
async def test_a_batch_is_the_same_postings_one_by_one(either_ledger, specs, funding):
    ledger = either_ledger
    one_by_one, batched = await open_set(ledger), await open_set(ledger)
    for accounts in (one_by_one, batched):
        for wallet in accounts[1:3]:
            fund = NewTransaction(
                [Leg(accounts[0], "debit", funding + 1), Leg(wallet, "credit", funding + 1)]
            )
            await ledger.postings.post(fund, IdempotencyKey("tests", fresh_id("k")), TESTS)
    singles = []
    for spec in specs:
        try:
            key = IdempotencyKey("tests", fresh_id("k"))
            singles.append(await ledger.postings.post(transaction(one_by_one, spec), key, TESTS))
        except Exception as exc:
            singles.append(exc)
    cmd = NewBatch(
        [
            BatchItem(fresh_id("k"), t.entries, pending=t.pending)
            for t in (transaction(batched, spec) for spec in specs)
        ]
    )
    result = await ledger.batches.post(cmd, None, TESTS)
    batch_outcomes = [o.error.code if o.error else "created" for o in result.outcomes]
    assert batch_outcomes == [outcome_of(s) for s in singles]
    assert await totals(ledger, batched) == await totals(ledger, one_by_one)
    report = await ledger.verify()
    assert report.ok, report


async def test_a_hot_account_gets_one_delta_per_batch(either_ledger, owner_engine):
    ledger = either_ledger
    accounts = await open_set(ledger)
    cmd = NewBatch(
        [
            BatchItem(
                fresh_id("k"), transaction(accounts, (0, 3, 10, 1, False, False, False)).entries
            )
            for _ in range(40)
        ]
    )
    result = await ledger.batches.post(cmd, None, TESTS)
    assert all(o.transaction is not None for o in result.outcomes)
    async with owner_engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT posted_credits FROM hot_deltas WHERE account_id = :a"),
                {"a": accounts[4]},
            )
        ).all()
    assert [r.posted_credits for r in rows] == [40]
    assert (await ledger.accounts.balance(accounts[4])).posted.credits == 40


async def test_identical_batches_racing_write_each_item_once(either_ledger, owner_engine):
    ledger = either_ledger
    accounts = await open_set(ledger)
    specs = [(0, 3, n + 1, n % 3, n % 4 == 0, False, False) for n in range(30)]
    cmd = NewBatch(
        [
            BatchItem(fresh_id("k"), t.entries, pending=t.pending)
            for t in (transaction(accounts, s) for s in specs)
        ]
    )
    results = await asyncio.gather(*[ledger.batches.post(cmd, None, TESTS) for _ in range(4)])
    ids = {tuple(o.transaction.id for o in r.outcomes) for r in results}
    assert len(ids) == 1, "every racing batch answers the same transactions"
    assert sum(not o.replayed for r in results for o in r.outcomes) == len(specs)
    async with owner_engine.connect() as conn:
        stored = (
            await conn.execute(
                text("SELECT count(*) FROM transactions WHERE id = ANY(CAST(:ids AS uuid[]))"),
                {"ids": list(next(iter(ids)))},
            )
        ).scalar_one()
    assert stored == len(specs)
    assert (await ledger.accounts.balance(accounts[3])).posted.credits == sum(
        s[2] for s in specs if not s[4]
    )


async def test_an_atomic_batch_racing_itself_commits_once(either_ledger):
    ledger = either_ledger
    accounts = await open_set(ledger)
    cmd = NewBatch(
        [
            BatchItem(
                fresh_id("k"), transaction(accounts, (0, 3, 5, 0, False, False, False)).entries
            )
            for _ in range(5)
        ],
        atomic=True,
    )
    key = IdempotencyKey("tests", fresh_id("batch"))
    results = await asyncio.gather(*[ledger.batches.post(cmd, key, TESTS) for _ in range(3)])
    assert len({tuple(o.transaction.id for o in r.outcomes) for r in results}) == 1
    assert sorted(r.replayed for r in results) == [False, True, True]
    assert (await ledger.accounts.balance(accounts[3])).posted.credits == 25


@pytest.mark.parametrize("atomic", [False, True])
async def test_a_batch_whose_commit_answer_was_lost_tells_its_own_items_from_replays(
    ledger, database_url, settings, owner_engine, atomic
):
    """The batch commits, then its connection dies before the answer comes
    back (an ambiguous commit). The retry finds every key taken: the item
    that replayed an earlier posting is still a replay (200), the item the
    lost commit wrote is new (201), and nothing is written twice."""
    accounts = await open_set(ledger)
    earlier = BatchItem(
        fresh_id("k"), transaction(accounts, (0, 3, 7, 0, False, False, False)).entries
    )
    await ledger.batches.post(NewBatch([earlier]), None, TESTS)
    fresh = BatchItem(
        fresh_id("k"), transaction(accounts, (0, 3, 11, 0, False, False, False)).entries
    )
    store = build_store(database_url, settings, application_name="batch-lost-answer")
    lost = []
    plain_run = store.run

    async def run(work):
        async def answer_lost(unit):
            result = await work(unit)
            committed = unit.finish

            async def finish():
                await committed()
                if not lost:
                    lost.append(unit.attempt.committing)
                    lost_answer = psycopg.OperationalError("the answer to COMMIT was lost")
                    raise sa_exc.OperationalError("COMMIT", {}, lost_answer)

            unit.finish = finish
            return result

        return await plain_run(answer_lost)

    store.run = run
    key = IdempotencyKey("tests", fresh_id("batch")) if atomic else None
    try:
        result = await build_ledger(store, settings).batches.post(
            NewBatch([earlier, fresh], atomic=atomic), key, TESTS
        )
    finally:
        await store.dispose()
    assert lost
    assert [o.replayed for o in result.outcomes] == [True, False]
    assert (await ledger.accounts.balance(accounts[3])).posted.credits == 7 + 11


async def open_mixed_set(ledger) -> list[str]:
    """Six accounts for arbitrary legs: a USD funding account, a limited
    USD wallet, a USD shop, a hot USD fee account, and two EUR accounts."""
    return [
        await open_account(ledger),
        await open_account(ledger, normal_side="credit", flags=LIMITED),
        await open_account(ledger, normal_side="credit"),
        await open_account(ledger, normal_side="credit", hot=True),
        await open_account(ledger, currency="EUR"),
        await open_account(ledger, currency="EUR", normal_side="credit", flags=LIMITED),
    ]


# A leg: (account index, 6 = an unknown account), direction, amount, and
# the currency it states (None, or one that may not be the account's).
any_legs = st.lists(
    st.tuples(
        st.integers(0, 6),
        st.sampled_from(["debit", "credit"]),
        st.integers(1, 300),
        st.sampled_from([None, None, None, "USD", "EUR"]),
    ),
    min_size=2,
    max_size=6,
)


def legs_on(accounts: list[str], spec) -> list[Leg]:
    return [
        Leg(accounts[i] if i < 6 else "no-such-account", d, amount, currency=currency)
        for i, d, amount, currency in spec
    ]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(spec=any_legs, pending=st.booleans(), funding=st.integers(0, 400))
async def test_a_batch_of_one_is_a_single_posting_for_any_legs(ledger, spec, pending, funding):
    """Any legs at all, balanced or not, known or not, within limits or not:
    a batch of one gives the single posting's outcome (the same error with
    the same facts, or the same entries) and the same balances."""
    single_set, batch_set = await open_mixed_set(ledger), await open_mixed_set(ledger)
    for accounts in (single_set, batch_set):
        for source, wallet in ((0, 1), (4, 5)):
            amount = funding + 1
            fund = [Leg(accounts[source], "debit", amount), Leg(accounts[wallet], "credit", amount)]
            await ledger.postings.post(
                NewTransaction(fund), IdempotencyKey("tests", fresh_id("k")), TESTS
            )
    names = {a: f"#{i}" for s in (single_set, batch_set) for i, a in enumerate(s)}
    try:
        single = await ledger.postings.post(
            NewTransaction(legs_on(single_set, spec), pending=pending),
            IdempotencyKey("tests", fresh_id("k")),
            TESTS,
        )
    except errors.LedgerError as exc:
        single = exc
    result = await ledger.batches.post(
        NewBatch([BatchItem(fresh_id("k"), legs_on(batch_set, spec), pending=pending)]),
        None,
        TESTS,
    )
    [item] = result.outcomes

    def anonymous(text: str) -> str:
        for account, name in names.items():
            text = text.replace(account, name)
        return text

    if isinstance(single, Exception):
        assert item.error is not None, f"the single posting was refused: {single.detail}"
        assert type(item.error) is type(single)
        assert anonymous(item.error.detail) == anonymous(single.detail)
        assert {k: anonymous(str(v)) for k, v in item.error.details.items()} == {
            k: anonymous(str(v)) for k, v in single.details.items()
        }
    else:
        assert item.error is None, f"the batch refused what a single posting took: {item.error}"
        shape = lambda t: (  # noqa: E731
            t.pending,
            [(names[e.account_id], e.direction, e.amount, e.currency) for e in t.entries],
        )
        assert shape(item.transaction) == shape(single.transaction)
    assert await totals(ledger, batch_set) == await totals(ledger, single_set)
