"""The raw-database baseline of `ledger bench` runs the posting path's own
statements: rendered from them, it is valid SQL on the real server, and what
it writes is books that balance, like a posting through the service."""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest

from ledger.engine.model import NewAccount
from ledger.ops import pgbench
from ledger.storage import dialect


def test_the_script_is_rendered_from_the_posting_statements():
    script = pgbench.script("p-")
    # The header insert with the locking read, then one statement for the
    # entries and both balances: the service's two statements, no others.
    assert script.count("INSERT INTO transactions") == 1
    assert "FOR UPDATE" in script and "INSERT INTO entries" in script
    assert "UPDATE account_balances SET" in script
    # Every variable it uses is one the script sets (or pgbench's -D).
    variables = set(re.findall(r"(?<!:):([a-z][a-z0-9_]*)", script))
    assert variables == set(re.findall(r"\\set (\w+)", script)) | {"naccounts"}


def test_a_posting_parameter_without_an_expression_stops_the_rendering(monkeypatch):
    monkeypatch.delitem(pgbench._HEADER, "fingerprint")
    with pytest.raises(KeyError, match="fingerprint"):
        pgbench.script("p-")


async def test_pgbench_posts_balanced_transactions_with_the_script(ledger, database_url):
    if dialect.dialect_name(database_url) != dialect.POSTGRESQL:
        pytest.skip("pgbench speaks PostgreSQL's protocol")
    prefix = f"pgb{uuid.uuid4().hex[:6]}-"
    for i in range(5):
        await ledger.accounts.create(
            NewAccount(id=f"{prefix}{i}", currency="USD", scale=2, normal_side="debit")
        )
    connection, database = pgbench.connection_args(database_url)
    result = await asyncio.to_thread(
        pgbench.run, connection, database, 5, prefix, 2, transactions=10
    )
    assert result["tps"] > 0
    balances = [await ledger.accounts.balance(f"{prefix}{i}") for i in range(5)]
    debits = sum(b.posted.debits for b in balances)
    credits = sum(b.posted.credits for b in balances)
    # 20 postings of 1 to 1000 among these five accounts, and nothing else.
    assert 20 <= debits == credits <= 20 * 1000
    assert (await ledger.verify()).ok
