"""What operators see: request counts and latency per route and status on
/metrics, and one JSON access-log line per request, with no secret in it."""

from __future__ import annotations

import logging
import re

import msgspec

from support.ids import fresh_id


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


async def test_requests_are_counted_and_timed_by_route_template_and_status(client):
    missing = fresh_id()
    for _ in range(3):
        assert (await client.get(f"/accounts/{missing}")).status_code == 404
    assert (
        await client.get("/accounts", headers={"Authorization": "Bearer nope"})
    ).status_code == 401
    text = (await client.get("/metrics")).text
    route = r'path="/accounts/\{account_id\}"'
    counted = re.search(
        r'ledger_http_requests_total\{[^}]*method="GET"[^}]*'
        + route
        + r'[^}]*status_code="404"[^}]*\} (\d+)',
        text,
    )
    assert counted and float(counted.group(1)) >= 3, text[:2000]
    # The id is not a label: one series per route, not per account.
    assert missing not in text
    assert re.search(r'ledger_http_requests_total\{[^}]*status_code="401"', text)
    buckets = [
        line
        for line in text.splitlines()
        if line.startswith("ledger_http_request_duration_seconds_bucket")
        and re.search(route, line)
        and 'le="0.005"' in line
    ]
    assert buckets, "no latency histogram with the ledger's buckets for the route"


async def test_each_request_leaves_one_json_access_line_without_secrets(client, admin_key):
    logger = logging.getLogger("ledger.access")
    capture = Lines()
    logger.addHandler(capture)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        ids = [fresh_id("req") for _ in range(3)]
        await client.get("/accounts", headers={"X-Request-Id": ids[0]})
        await client.get("/nowhere", headers={"X-Request-Id": ids[1]})
        await client.post(
            "/accounts",
            json={"currency": "USD", "normal_side": "debit"},
            headers={"X-Request-Id": ids[2], "Idempotency-Key": fresh_id()},
        )
    finally:
        logger.removeHandler(capture)
        logger.setLevel(old_level)
    lines = [msgspec.json.decode(line) for line in capture.lines]
    by_id = {line["request_id"]: line for line in lines}
    assert set(ids) <= set(by_id), lines
    listed, unrouted, created = (by_id[i] for i in ids)
    assert (listed["method"], listed["route"], listed["status"]) == ("GET", "/accounts", 200)
    assert listed["client_id"] == "default" and isinstance(listed["duration_ms"], float | int)
    assert (unrouted["status"], unrouted["route"]) == (404, None)
    assert (created["method"], created["status"]) == ("POST", 201)
    secret = admin_key.split("_", 2)[2]
    assert not any(secret in line or "Bearer" in line for line in capture.lines)
