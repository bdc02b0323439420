"""Many parallel transfers among a few limited accounts: the final balances
are exactly what the accepted postings imply, and no limit is ever broken."""

import asyncio
import random
from collections import defaultdict

from ledger.engine import errors
from ledger.engine.model import AccountFlags, IdempotencyKey, Leg, NewTransaction
from support.ids import fresh_id
from support.ledger import open_account


async def test_parallel_transfers_among_limited_accounts(ledger):
    rng = random.Random(7)
    funding = await open_account(ledger, normal_side="debit")
    wallets = [
        await open_account(
            ledger, normal_side="credit", flags=AccountFlags(debits_must_not_exceed_credits=True)
        )
        for _ in range(3)
    ]
    for w in wallets:
        await ledger.postings.post(
            NewTransaction([Leg(funding, "debit", 100), Leg(w, "credit", 100)]),
            IdempotencyKey("tests", fresh_id("fund")),
        )

    async def one_transfer():
        src, dst = rng.sample(wallets, 2)
        amount = rng.randint(1, 60)
        cmd = NewTransaction([Leg(src, "debit", amount), Leg(dst, "credit", amount)])
        try:
            await ledger.postings.post(cmd, IdempotencyKey("tests", fresh_id("t")))
            return src, dst, amount
        except errors.LimitExceeded:
            return None

    outcomes = await asyncio.gather(*(one_transfer() for _ in range(120)))
    accepted = [o for o in outcomes if o is not None]
    assert accepted, "some transfers must fit"
    assert len(accepted) < len(outcomes), "some transfers must have been refused"

    expected = defaultdict(lambda: 100)
    for src, dst, amount in accepted:
        expected[src] -= amount
        expected[dst] += amount
    for w in wallets:
        balance = await ledger.accounts.balance(w)
        assert balance.posted.balance == expected[w]
        assert balance.posted.debits <= balance.posted.credits
    assert sum(expected[w] for w in wallets) == 300
    assert (await ledger.verify()).ok
