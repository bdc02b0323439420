"""Reads on a replica, with a real streaming standby of the test server
(pg_basebackup of the session's embedded PostgreSQL, one per test): stale
reads, statements, search and the trial balance are served by it and say
how far behind it is; a read needing data it has not replayed yet goes to
the primary; a stopped standby sends reads to the primary (or, when the
operator says so, answers 503), and postings never notice."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest

from ledger.ops.files import free_port
from ledger.ops.nodes import pg, system_user
from support.ids import fresh_id
from support.ledger import app_client


class Standby:
    def __init__(self, home: Path, primary_url: str, database: str) -> None:
        query = parse_qs(urlsplit(primary_url).query)
        host, port = query["host"][0], query["port"][0]
        self.dir = home / "standby"
        user = system_user()
        if user:
            shutil.chown(home, user, user)
        pg("pg_basebackup", "-h", host, "-p", port, "-U", "postgres", "-D", str(self.dir),
           "-R", "-X", "stream", "-c", "fast")  # fmt: skip
        self.port = free_port()
        with open(self.dir / "postgresql.auto.conf", "a") as conf:
            conf.write(
                f"port = {self.port}\nunix_socket_directories = '{self.dir}'\n"
                "hot_standby = on\nlisten_addresses = ''\n"
            )
        self.url = f"postgresql+psycopg://postgres@/{database}?host={self.dir}&port={self.port}"
        # As `ledger cluster up` gives it: both servers, a standby preferred.
        self.both = (
            f"postgresql+psycopg://postgres@/{database}?host={self.dir}:{self.port}"
            f"&host={host}:{port}&target_session_attrs=prefer-standby"
        )
        self.start()

    def start(self) -> None:
        pg("pg_ctl", "-D", str(self.dir), "-l", str(self.dir / "log"), "-w", "start")

    def stop(self) -> None:
        pg("pg_ctl", "-D", str(self.dir), "-m", "immediate", "-w", "stop", check=False)

    def sql(self, statement: str):
        dsn = f"host={self.dir} port={self.port} user=postgres dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            return conn.execute(statement).fetchall()


@pytest.fixture
def standby(server_url, database_url, tmp_path_factory):
    if os.environ.get("LEDGER_TEST_DATABASE_URL"):
        pytest.skip("a standby is made of the embedded test server only")
    database = urlsplit(database_url).path.lstrip("/")
    made = Standby(tmp_path_factory.mktemp("replica"), server_url, database)
    yield made
    made.stop()


async def account(client, side: str) -> str:
    body = {"id": fresh_id(), "currency": "USD", "scale": 2, "normal_side": side}
    assert (await client.post("/accounts", json=body)).status_code == 201
    return body["id"]


async def post(client, a: str, b: str, amount: int) -> dict:
    body = {
        "entries": [
            {"account_id": a, "direction": "debit", "amount": amount},
            {"account_id": b, "direction": "credit", "amount": amount},
        ],
        "metadata": {"ref": a},
    }
    made = await client.post("/transactions", json=body, headers={"Idempotency-Key": fresh_id()})
    assert made.status_code == 201, made.text
    return made.json()


async def caught_up(client, transaction_id: str) -> None:
    for _ in range(200):
        got = await client.get(f"/transactions/{transaction_id}", params={"consistency": "stale"})
        if got.status_code == 200:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the standby never replayed the posting")


async def test_reads_that_feed_no_decision_are_served_by_the_replica(
    standby, database_url, settings, admin_key
):
    reads = dataclasses.replace(settings, read_database_url=standby.url)
    async with app_client(database_url, reads, admin_key) as client:
        a, b = await account(client, "debit"), await account(client, "credit")
        posted = await post(client, a, b, 700)
        await caught_up(client, posted["id"])
        stale = await client.get(f"/accounts/{a}/balance", params={"consistency": "stale"})
        assert stale.headers["ledger-read-from"] == "replica"
        assert int(stale.headers["ledger-replica-lag-ms"]) >= 0
        assert stale.json()["posted"]["debits"] == 700
        # A decision's read is never the replica's.
        strong = await client.get(f"/accounts/{a}/balance")
        assert "ledger-read-from" not in strong.headers
        found = await client.get("/transactions", params={"metadata.ref": a})
        assert found.headers["ledger-read-from"] == "replica"
        assert [t["id"] for t in found.json()["items"]] == [posted["id"]]
        trial = await client.get("/reports/trial-balance", params={"currency": "USD"})
        assert trial.headers["ledger-read-from"] in ("replica", "primary")
        assert all(t["balanced"] for t in json.loads(trial.content)["totals"])


async def test_a_replica_behind_serves_stale_reads_but_not_a_period_it_has_not_replayed(
    standby, database_url, settings, admin_key, ledger
):
    reads = dataclasses.replace(settings, read_database_url=standby.url)
    async with app_client(database_url, reads, admin_key) as client:
        a, b = await account(client, "debit"), await account(client, "credit")
        first = await post(client, a, b, 100)
        await caught_up(client, first["id"])
        standby.sql("SELECT pg_wal_replay_pause()")
        try:
            start = await ledger.store.now()
            await post(client, a, b, 50)
            await asyncio.sleep(0.2)
            end = await ledger.store.now()
            stale = await client.get(f"/accounts/{a}/balance", params={"consistency": "stale"})
            assert stale.headers["ledger-read-from"] == "replica"
            assert int(stale.headers["ledger-replica-lag-ms"]) > 0
            assert stale.json()["posted"]["debits"] == 100  # the replica's, behind
            statement = await client.get(
                f"/accounts/{a}/statement",
                params={"from": start.isoformat(), "to": end.isoformat()},
            )
            assert statement.status_code == 200, statement.text
            assert statement.headers["ledger-read-from"] == "primary"
            assert [e["amount"] for e in statement.json()["entries"]] == [50]
        finally:
            standby.sql("SELECT pg_wal_replay_resume()")


async def test_a_stopped_replica_sends_reads_to_the_primary_or_503_and_writes_never_notice(
    standby, database_url, settings, admin_key
):
    standby.stop()
    reads = dataclasses.replace(settings, read_database_url=standby.url)
    async with app_client(database_url, reads, admin_key) as client:
        a, b = await account(client, "debit"), await account(client, "credit")
        posted = await post(client, a, b, 10)
        got = await client.get(f"/transactions/{posted['id']}", params={"consistency": "stale"})
        assert got.status_code == 200 and got.headers["ledger-read-from"] == "primary"
    strict = dataclasses.replace(reads, read_fallback=False)
    async with app_client(database_url, strict, admin_key) as client:
        await post(client, a, b, 11)
        got = await client.get(f"/accounts/{a}/balance", params={"consistency": "stale"})
        assert got.status_code == 503 and "retry-after" in got.headers
        assert "replica" in got.json()["detail"]


async def test_reads_go_back_to_the_standby_once_it_is_up_again(
    standby, database_url, settings, admin_key
):
    """Through a URL naming both servers, as the cluster's: while the
    standby is down, its connections reach the primary; once it is back,
    reads find it again."""
    reads = dataclasses.replace(settings, read_database_url=standby.both)
    async with app_client(database_url, reads, admin_key) as client:
        a, b = await account(client, "debit"), await account(client, "credit")
        posted = await post(client, a, b, 12)
        await caught_up(client, posted["id"])
        standby.stop()
        url = f"/transactions/{posted['id']}"
        got = await client.get(url, params={"consistency": "stale"})
        assert got.status_code == 200 and got.headers["ledger-read-from"] == "primary"
        standby.start()
        for _ in range(200):
            got = await client.get(url, params={"consistency": "stale"})
            if got.headers.get("ledger-read-from") == "replica":
                break
            await asyncio.sleep(0.05)
        assert got.status_code == 200 and got.headers["ledger-read-from"] == "replica"
