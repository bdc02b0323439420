"""Load shape `replays`: a third of the postings are sent twice with the same
Idempotency-Key, as a client that timed out and retried would. The second
answer must be the same transaction, marked as a replay.

    locust -f src/ledger/ops/locustfiles/replays.py --headless -u 20 -r 5 -t 60s

See `common.py` for the environment.
"""

from __future__ import annotations

import random

import common
from locust import task
from locust.contrib.fasthttp import FastHttpUser

if common.STEP_LOAD:
    from common import StepLoad  # noqa: F401 - Locust finds the shape here


class RetryingClient(common.CarefulClient, FastHttpUser):
    host = "http://127.0.0.1:8000"

    @task
    def transfer(self) -> None:
        debit, credit = common.random_accounts(2)
        body = common.transfer_body(debit, credit, random.randint(1, 10_000))
        key = common.new_key()
        first = self.send("/transactions", body, key, "/transactions")
        if first is None or random.random() >= 1 / 3:
            return
        node = next(self.nodes)
        with self.client.post(
            f"{node}/transactions",
            json=body,
            headers={"Idempotency-Key": key},
            name="/transactions (replay)",
            catch_response=True,
        ) as response:
            replayed = response.headers.get("Idempotent-Replayed") == "true"
            if response.status_code == 200 and replayed and response.json()["id"] == first["id"]:
                response.success()
            else:
                response.failure(
                    f"replay answered {response.status_code} {(response.text or '')[:200]}"
                )
