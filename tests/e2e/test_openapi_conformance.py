"""schemathesis against the OpenAPI document the service serves, as a
client generator would read it: every operation, a few examples each (the
documented ones, boundary values, random ones), and every answer checked
against the document: no server error, a documented status, content type,
headers and body schema."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from ledger.engine.access import SCOPES
from support.ledger import make_key
from support.processes import start

# End to end, more than about ten seconds: not in `pytest -m "not slow"`.
pytestmark = pytest.mark.slow

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)


@pytest.fixture
async def key(ledger) -> str:
    """A key of its own (used on the external test database only)."""
    return await make_key(ledger, *SCOPES, client="schemathesis")


def test_schemathesis_finds_nothing(tmp_path, database_url, key):
    # The fuzzer writes what it likes (it freezes accounts, makes keys), so
    # it gets a fresh embedded database of its own, unless the tests run on
    # an external one. It never calls revoke: fed a key id it learnt, it
    # revoked the very key the other tests use (the access tests cover it).
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    # The fuzzer sends bad keys on purpose, from one address: past the
    # failed-authentication limit, every request would meet the limiter
    # instead of the operation.
    env["LEDGER_AUTH_FAILURES_PER_MINUTE"] = "1000000"
    # An event stream lasts five minutes by default, and the fuzzer would
    # wait out every one it opens: here it ends within a second.
    env["LEDGER_EVENTS_STREAM_SECONDS"] = "0.5"
    env["LEDGER_EVENTS_HEARTBEAT_SECONDS"] = "0.2"
    external = os.environ.get("LEDGER_TEST_DATABASE_URL")
    where = ["--database-url", database_url] if external else ["--data-dir", str(tmp_path / "pg")]
    process, base = start(tmp_path, where, env)
    if not external:
        key = (tmp_path / "admin-key").read_text().strip()
    try:
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "run",
                f"{base}/schema/openapi.json",
                "--header",
                f"Authorization: Bearer {key}",
                "--checks",
                CHECKS,
                "--phases",
                "examples,coverage,fuzzing",
                "--max-examples",
                "5",
                "--seed",
                "20261122",
                "--no-color",
                "--exclude-path",
                "/keys/{key_id}/revoke",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            env={**env, "SCHEMATHESIS_HOOKS": ""},
        )
    finally:
        process.terminate()
        process.wait(timeout=30)
    print(run.stdout[-3000:])
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    tested = re.search(r"Tested: (\d+)", run.stdout)
    assert tested and int(tested.group(1)) >= 20  # most operations were tested
