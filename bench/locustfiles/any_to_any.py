"""Load shape `any_to_any`: two-leg transfers between random accounts.

    locust -f bench/locustfiles/any_to_any.py --headless -u 20 -r 5 -t 60s \
        --host http://127.0.0.1:8000

Environment:
  LEDGER_TARGETS    comma-separated service URLs to spread over (default: --host)
  LEDGER_ACCOUNTS   accounts to transfer between (default 1000), created if missing
  LEDGER_ACK_LOG    file to append every acknowledged posting to, as
                    "<idempotency key> <transaction id>" lines (default: none)

Each user behaves as a careful payment client: every posting has its own
Idempotency-Key, and on a connection error or a 5xx the same request, with the
same key, is sent to the next service node, up to three times. Only 201 and
200 (a replay) count as acknowledged.
"""

from __future__ import annotations

import itertools
import os
import random
import threading
import uuid

from locust import events, task
from locust.contrib.fasthttp import FastHttpUser

ACCOUNTS = int(os.environ.get("LEDGER_ACCOUNTS", "1000"))
ACK_LOG = os.environ.get("LEDGER_ACK_LOG")
ATTEMPTS = 3
_ack_lock = threading.Lock()


def targets(host: str | None) -> list[str]:
    listed = os.environ.get("LEDGER_TARGETS", "")
    urls = [u.strip().rstrip("/") for u in listed.split(",") if u.strip()]
    return urls or [(host or "http://127.0.0.1:8000").rstrip("/")]


def account_id(i: int) -> str:
    return f"load-{i}"


def record(key: str, transaction_id: str) -> None:
    if ACK_LOG:
        with _ack_lock, open(ACK_LOG, "a") as f:
            f.write(f"{key} {transaction_id}\n")


@events.test_start.add_listener
def seed_accounts(environment, **_kwargs) -> None:
    """Create the accounts (idempotent: an existing identical account is a 200)."""
    import urllib.request

    base = targets(environment.host)[0]
    for i in range(ACCOUNTS):
        body = (
            f'{{"id": "{account_id(i)}", "currency": "USD", "scale": 2, "normal_side": "debit"}}'
        ).encode()
        request = urllib.request.Request(
            f"{base}/accounts", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status in (200, 201), response.status


class Transfer(FastHttpUser):
    # FastHttpUser needs a host; the requests below use absolute URLs.
    host = "http://127.0.0.1:8000"

    def on_start(self) -> None:
        nodes = targets(self.environment.host)
        self.nodes = itertools.cycle(random.sample(nodes, len(nodes)))

    @task
    def transfer(self) -> None:
        a, b = random.sample(range(ACCOUNTS), 2)
        amount = random.randint(1, 10_000)
        key = uuid.uuid4().hex
        body = {
            "entries": [
                {"account_id": account_id(a), "direction": "debit", "amount": amount},
                {"account_id": account_id(b), "direction": "credit", "amount": amount},
            ]
        }
        for _attempt in range(ATTEMPTS):
            node = next(self.nodes)
            with self.client.post(
                f"{node}/transactions",
                json=body,
                headers={"Idempotency-Key": key},
                name="/transactions",
                catch_response=True,
            ) as response:
                if response.status_code in (200, 201):
                    record(key, response.json()["id"])
                    response.success()
                    return
                response.failure(f"{response.status_code}: {(response.text or '')[:200]}")
                if response.status_code != 0 and response.status_code < 500:
                    return  # the ledger refused the request: retrying will not help
                # Outcome unknown: the same key on another node either finds
                # the posting or writes it once. The failed attempt still
                # counts as a failure in the statistics.
