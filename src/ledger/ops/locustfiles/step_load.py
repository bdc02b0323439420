"""The step-load shape: users rise by a step every few seconds until a step
goes past the latency target or the error limit (the knee), or the
duration runs out. It judges a step on the workers' request log with the
very function the report uses (`ledger.ops.figures.window`), over the
step's own window, and writes each step, each verdict and the reason it
stopped to the step log, so that the report says what the shape saw.

Environment (all optional but LEDGER_STEP_USERS):
  LEDGER_STEP_USERS   users added per step
  LEDGER_STEP_SECONDS seconds per step (default 10)
  LEDGER_MAX_USERS    at most this many users (default 200)
  LEDGER_DURATION     seconds in all (default 60)
  LEDGER_P99_MS       a step's p99 above this stops the load (default 50)
  LEDGER_MAX_ERRORS   a step's error ratio above this stops it (default 0.01)
  LEDGER_REQUEST_LOG  the request log the workers write (`common.py`)
  LEDGER_STEP_LOG     where the steps, verdicts and the stop go
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from locust import LoadTestShape

from ledger.ops import figures


class StepLoad(LoadTestShape):
    step_users = int(os.environ.get("LEDGER_STEP_USERS", "0") or 0)
    step_seconds = float(os.environ.get("LEDGER_STEP_SECONDS", "10"))
    max_users = int(os.environ.get("LEDGER_MAX_USERS", "200"))
    duration = float(os.environ.get("LEDGER_DURATION", "60"))
    p99_ms = float(os.environ.get("LEDGER_P99_MS", "50"))
    max_errors = float(os.environ.get("LEDGER_MAX_ERRORS", "0.01"))
    request_log = os.environ.get("LEDGER_REQUEST_LOG", "")
    step_log = os.environ.get("LEDGER_STEP_LOG", "")

    def __init__(self) -> None:
        super().__init__()
        self.n = 0
        self.users = 0
        self.started = 0.0  # when this step's users were set
        self.time_up: float | None = None  # when this step's time ran out
        self.stopped = False

    def tick(self):
        if self.stopped:
            return None
        now = time.time()
        if self.get_run_time() >= self.duration:
            return self._stop(now, f"the duration ran out ({self.duration:g} s)")
        if self.n == 0:
            return self._next_step(now)
        if self.time_up is None and now - self.started >= self.step_seconds:
            # Judge on the next tick, once the workers' logs have caught up
            # with this moment (they flush every 0.2 s).
            self.time_up = now
        elif self.time_up is not None:
            broke = self._judge()
            if broke:
                return self._stop(now, broke, judged=True)
            return self._next_step(now)
        return self.users, max(self.users, 1)

    def _next_step(self, now: float):
        self.n += 1
        self.users = min(self.max_users, self.step_users * self.n)
        self.started, self.time_up = now, None
        self._log({"event": "step", "n": self.n, "users": self.users, "start": now})
        return self.users, max(self.users, 1)

    def _judge(self) -> str | None:
        """Why the step that just ended stops the load, or None."""
        assert self.time_up is not None
        requests = figures.read_requests(Path(self.request_log)) if self.request_log else []
        seen = figures.window(requests, [], self.started, self.time_up)
        reasons = []
        if seen["p99_ms"] > self.p99_ms:
            reasons.append(f"p99 {seen['p99_ms']:.1f} ms above the {self.p99_ms:g} ms target")
        if seen["error_ratio"] > self.max_errors:
            reasons.append(
                f"error ratio {seen['error_ratio']:.4f} above the {self.max_errors:g} limit"
            )
        broke = f"step {self.n} ({self.users} users): " + " and ".join(reasons) if reasons else None
        self._log(
            {
                "event": "judged",
                "n": self.n,
                "start": self.started,
                "end": self.time_up,
                "requests": seen["requests"],
                "p99_ms": seen["p99_ms"],
                "error_ratio": seen["error_ratio"],
                "broke": broke,
            }
        )
        return broke

    def _stop(self, now: float, reason: str, judged: bool = False):
        self.stopped = True
        self._log({"event": "stop", "at": self.time_up if judged else now, "reason": reason})
        print(f"load stopped: {reason}", flush=True)
        return None

    def _log(self, event: dict) -> None:
        if self.step_log:
            with open(self.step_log, "a") as f:
                f.write(json.dumps(event) + "\n")
