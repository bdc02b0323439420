"""schemathesis against the OpenAPI document the service serves, as a
client generator would read it: every operation, a few examples each (the
documented ones, boundary values, random ones), and every answer checked
against the document: no server error, a documented status, content type,
headers and body schema."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from test_serve import start

from conftest import make_key
from ledger.engine.access import SCOPES

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
    """A key of its own: the fuzzer may well revoke the key it is given."""
    return await make_key(ledger, *SCOPES, client="schemathesis")


def test_schemathesis_finds_nothing(tmp_path, database_url, key):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    process, base = start(tmp_path, ["--database-url", database_url], env)
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
    assert "Tested: 2" in run.stdout  # more than twenty operations were tested
