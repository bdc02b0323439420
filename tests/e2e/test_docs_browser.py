"""The API documentation in a real browser (Debian's headless Chromium),
on a machine without internet access: Swagger UI's files come from the
service, so the page renders every operation."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import httpx
import pytest

from support.processes import start

# End to end, more than about ten seconds: not in `pytest -m "not slow"`.
pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def rendered(url: str, profile) -> str:
    """The page's DOM after its scripts ran (Chromium's own flags for a
    closed network, as the machine notes say)."""
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=20000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    return done.stdout.decode()


@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("LEDGER_REQUIRE_BROWSER"),
    reason="no chromium here (.ci/run installs Debian's and requires this test)",
)
@pytest.mark.parametrize("page", ["/schema", "/schema/swagger"])
def test_the_docs_render_every_operation_without_a_cdn(tmp_path, database_url, page):
    assert CHROMIUM, "LEDGER_REQUIRE_BROWSER is set but chromium is not installed"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    process, base = start(tmp_path, ["--database-url", database_url], env)
    try:
        dom = rendered(base + page, tmp_path / "profile")
        document = httpx.get(f"{base}/schema/openapi.json").json()
    finally:
        process.terminate()
        process.wait(timeout=30)
    # Every script and stylesheet the page loads is the service's own.
    sources = re.findall(r'<(?:script|link)\b[^>]*?(?:src|href)="([^"]+)"', dom)
    assert sources and all(s.startswith("/schema/") for s in sources), sources
    shown = set(re.findall(r'class="opblock-summary-path" data-path="([^"]+)"', dom))
    assert shown == set(document["paths"]), set(document["paths"]) ^ shown
    assert "Ledger" in dom and 'class="opblock-summary-method">POST<' in dom
