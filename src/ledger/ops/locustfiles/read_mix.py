"""Load shape `read_mix`: balances and history pages alongside postings, as
a dashboard and a payment API share one ledger: per posting, about two
balance reads and one history page. `LEDGER_BENCH_READS=replica` (the
default) asks for them with consistency=stale, which the services serve from
their read replica; `primary` reads strongly, from the primary.

    locust -f src/ledger/ops/locustfiles/read_mix.py --headless -u 20 -r 5 -t 60s

See `common.py` for the environment.
"""

from __future__ import annotations

import os
import random

import common
from locust import task
from locust.contrib.fasthttp import FastHttpUser

CONSISTENCY = (
    "consistency=stale"
    if os.environ.get("LEDGER_BENCH_READS", "replica") == "replica"
    else "consistency=strong"
)

if common.STEP_LOAD:
    from common import StepLoad  # noqa: F401 - Locust finds the shape here


class PaymentsAndDashboards(common.CarefulClient, FastHttpUser):
    host = "http://127.0.0.1:8000"

    @task(1)
    def transfer(self) -> None:
        debit, credit = common.random_accounts(2)
        body = common.transfer_body(debit, credit, random.randint(1, 10_000))
        self.send("/transactions", body, common.new_key(), "/transactions")

    @task(2)
    def balance(self) -> None:
        (account,) = common.random_accounts(1)
        self.read(f"/accounts/{account}/balance?{CONSISTENCY}", "/accounts/{id}/balance")

    @task(1)
    def history(self) -> None:
        (account,) = common.random_accounts(1)
        self.read(f"/accounts/{account}/entries?limit=20&{CONSISTENCY}", "/accounts/{id}/entries")
