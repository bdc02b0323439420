"""Hot and ordinary accounts give identical balances for identical journals.

Hypothesis draws a journal (batches of transfers, holds, posts in part and
voids among four accounts) and posts it into two books: in one every account
is ordinary, in the other two of the four are hot and a compactor with no
grace races each batch. After every batch, every account's posted, pending
and available balances are the same in both books, now and as of the end of
every earlier batch, and both books verify clean.
"""

from __future__ import annotations

import asyncio
import uuid

from hypothesis import HealthCheck, given
from hypothesis import settings as run_settings
from hypothesis import strategies as st

from ledger.app import build_ledger, build_store
from ledger.engine.model import (
    IdempotencyKey,
    Leg,
    NewAccount,
    NewTransaction,
    PostPendingRequest,
    VoidRequest,
)

ACCOUNTS = 4
HOT = {0, 1}

transfer = st.tuples(
    st.just("transfer"),
    st.integers(0, ACCOUNTS - 1),
    st.integers(1, ACCOUNTS - 1),
    st.integers(1, 10_000),
)
hold = st.tuples(
    st.just("hold"),
    st.integers(0, ACCOUNTS - 1),
    st.integers(1, ACCOUNTS - 1),
    st.integers(1, 10_000),
)
resolve = st.tuples(
    st.sampled_from(["post", "post_part", "void"]),
    st.integers(0, 2**16),
    st.integers(1, 99),
    st.just(0),
)
batches = st.lists(
    st.lists(st.one_of(transfer, transfer, hold, resolve), min_size=1, max_size=5),
    min_size=1,
    max_size=6,
)


class Book:
    def __init__(self, ledger, prefix: str, hot: set[int]) -> None:
        self.ledger = ledger
        self.ids = [f"{prefix}-{i}" for i in range(ACCOUNTS)]
        self.hot = hot
        self.holds: list[str] = []  # pending transaction ids, in order placed
        self.keys = 0

    def key(self) -> IdempotencyKey:
        self.keys += 1
        return IdempotencyKey("hot-props", f"{self.ids[0]}-{self.keys}")

    async def open(self) -> None:
        for i, account_id in enumerate(self.ids):
            await self.ledger.accounts.create(
                NewAccount(
                    id=account_id,
                    currency="USD",
                    scale=2,
                    normal_side="debit" if i % 2 else "credit",
                    hot=i in self.hot,
                )
            )

    async def apply(self, op):
        """A transfer or hold between accounts a and a + b, or a resolution
        of this book's hold number a (b: the percentage a partial post takes)."""
        kind, a, b, amount = op
        if kind in ("transfer", "hold"):
            debit, credit = self.ids[a], self.ids[(a + b) % ACCOUNTS]
            legs = [Leg(debit, "debit", amount), Leg(credit, "credit", amount)]
            result = await self.ledger.postings.post(
                NewTransaction(legs, pending=kind == "hold"), self.key()
            )
            return result.transaction.id if kind == "hold" else None
        target = self.holds[a]
        if kind == "void":
            await self.ledger.postings.void_pending(target, VoidRequest(), self.key())
        elif kind == "post":
            await self.ledger.postings.post_pending(target, PostPendingRequest(), self.key())
        else:
            held = (await self.ledger.postings.get(target)).entries[0].amount
            await self.ledger.postings.post_pending(
                target, PostPendingRequest(amount=max(1, held * b // 100)), self.key()
            )
        return None

    async def balances(self, as_of=None) -> list[tuple]:
        out = []
        for account_id in self.ids:
            b = await self.ledger.accounts.balance(account_id, as_of)
            out.append((b.posted, b.pending, b.available))
        return out


def test_hot_and_ordinary_accounts_agree_on_every_journal(database_url, settings):
    # The test is synchronous (Hypothesis drives it); each example runs its
    # own event loop and its own engine.
    @given(journal=batches)
    @run_settings(
        max_examples=15,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    def check(journal):
        asyncio.run(run(journal))

    async def run(journal):
        store = build_store(database_url, settings, application_name="ledger-hot-props")
        ledger = build_ledger(store, settings)
        try:
            prefix = uuid.uuid4().hex[:8]
            plain = Book(ledger, f"o{prefix}", set())
            hot = Book(ledger, f"h{prefix}", HOT)
            await plain.open()
            await hot.open()
            open_holds: list[int] = []  # indexes into each book's holds
            times = []  # (time in the plain book, time in the hot book)
            for batch in journal:
                # Resolutions aim at distinct open holds, so both books
                # resolve the same ones whatever the order within the batch.
                picked, ops = [], []
                for op in batch:
                    if op[0] in ("transfer", "hold"):
                        ops.append(op)
                    elif open_holds:
                        index = open_holds[op[1] % len(open_holds)]
                        if index not in picked:
                            picked.append(index)
                            ops.append((op[0], index, op[2], 0))
                placed = len(plain.holds)
                for book in (plain, hot):
                    stop = asyncio.Event()

                    async def compactor(stop=stop):
                        while not stop.is_set():
                            await ledger.accounts.compact_hot(
                                min_deltas=1, max_age_seconds=0, grace_seconds=0, batch=100
                            )
                            await asyncio.sleep(0)

                    running = asyncio.create_task(compactor())
                    results = await asyncio.gather(*(book.apply(op) for op in ops))
                    stop.set()
                    await running
                    book.holds.extend(r for r in results if r is not None)
                open_holds = [i for i in open_holds if i not in picked]
                open_holds.extend(range(placed, len(plain.holds)))
                now_plain = await plain.balances()
                now_hot = await hot.balances()
                assert now_plain == now_hot
                times.append(
                    (
                        (await ledger.accounts.balance(plain.ids[0])).as_of,
                        (await ledger.accounts.balance(hot.ids[0])).as_of,
                    )
                )
                for then_plain, then_hot in times:
                    assert await plain.balances(then_plain) == await hot.balances(then_hot)
            assert (await ledger.verify()).ok
        finally:
            await store.engine.dispose()

    check()
