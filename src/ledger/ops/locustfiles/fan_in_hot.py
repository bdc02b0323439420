"""Load shape `fan_in_hot`: every transfer also pays a fee into one hot
account (`load-fees`), as a payment platform's fee account is paid.

    locust -f src/ledger/ops/locustfiles/fan_in_hot.py --headless -u 20 -r 5 -t 60s

Three legs: the payer is debited amount + fee, the payee credited the
amount, the hot fee account the fee. See `common.py` for the environment.
"""

from __future__ import annotations

import random

import common
from locust import task
from locust.contrib.fasthttp import FastHttpUser

if common.STEP_LOAD:
    from common import StepLoad  # noqa: F401 - Locust finds the shape here


class PaymentWithFee(common.CarefulClient, FastHttpUser):
    host = "http://127.0.0.1:8000"

    @task
    def pay(self) -> None:
        payer, payee = common.random_accounts(2)
        amount, fee = random.randint(100, 10_000), random.randint(1, 99)
        body = {
            "entries": [
                {"account_id": payer, "direction": "debit", "amount": amount + fee},
                {"account_id": payee, "direction": "credit", "amount": amount},
                {"account_id": common.HOT_ACCOUNT, "direction": "credit", "amount": fee},
            ]
        }
        self.send("/transactions", body, common.new_key(), "/transactions")
