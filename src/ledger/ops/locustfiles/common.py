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
  LEDGER_SEEDED       set: the accounts exist already (`ledger bench` seeds them)
  LEDGER_STEP_USERS   set: use the step-load shape: add this many users...
  LEDGER_STEP_SECONDS ...every this many seconds (default 10)...
  LEDGER_MAX_USERS    ...up to this many (default 200)...
  LEDGER_DURATION     ...for at most this many seconds (default 60)...
  LEDGER_P99_MS       ...stopping once a step's p99 passes this (default 50)...
  LEDGER_MAX_ERRORS   ...or its error ratio passes this (default 0.01).

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

from locust import LoadTestShape, events
from locust.runners import WorkerRunner

ACCOUNTS = int(os.environ.get("LEDGER_ACCOUNTS", "1000"))
ACK_LOG = os.environ.get("LEDGER_ACK_LOG")
ATTEMPTS = 4
HOT_ACCOUNT = "load-fees"
AUTHORIZATION = {"Authorization": f"Bearer {os.environ.get('LEDGER_API_KEY', '')}"}
_ack_lock = threading.Lock()


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


_acks: list[str] = []
ACK_BATCH = 200


def record(key: str, transaction_id: str) -> None:
    """Note an acknowledged posting. Lines are kept and appended a batch at
    a time, each batch in one write() to a file opened for appending, so the
    workers' lines never interleave; an open and a write per posting cost
    the load generator CPU the services could use."""
    if ACK_LOG:
        with _ack_lock:
            _acks.append(f"{key} {transaction_id} {time.time():.3f}\n")
            if len(_acks) >= ACK_BATCH:
                _flush_acks_locked()


def _flush_acks_locked() -> None:
    if _acks and ACK_LOG:
        fd = os.open(ACK_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            data = "".join(_acks).encode()
            while data:
                data = data[os.write(fd, data) :]
        finally:
            os.close(fd)
        _acks.clear()


@events.test_stop.add_listener
@events.quitting.add_listener
def _flush_acks(**_kwargs) -> None:
    with _ack_lock:
        _flush_acks_locked()


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


class StepLoad(LoadTestShape):
    """Raise the users by a step every few seconds until a step's p99 passes
    the latency target or its errors pass the limit (the knee), or the
    duration or the user limit is reached."""

    step_users = int(os.environ.get("LEDGER_STEP_USERS", "0") or 0)
    step_seconds = float(os.environ.get("LEDGER_STEP_SECONDS", "10"))
    max_users = int(os.environ.get("LEDGER_MAX_USERS", "200"))
    duration = float(os.environ.get("LEDGER_DURATION", "60"))
    p99_ms = float(os.environ.get("LEDGER_P99_MS", "50"))
    max_errors = float(os.environ.get("LEDGER_MAX_ERRORS", "0.01"))

    def __init__(self) -> None:
        super().__init__()
        self.step = -1
        self.mark = (0, 0)
        self.stopped = False

    def tick(self):
        elapsed = self.get_run_time()
        if self.stopped or elapsed >= self.duration:
            return None
        step = int(elapsed // self.step_seconds)
        if step != self.step:
            if self.step >= 0 and self.step_broke():
                self.stopped = True
                return None
            self.step = step
            total = self.runner.stats.total
            self.mark = (total.num_requests, total.num_failures)
        users = min(self.max_users, self.step_users * (step + 1))
        return users, max(users, 1)

    def step_broke(self) -> bool:
        """The step that just ended went past the latency target or the
        error limit (its last seconds' p99, and its own error ratio)."""
        total = self.runner.stats.total
        requests = total.num_requests - self.mark[0]
        failures = total.num_failures - self.mark[1]
        p99 = total.get_current_response_time_percentile(0.99) or 0
        errors = failures / requests if requests else 0
        if p99 > self.p99_ms or errors > self.max_errors:
            print(
                f"step {self.step + 1}: p99 {p99:.0f} ms, errors {errors:.3f}: past the target, "
                "stopping",
                flush=True,
            )
            return True
        return False


STEP_LOAD = StepLoad.step_users > 0
