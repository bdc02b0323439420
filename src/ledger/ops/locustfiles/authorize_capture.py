"""Load shape `authorize_capture`: card payments. Each user authorises (a
pending transaction with a short timeout), then captures it in full (60%),
captures less (15%), voids it (15%), or lets it expire (10%: the sweeper in
the services voids it after its timeout).

    locust -f src/ledger/ops/locustfiles/authorize_capture.py --headless -u 20 -r 5 -t 60s

A capture that loses to the expiry gets 409, which is the ledger's answer,
not a failure. See `common.py` for the environment.
"""

from __future__ import annotations

import random

import common
from locust import task
from locust.contrib.fasthttp import FastHttpUser

if common.STEP_LOAD:
    from common import StepLoad  # noqa: F401 - Locust finds the shape here

TIMEOUT_SECONDS = 5


class CardPayment(common.CarefulClient, FastHttpUser):
    host = "http://127.0.0.1:8000"

    @task
    def authorise_then_resolve(self) -> None:
        card, merchant = common.random_accounts(2)
        amount = random.randint(100, 10_000)
        body = common.transfer_body(card, merchant, amount)
        body.update(pending=True, timeout_seconds=TIMEOUT_SECONDS)
        hold = self.send("/transactions", body, common.new_key(), "/transactions (authorise)")
        if hold is None:
            return
        roll = random.random()
        path = f"/transactions/{hold['id']}"
        if roll < 0.60:
            self.send(f"{path}/post", {}, common.new_key(), "/transactions/{id}/post")
        elif roll < 0.75:
            partial = {"amount": random.randint(1, amount)}
            self.send(f"{path}/post", partial, common.new_key(), "/transactions/{id}/post")
        elif roll < 0.90:
            self.send(f"{path}/void", {}, common.new_key(), "/transactions/{id}/void")
        # else: left to expire
