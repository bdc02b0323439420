"""What every load shape shares: the nodes, the careful client, the record of
acknowledged postings, account seeding and the step-load shape.

Environment:
  LEDGER_API_KEY      the API key every request carries (`ledger bench` and
                      `ledger drill` pass the cluster's admin key)
and, all optional:
  LEDGER_TARGETS      comma-separated service URLs to spread over (default --host)
  LEDGER_ACCOUNTS     ordinary accounts to use (default 1000)
  LEDGER_ACK_LOG      file to append every acknowledged posting to, as
                      "<idempotency key> <transaction id> <unix time>" lines
  LEDGER_REQUEST_LOG  file to append every request to, as "<end unix time>
                      <latency ms> <1 ok | 0 failed>" lines (`ledger.ops.figures`)
  LEDGER_SEEDED       set: the accounts exist already (`ledger bench` seeds them)
  LEDGER_STEP_USERS   set: use the step-load shape of `step_load.py`, with
                      its own settings and logs

A careful payment client: every posting has its own Idempotency-Key, and on a
connection error or a 5xx the same request with the same key goes to the
next service node, up to four times. Only 201 and 200 (a replay) count as
acknowledged; every failed attempt still counts as a failure in the figures.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import threading
import time
import urllib.request
import uuid

import gevent
from locust import events
from locust.runners import MasterRunner, WorkerRunner

ACCOUNTS = int(os.environ.get("LEDGER_ACCOUNTS", "1000"))
ACK_LOG = os.environ.get("LEDGER_ACK_LOG")
ATTEMPTS = 4
HOT_ACCOUNT = "load-fees"
AUTHORIZATION = {"Authorization": f"Bearer {os.environ.get('LEDGER_API_KEY', '')}"}


def targets(host: str | None) -> list[str]:
    listed = os.environ.get("LEDGER_TARGETS", "")
    urls = [u.strip().rstrip("/") for u in listed.split(",") if u.strip()]
    return urls or [(host or "http://127.0.0.1:8000").rstrip("/")]


def account_id(i: int) -> str:
    return f"load-{i}"


def random_accounts(n: int = 2) -> list[str]:
    return [account_id(i) for i in random.sample(range(ACCOUNTS), n)]


def new_key() -> str:
    return uuid.uuid4().hex


class Appender:
    """Lines kept and appended to a file a batch at a time, each batch in
    one write() to a file opened for appending, so that the workers' lines
    never interleave (an open and a write per line would cost the load
    generator CPU the services could use). A batch goes out once it has
    `batch` lines or is `seconds` old, so that readers during the run (the
    step-load shape) are at most that far behind."""

    def __init__(self, path: str | None, batch: int = 200, seconds: float = 0.2) -> None:
        self.path = path
        self.batch = batch
        self.seconds = seconds
        self.lines: list[str] = []
        self.flushed = time.monotonic()
        self.lock = threading.Lock()

    def add(self, line: str) -> None:
        if not self.path:
            return
        with self.lock:
            self.lines.append(line)
            if len(self.lines) >= self.batch or time.monotonic() - self.flushed >= self.seconds:
                self._flush_locked()

    def flush(self) -> None:
        with self.lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        self.flushed = time.monotonic()
        if not (self.lines and self.path):
            return
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            data = "".join(self.lines).encode()
            while data:
                data = data[os.write(fd, data) :]
        finally:
            os.close(fd)
        self.lines.clear()


ACKS = Appender(ACK_LOG)
# Every request's end, latency and success: the figures' one source
# (`ledger.ops.figures`).
REQUESTS = Appender(os.environ.get("LEDGER_REQUEST_LOG"))


def record(key: str, transaction_id: str) -> None:
    """Note an acknowledged posting."""
    ACKS.add(f"{key} {transaction_id} {time.time():.3f}\n")


@events.request.add_listener
def _record_request(response_time, exception, **_kwargs) -> None:
    REQUESTS.add(f"{time.time():.4f} {response_time:.2f} {0 if exception else 1}\n")


@events.init.add_listener
def _flush_on_a_cadence(environment, **_kwargs) -> None:
    """Workers flush both logs at least every 0.2 s even when no request
    ends, so the step-load shape judges a step on all of it."""
    if isinstance(environment.runner, MasterRunner):
        return

    def flusher() -> None:
        while True:
            gevent.sleep(0.2)
            ACKS.flush()
            REQUESTS.flush()

    gevent.spawn(flusher)


@events.test_stop.add_listener
@events.quitting.add_listener
def _flush_logs(**_kwargs) -> None:
    ACKS.flush()
    REQUESTS.flush()


def seed(base: str, accounts: int = ACCOUNTS, api_key: str | None = None) -> None:
    """Create the accounts and the hot fee account (idempotent: an existing
    identical account answers 200), with `api_key` (default LEDGER_API_KEY)."""
    authorization = {"Authorization": f"Bearer {api_key}"} if api_key else AUTHORIZATION
    bodies = [
        {"id": account_id(i), "currency": "USD", "scale": 2, "normal_side": "debit"}
        for i in range(accounts)
    ]
    bodies.append(
        {"id": HOT_ACCOUNT, "currency": "USD", "scale": 2, "normal_side": "credit", "hot": True}
    )
    for body in bodies:
        request = urllib.request.Request(
            f"{base}/accounts",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **authorization},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status in (200, 201), response.status


@events.test_start.add_listener
def _seed_accounts(environment, **_kwargs) -> None:
    if os.environ.get("LEDGER_SEEDED") or isinstance(environment.runner, WorkerRunner):
        return
    seed(targets(environment.host)[0])


class CarefulClient:
    """Mixed into a FastHttpUser: send to the nodes in turn, and retry a
    posting with the same key on the next node when the answer is unknown."""

    default_headers = AUTHORIZATION  # FastHttpUser sends them with every request

    def on_start(self) -> None:
        nodes = targets(self.environment.host)
        self.nodes = itertools.cycle(random.sample(nodes, len(nodes)))

    def send(self, path: str, body: dict | None, key: str | None, name: str):
        """POST `body` (with `key`) and return the JSON answer when it was
        acknowledged (201 or 200), else None."""
        headers = {"Idempotency-Key": key} if key else {}
        for _attempt in range(ATTEMPTS):
            node = next(self.nodes)
            with self.client.post(
                f"{node}{path}",
                json=body if body is not None else {},
                headers=headers,
                name=name,
                catch_response=True,
            ) as response:
                if response.status_code in (200, 201):
                    response.success()
                    answer = response.json()
                    if key:
                        record(key, answer["id"])
                    return answer
                if response.status_code == 409 and name.endswith(("/post", "/void")):
                    # Lost to an expiry or another resolution: the ledger said
                    # so, which is an answer, not a failure.
                    response.success()
                    return None
                response.failure(f"{response.status_code}: {(response.text or '')[:200]}")
                if response.status_code != 0 and response.status_code < 500:
                    return None  # refused: retrying will not help
                # Outcome unknown: the same key on another node either finds
                # the posting or writes it once.
        return None

    def send_batch(self, items: list[dict], name: str = "/transactions/batch") -> int:
        """POST a non-atomic batch; on a connection error or a 5xx the same
        batch again on the next node (each item's key makes that safe).
        Records every acknowledged item; returns how many were."""
        body = {"transactions": items}
        for _attempt in range(ATTEMPTS):
            node = next(self.nodes)
            with self.client.post(
                f"{node}/transactions/batch", json=body, name=name, catch_response=True
            ) as response:
                if response.status_code == 200:
                    results = response.json()["results"]
                    acked = 0
                    for item, result in zip(items, results, strict=True):
                        if result["status"] in (200, 201):
                            record(item["idempotency_key"], result["transaction"]["id"])
                            acked += 1
                    if acked == len(items):
                        response.success()
                    else:
                        refused = next(r for r in results if r["status"] not in (200, 201))
                        response.failure(f"item refused: {refused['problem']['detail'][:200]}")
                    return acked
                response.failure(f"{response.status_code}: {(response.text or '')[:200]}")
                if response.status_code != 0 and response.status_code < 500:
                    return 0
        return 0

    def read(self, path: str, name: str) -> None:
        node = next(self.nodes)
        self.client.get(f"{node}{path}", name=name)


def transfer_body(debit: str, credit: str, amount: int) -> dict:
    return {
        "entries": [
            {"account_id": debit, "direction": "debit", "amount": amount},
            {"account_id": credit, "direction": "credit", "amount": amount},
        ]
    }


STEP_LOAD = int(os.environ.get("LEDGER_STEP_USERS", "0") or 0) > 0
if STEP_LOAD:
    from step_load import StepLoad  # noqa: F401 - the shapes import it from here
