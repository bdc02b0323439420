"""`ledger keys` and `ledger audit export` as an operator runs them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from support.ids import fresh_id

# End to end, more than about ten seconds: not in `pytest -m "not slow"`.
pytestmark = pytest.mark.slow


def ledger(*args: str, database_url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ledger.cli", *args, "--database-url", database_url],
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_keys_made_listed_and_revoked_from_the_command_line(database_url, client):
    name = fresh_id("ops")
    made = ledger(
        "keys", "create", "--name", name, "--client", "ops", "--scopes",
        "accounts:read,audit:read", "--accounts", "ops:", database_url=database_url,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip().splitlines()[-1]
    key_id = key.split("_")[1]
    assert key.startswith(f"lk_{key_id}_")
    auth = {"Authorization": f"Bearer {key}"}
    assert (await client.get("/accounts", headers=auth)).status_code == 200
    assert (await client.get("/accounts/elsewhere", headers=auth)).status_code == 403

    listed = ledger("keys", "list", database_url=database_url)
    line = next(line for line in listed.stdout.splitlines() if line.startswith(key_id))
    assert name in line and "accounts:read,audit:read" in line and "accounts=ops:" in line
    assert key not in listed.stdout

    refused = ledger(
        "keys", "create", "--name", "x", "--client", "c", "--scopes", "accounts:drop",
        database_url=database_url,
    )  # fmt: skip
    assert refused.returncode == 2 and "unknown scope 'accounts:drop'" in refused.stderr

    revoked = ledger("keys", "revoke", key_id, database_url=database_url)
    assert revoked.returncode == 0 and f"key {key_id} revoked" in revoked.stdout
    assert ledger("keys", "revoke", "nosuchkey", database_url=database_url).returncode == 1

    exported = ledger("audit", "export", database_url=database_url)
    assert exported.returncode == 0, exported.stderr
    rows = [json.loads(line) for line in exported.stdout.splitlines()]
    mine = [r for r in rows if r["target"] == key_id]
    assert [(r["action"], r["outcome"]) for r in mine] == [
        ("key.create", "created"),
        ("key.revoke", "revoked"),
    ]
    assert all(r["key_name"].startswith("cli:") and r["key_id"] is None for r in mine)
    times = [r["occurred_at"] for r in rows]
    assert times == sorted(times)
    since = mine[1]["occurred_at"]
    later = ledger("audit", "export", "--from", since, database_url=database_url)
    later_rows = [json.loads(line) for line in later.stdout.splitlines()]
    assert later_rows and all(r["occurred_at"] >= since for r in later_rows)
    assert mine[1] in later_rows and mine[0] not in later_rows
