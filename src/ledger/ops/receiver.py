"""A webhook receiver for drills, benchmarks and tests: an HTTP server on
127.0.0.1 that checks every delivery's Standard Webhooks signature with the
`standardwebhooks` package, records what arrived and when, and fails on
demand (down, or at random), as a real receiver might.

Its verdict: acknowledged postings whose event never arrived, events whose
first arrival came after a later event's (out of order), deliveries whose
signature did not verify, and the lag from commit to receipt.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

MAX_BODY_BYTES = 1 << 20


@dataclass
class Arrival:
    event_id: str
    sequence: int
    transaction_id: str
    received_at: float  # time.time()
    lag_seconds: float
    # "transaction" or "reconciliation": the stream whose order it keeps.
    stream: str = "transaction"


@dataclass
class Verdict:
    arrived: int
    distinct: int
    duplicates: int
    missing: list[str]
    out_of_order: int
    bad_signatures: int
    lag_p50: float | None
    lag_p99: float | None


@dataclass
class Receiver:
    """Start with `start()`; `url` is where it listens. Set `secret` (the
    endpoint's, once registered) before deliveries come. `down` answers
    every delivery 503; `fail_rate` answers that share of them 500 at
    random (each recorded as refused, not as arrived); `gone` answers 410."""

    secret: str | None = None
    down: bool = False
    gone: bool = False
    fail_rate: float = 0.0
    # Seconds to wait before answering each delivery (a slow receiver).
    delay_seconds: float = 0.0
    arrivals: list[Arrival] = field(default_factory=list)
    refused: int = 0
    bad_signatures: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/hooks"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = min(int(self.headers.get("content-length") or 0), MAX_BODY_BYTES)
                body = self.rfile.read(length)
                status = receiver._take(body, {k.lower(): v for k, v in self.headers.items()})
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _take(self, body: bytes, headers: dict[str, str]) -> int:
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        if self.down or self.gone or (self.fail_rate and random.random() < self.fail_rate):
            with self._lock:
                self.refused += 1
            return 410 if self.gone else 503 if self.down else 500
        try:
            event = Webhook(self.secret).verify(body, headers) if self.secret else json.loads(body)
        except (WebhookVerificationError, ValueError):
            event = None
        if event is None or event.get("id") != headers.get("webhook-id"):
            with self._lock:
                self.bad_signatures += 1
            return 400
        now = time.time()
        occurred = datetime.fromisoformat(event["occurred_at"]).timestamp()
        with self._lock:
            self.arrivals.append(
                Arrival(
                    event["id"],
                    event["sequence"],
                    event["data"]["id"],
                    now,
                    now - occurred,
                    event.get("stream", "transaction"),
                )
            )
        return 204

    def transaction_ids(self) -> set[str]:
        with self._lock:
            return {a.transaction_id for a in self.arrivals}

    def verdict(self, acknowledged: set[str] | None = None) -> Verdict:
        """`acknowledged`: transaction ids the clients were told committed."""
        with self._lock:
            arrivals = list(self.arrivals)
        seen: dict[str, Arrival] = {}
        out_of_order = 0
        highest: dict[str, int] = {}  # per stream: each has its own order
        for a in arrivals:
            if a.event_id in seen:
                continue
            seen[a.event_id] = a
            if a.sequence < highest.get(a.stream, -1):
                out_of_order += 1
            highest[a.stream] = max(highest.get(a.stream, -1), a.sequence)
        lags = sorted(a.lag_seconds for a in seen.values())
        got = {a.transaction_id for a in seen.values()}
        return Verdict(
            arrived=len(arrivals),
            distinct=len(seen),
            duplicates=len(arrivals) - len(seen),
            missing=sorted((acknowledged or set()) - got),
            out_of_order=out_of_order,
            bad_signatures=self.bad_signatures,
            lag_p50=_quantile(lags, 0.5),
            lag_p99=_quantile(lags, 0.99),
        )


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, int(q * len(values)))]
