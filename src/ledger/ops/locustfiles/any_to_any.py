"""Load shape `any_to_any`: two-leg transfers between random accounts.

    locust -f src/ledger/ops/locustfiles/any_to_any.py --headless -u 20 -r 5 -t 60s \
        --host http://127.0.0.1:8000

See `common.py` for the environment it reads (nodes, accounts, the record
of acknowledged postings, the step-load shape) and how it retries.
"""

from __future__ import annotations

import random

import common
from locust import task
from locust.contrib.fasthttp import FastHttpUser

if common.STEP_LOAD:
    from common import StepLoad  # noqa: F401 - Locust finds the shape here


class Transfer(common.CarefulClient, FastHttpUser):
    # FastHttpUser needs a host; the requests use absolute URLs.
    host = "http://127.0.0.1:8000"

    @task
    def transfer(self) -> None:
        debit, credit = common.random_accounts(2)
        body = common.transfer_body(debit, credit, random.randint(1, 10_000))
        self.send("/transactions", body, common.new_key(), "/transactions")
