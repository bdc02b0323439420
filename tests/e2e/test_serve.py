"""`ledger serve` as a real process: it answers on 127.0.0.1, drains on
SIGTERM (no accepted request is cut off, every acknowledged posting is kept)
and stops its embedded PostgreSQL cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from support.ids import fresh_id
from support.processes import ledger_cmd, start

# End to end, more than about ten seconds: not in `pytest -m "not slow"`.
pytestmark = pytest.mark.slow

READY = re.compile(
    r"ready (?P<total>[\d.]+) s after the process started \(imports (?P<imports>[\d.]+).*\)"
)


@pytest.fixture
def served(tmp_path: Path, database_url: str, admin_key: str):
    """The service on a fresh embedded database (its admin key made at
    start-up and read from the file it was written to), or on the external
    test database (which has keys already: the session's admin key)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    external = os.environ.get("LEDGER_TEST_DATABASE_URL")
    where = ["--database-url", database_url] if external else ["--data-dir", str(tmp_path / "pg")]
    process, base = start(tmp_path, where, env)
    key = admin_key if external else (tmp_path / "admin-key").read_text().strip()
    yield process, base, tmp_path, where, env, key
    if process.poll() is None:
        process.kill()


async def test_serve_drains_on_sigterm_and_keeps_every_acknowledged_posting(served):
    process, base, tmp_path, where, env, key = served
    startup = (tmp_path / "serve.log").read_text()
    if "--data-dir" in where:
        assert str(tmp_path / "pg") in startup, "the start-up line names the data directory"
    # No keep-alive: each request is its own connection, so a request is
    # either accepted by the server or refused, never raced on an idle socket.
    limits = httpx.Limits(max_keepalive_connections=0)
    auth = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits, headers=auth) as client:
        assert (await client.get("/ready")).status_code == 200
        a, b = fresh_id(), fresh_id()
        for account_id in (a, b):
            r = await client.post(
                "/accounts",
                json={"id": account_id, "currency": "USD", "scale": 2, "normal_side": "debit"},
            )
            assert r.status_code == 201

        answered_before_signal = asyncio.Event()
        done = 0
        signalled_at: list[float] = []

        async def one(i: int):
            nonlocal done
            try:
                response = await client.post(
                    "/transactions",
                    headers={"Idempotency-Key": f"{a}-{i}"},
                    json={
                        "entries": [
                            {"account_id": a, "direction": "debit", "amount": i + 1},
                            {"account_id": b, "direction": "credit", "amount": i + 1},
                        ]
                    },
                )
            except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError) as exc:
                # Never answered: refused, or reset before the server read it.
                return ("unanswered", type(exc).__name__, time.monotonic())
            done += 1
            if done >= 5:
                answered_before_signal.set()
            return ("answered", response, time.monotonic())

        tasks = [asyncio.create_task(one(i)) for i in range(150)]
        await asyncio.wait_for(answered_before_signal.wait(), 30)
        signalled_at.append(time.monotonic())
        process.send_signal(signal.SIGTERM)
        outcomes = await asyncio.gather(*tasks)

    assert await asyncio.to_thread(process.wait, 60) == 0
    log = (tmp_path / "serve.log").read_text()
    assert "ledger: stopped" in log
    answered = [(r, t) for kind, r, t in outcomes if kind == "answered"]
    unanswered = [r for kind, r, _ in outcomes if kind == "unanswered"]
    assert all(r.status_code == 201 for r, _ in answered), [r.text for r, _ in answered]
    drained = [t for _, t in answered if t > signalled_at[0]]
    assert drained, "requests in flight at SIGTERM must still be answered"
    if "--data-dir" in where:
        pg_log = (tmp_path / "pg" / "log").read_text()
        assert "database system is shut down" in pg_log

    # Every acknowledged posting is in the journal, once; the books balance.
    verify = await asyncio.to_thread(
        subprocess.run,
        ledger_cmd("verify", "--json", *where),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    report = json.loads(verify.stdout)
    assert report["ok"]
    if "--data-dir" in where:
        assert len(answered) <= report["transactions"] <= len(answered) + len(unanswered)


@pytest.mark.skipif(
    bool(os.environ.get("LEDGER_TEST_DATABASE_URL")),
    reason="bootstrap needs a database without keys: the embedded one",
)
def test_serve_makes_an_admin_key_in_a_private_file_when_there_is_none(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    process, base = start(tmp_path, ["--data-dir", str(tmp_path / "pg")], env)
    try:
        path = tmp_path / "admin-key"
        key = path.read_text().strip()
        startup = (tmp_path / "serve.log").read_text()
        assert f"written to {path} (mode 0600)" in startup
        assert key not in startup, "the key itself is never printed"
        assert path.stat().st_mode & 0o777 == 0o600
        assert httpx.get(f"{base}/accounts").status_code == 401
        answer = httpx.get(f"{base}/keys", headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200, answer.text
        assert [k["name"] for k in answer.json()["items"]] == ["bootstrap"]
        # Where the start's time went, phase by phase, in one line.
        deadline = time.monotonic() + 10
        while not (ready := READY.search((tmp_path / "serve.log").read_text())):
            assert time.monotonic() < deadline, "no line says where the start went"
            time.sleep(0.05)
        total, imports = float(ready["total"]), float(ready["imports"])
        assert 0 < imports < total
        assert "embedded database" in ready.group(0) and "schema" in ready.group(0)
        # The service logs in as the writer role, never as the owner.
        assert logins(tmp_path / "pg") == {"ledger_writer"}
        assert "warning" not in startup
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    # Started again on the same database, it makes no second key.
    process, base = start(tmp_path, ["--data-dir", str(tmp_path / "pg")], env)
    try:
        assert "made admin key" not in (tmp_path / "serve.log").read_text()
        answer = httpx.get(f"{base}/keys", headers={"Authorization": f"Bearer {key}"})
        assert len(answer.json()["items"]) == 1
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)


@pytest.mark.skipif(
    bool(os.environ.get("LEDGER_TEST_DATABASE_URL")),
    reason="bootstrap needs a database without keys: the embedded one",
)
def test_serve_takes_the_admin_key_from_the_environment(tmp_path):
    from ledger.engine.access import new_key

    key_id, key = new_key()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["LEDGER_BOOTSTRAP_KEY"] = key
    process, base = start(tmp_path, ["--data-dir", str(tmp_path / "pg")], env)
    try:
        startup = (tmp_path / "serve.log").read_text()
        assert f"made admin key {key_id} from LEDGER_BOOTSTRAP_KEY" in startup
        assert key not in startup
        assert not (tmp_path / "admin-key").exists()
        answer = httpx.get(f"{base}/keys/{key_id}", headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200 and answer.json()["scopes"], answer.text
        assert "secret_sha256" not in answer.text and key not in answer.text
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)


def raw_request(base: str, head: bytes) -> bytes:
    """Send `head` as it is and read the answer until the server closes."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        # Refused before all of it was read: the answer is waiting all the same.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(head)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
        return answer


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        (b"X-Big: " + b"a" * 1_000_000 + b"\r\n", b"at most 16384 bytes"),
        (b"".join(b"X-H%d: v\r\n" % i for i in range(2000)), b"at most 100 header fields"),
    ],
)
def test_the_server_bounds_a_requests_head(tmp_path, database_url, extra, why):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    process, base = start(tmp_path, ["--database-url", database_url], env)
    try:
        answer = raw_request(base, b"GET /health HTTP/1.1\r\nHost: x\r\n" + extra + b"\r\n")
        status_line, _, rest = answer.partition(b"\r\n")
        assert status_line == b"HTTP/1.1 431 Request Header Fields Too Large", answer[:200]
        assert b"application/problem+json" in rest and why in rest
        # The service is fine, and an ordinary request with a few headers passes.
        ok = httpx.get(f"{base}/health", headers={f"X-H{i}": "v" for i in range(50)})
        assert ok.status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=30)


def logins(data_dir: Path) -> set[str]:
    """The database users the service's connections logged in as, read as
    the owner through the embedded server's socket."""
    import psycopg

    port = (data_dir / "postmaster.pid").read_text().splitlines()[3]
    dsn = f"host={data_dir} port={port} dbname=ledger user=postgres"
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT DISTINCT usename FROM pg_stat_activity "
            "WHERE datname = 'ledger' AND application_name LIKE 'ledger%'"
        ).fetchall()
    return {r[0] for r in rows}


def answers(raw: bytes) -> list[tuple[int, bytes]]:
    """The (status, body) of every HTTP/1.1 answer in `raw`, in order."""
    found = []
    while raw:
        head, _, raw = raw.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))
        found.append((status, raw[:length]))
        raw = raw[length:]
    return found


@pytest.fixture
def plain_server(tmp_path, database_url):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    process, base = start(tmp_path, ["--database-url", database_url], env)
    yield base
    process.terminate()
    process.wait(timeout=30)


def test_pipelined_requests_are_each_answered_in_order(plain_server):
    many = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" * 4999
    last = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    got = answers(raw_request(plain_server, many + last))
    assert len(got) == 5000 and {status for status, _ in got} == {200}


def test_requests_before_a_malformed_one_are_answered_and_written(plain_server, admin_key):
    auth = f"Authorization: Bearer {admin_key}\r\n".encode()
    accounts = [fresh_id("pipe"), fresh_id("pipe")]
    head = b"Host: x\r\nContent-Type: application/json\r\n" + auth

    def post(path: str, body: dict, key: str | None = None) -> bytes:
        data = json.dumps(body).encode()
        extra = f"Idempotency-Key: {key}\r\n".encode() if key else b""
        return (
            f"POST {path} HTTP/1.1\r\n".encode()
            + head
            + extra
            + f"Content-Length: {len(data)}\r\n\r\n".encode()
            + data
        )

    legs = [
        {"account_id": accounts[0], "direction": "debit", "amount": 5},
        {"account_id": accounts[1], "direction": "credit", "amount": 5},
    ]
    valid = [
        post("/accounts", {"id": a, "currency": "USD", "scale": 2, "normal_side": "debit"})
        for a in accounts
    ]
    valid += [post("/transactions", {"entries": legs}, fresh_id("k")) for _ in range(3)]
    valid += [b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"] * 5
    got = answers(raw_request(plain_server, b"".join(valid) + b"NOT HTTP AT ALL\r\n\r\n"))
    assert [status for status, _ in got] == [201, 201, 201, 201, 201, *[200] * 5, 400]
    posted = [json.loads(body)["id"] for _, body in got[2:5]]
    for transaction_id in posted:
        found = httpx.get(
            f"{plain_server}/transactions/{transaction_id}",
            headers={"Authorization": f"Bearer {admin_key}"},
        )
        assert found.status_code == 200, found.text
