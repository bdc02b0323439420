"""The continuous verifier: rounds of accounts recomputed from the journal
find a cached balance changed behind the service's back (and forget it once
repaired), several loops at once agree, and a verifier process killed with
SIGKILL mid-round leaves the database as it was: it only reads, in a
read-only snapshot."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text

from ledger import workers
from ledger.app import build_ledger, build_store
from ledger.engine.model import IdempotencyKey, Leg, NewTransaction
from ledger.storage.database import create_engine
from ledger.workers import verify_continuously
from support.database import new_database
from support.ids import fresh_id
from support.ledger import open_account


@pytest.fixture
async def books(server_url, settings):
    """A fresh database with 20 accounts (one hot) and postings between
    them: (ledger, owner engine, url, account ids)."""
    url = await asyncio.to_thread(new_database, server_url, "ledger_verifier")
    store = build_store(url, settings, application_name="ledger-verifier-test")
    ledger = build_ledger(store, settings)
    owner = create_engine(url, settings, role="", application_name="ledger-verifier-owner")
    ids = [await open_account(ledger) for _ in range(19)]
    hot = await open_account(ledger, normal_side="credit", hot=True)
    ids.append(hot)
    for n in range(40):
        debit, credit = ids[n % 19], ids[(n * 7 + 3) % 20]
        if debit == credit:
            continue
        await ledger.postings.post(
            NewTransaction([Leg(debit, "debit", n + 1), Leg(credit, "credit", n + 1)]),
            IdempotencyKey("tests", fresh_id("key")),
        )
    yield ledger, owner, url, sorted(ids), hot
    await store.dispose()
    await owner.dispose()


def gauge(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def until(check, seconds: float = 20.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("did not happen in time")


async def test_a_changed_balance_is_found_and_forgotten_once_repaired(books):
    ledger, owner, _, ids, hot = books
    # An ordinary account: a hot one's balance is its snapshot plus deltas,
    # not the balance row changed here.
    at = 11 if ids[11] != hot else 12
    victim = ids[at]
    checked_before = gauge("ledger_verify_accounts_checked_total")
    # Two loops at once, as two service processes would run them.
    loops = [asyncio.create_task(verify_continuously(ledger, 0.01, 7)) for _ in range(2)]
    try:
        await until(lambda: gauge("ledger_verify_accounts_checked_total") >= checked_before + 40)
        # The session's app runs its own verifier in this process, on another
        # database: the drifting set is judged by this database's victim.
        assert victim not in workers._DRIFTED
        async with owner.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE account_balances SET posted_debits = posted_debits + 1 "
                    "WHERE account_id = :a"
                ),
                {"a": victim},
            )
        await until(lambda: victim in workers._DRIFTED)
        assert gauge("ledger_verify_drift_accounts") >= 1
        check = await ledger.verify_sample(ids[at - 1], 3)
        assert check.checked == ids[at : at + 3] and check.drifted == [victim]
        async with owner.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE account_balances SET posted_debits = posted_debits - 1 "
                    "WHERE account_id = :a"
                ),
                {"a": victim},
            )
        await until(lambda: victim not in workers._DRIFTED)
        # A finished round is exported (how fast rounds go is the bench's to say).
        assert gauge("ledger_verify_last_success_timestamp_seconds") > 0
    finally:
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)


COUNTS = """
SELECT (SELECT count(*) FROM accounts) + (SELECT count(*) FROM transactions)
     + (SELECT count(*) FROM entries) + (SELECT sum(posted_debits + posted_credits)
       FROM account_balances) + (SELECT count(*) FROM hot_snapshots)
"""


async def test_a_verifier_killed_mid_round_leaves_the_database_as_it_was(books, settings):
    ledger, owner, url, _, _ = books
    async with owner.connect() as conn:
        before = (await conn.execute(text(COUNTS))).scalar_one()
    script = textwrap.dedent(
        f"""
        import asyncio
        from ledger.app import build_ledger, build_store
        from ledger.settings import Settings
        from ledger.workers import verify_continuously
        settings = Settings()
        store = build_store({url!r}, settings, application_name="ledger-verifier-victim")
        ledger = build_ledger(store, settings)

        async def main():
            first = await ledger.verify_sample(None, 3)
            print("running", len(first.checked), len(first.drifted), flush=True)
            await verify_continuously(ledger, 0.0, 3)

        asyncio.run(main())
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    victim = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, env=env, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert (await victim.stdout.readline()).strip() == b"running 3 0"
        await asyncio.sleep(1.5)  # rounds back to back: killed in the middle of one
    finally:
        victim.send_signal(signal.SIGKILL)
        await asyncio.wait_for(victim.wait(), 10)
    async with owner.connect() as conn:
        after = (await conn.execute(text(COUNTS))).scalar_one()
        # The killed process's sessions end as the server notices (no
        # transaction of it stays open holding a snapshot).
        for _ in range(200):
            open_now = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                        "'ledger-verifier-victim' AND state LIKE 'idle in transaction%'"
                    )
                )
            ).scalar_one()
            if not open_now:
                break
            await asyncio.sleep(0.05)
    assert after == before and open_now == 0
    assert (await ledger.verify()).ok


async def test_the_verifiers_gauges_are_on_metrics(client):
    text_ = (await client.get("/metrics")).text
    for name in (
        "ledger_verify_drift_accounts",
        "ledger_verify_last_success_timestamp_seconds",
        "ledger_verify_accounts_per_second",
        "ledger_verify_accounts_checked_total",
    ):
        assert f"\n{name}" in text_, name
