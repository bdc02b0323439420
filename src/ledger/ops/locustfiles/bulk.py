"""Load shape `bulk`: settlement-style batches, `LEDGER_BATCH_SIZE` (default
100) two-leg transfers between random accounts per `POST
/transactions/batch`, each with its own idempotency key.

    locust -f src/ledger/ops/locustfiles/bulk.py --headless -u 4 -r 2 -t 60s \\
        --host http://127.0.0.1:8000

Postings per second count the acknowledged items (not requests); the
latency figures are the whole batch's. See `common.py` for the environment.
"""

from __future__ import annotations

import os
import random

import common
from locust import task
from locust.contrib.fasthttp import FastHttpUser

if common.STEP_LOAD:
    from common import StepLoad  # noqa: F401 - Locust finds the shape here

BATCH_SIZE = int(os.environ.get("LEDGER_BATCH_SIZE", "100"))


class Settlement(common.CarefulClient, FastHttpUser):
    host = "http://127.0.0.1:8000"

    @task
    def settle(self) -> None:
        items = []
        for _ in range(BATCH_SIZE):
            debit, credit = common.random_accounts(2)
            body = common.transfer_body(debit, credit, random.randint(1, 10_000))
            items.append({"idempotency_key": common.new_key(), **body})
        self.send_batch(items)
