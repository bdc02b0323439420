"""OpenTelemetry traces from a real `ledger serve`: with
OTEL_EXPORTER_OTLP_ENDPOINT set, each request is a server span with its
route, and its database calls are spans of the same trace, exported over
OTLP/HTTP to a collector (here, a small one the test runs)."""

from __future__ import annotations

import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from support.processes import start


class Collector(BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/v1/traces":
            Collector.received.append(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def spans_received() -> list:
    spans = []
    for body in Collector.received:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource in request.resource_spans:
            for scoped in resource.scope_spans:
                spans.extend(scoped.spans)
    return spans


def attributes(span) -> dict:
    return {
        a.key: next(iter(a.value.ListFields()))[1] for a in span.attributes if a.value.ListFields()
    }


def test_requests_and_their_database_calls_are_traced(tmp_path, database_url, admin_key):
    collector = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEDGER_", "OTEL_"))}
    env |= {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.server_port}",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_SERVICE_NAME": "ledger-under-test",
    }
    process, base = start(tmp_path, ["--database-url", database_url], env)
    try:
        auth = {"Authorization": f"Bearer {admin_key}"}
        assert httpx.get(f"{base}/accounts", headers=auth).status_code == 200
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            spans = spans_received()
            servers = [s for s in spans if attributes(s).get("http.route") == "GET /accounts"]
            traced = {s.trace_id for s in servers}
            database = [
                s
                for s in spans
                if s.trace_id in traced and attributes(s).get("db.system") == "postgresql"
            ]
            if servers and database:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"no request with database spans among {len(spans)} spans")
    finally:
        process.terminate()
        process.wait(timeout=30)
        collector.shutdown()
    # Nothing secret lands in a span.
    assert not any(admin_key in str(attributes(s)) for s in spans)
    # The background loops' polling (a few rounds a second: the expiry
    # queue, the hot deltas) is not traced; start-up's queries may be.
    requests = {s.trace_id for s in spans if s.kind == s.SpanKind.SPAN_KIND_SERVER}
    polling = [
        attributes(s).get("db.statement", "")
        for s in spans
        if s.trace_id not in requests
        and any(
            t in attributes(s).get("db.statement", "") for t in ("pending_expiry", "hot_deltas")
        )
    ]
    assert not polling, polling[:3]
