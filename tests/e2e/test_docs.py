"""The documentation is executable: every shell example in README.md,
CONTRIBUTING.md and docs/ runs against a served instance, page by page in
order, and every link between the pages resolves.

A shell block is fenced ```sh (it runs) or ```sh no-run: <why> (it starts
something that does not end, needs Docker or another database, or takes
minutes; the reason is on the fence for the reader too). Inside a running
block, `curl` is checked: no connection failure and no 5xx ever, and a 4xx
only where the block says which (its comment names the status), so an
example that stops working fails here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from support.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "CONTRIBUTING.md"]
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.M | re.S)
SHELL = {"sh", "bash", "shell", "console"}
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")

# Each curl of an example goes through this: the body to stdout (or where
# the example sends it), the status to the log, and a failure for no answer.
CURL = r"""
curl() {
    local body status
    body=$(mktemp)
    status=$(command curl --silent --show-error --output "$body" --write-out '%{http_code}' "$@") \
        || { echo "curl could not reach the service: $*" >&2; return 1; }
    echo "$DOCS_BLOCK $status" >> "$DOCS_LOG"
    cat "$body"; echo; rm -f "$body"
}
"""


def blocks(page: Path) -> list[tuple[str, str]]:
    """(info string, text) of every shell block of the page, in order."""
    found = []
    for m in FENCE.finditer(page.read_text()):
        info = m.group(1).strip()
        if info.split(" ")[0] in SHELL:
            found.append((info, m.group(2)))
    return found


def runnable(page: Path) -> list[str]:
    return [text for info, text in blocks(page) if info == "sh"]


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_shell_block_says_whether_it_runs():
    for page in PAGES:
        for info, text in blocks(page):
            assert info == "sh" or re.fullmatch(r"sh no-run: \S.*", info), (
                f"{page.relative_to(ROOT)}: a shell block fenced {info!r}; fence it ```sh "
                f"(it runs) or ```sh no-run: <why>:\n{text}"
            )
    assert sum(len(runnable(p)) for p in PAGES) >= 7, "the pages show fewer runnable examples"


def test_every_link_between_the_pages_resolves():
    checked = 0
    for page in PAGES:
        for target in LINK.findall(page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto: the outside world
            path, _, anchor = target.partition("#")
            where = (page.parent / path).resolve() if path else page
            assert where.exists(), f"{page.relative_to(ROOT)} links to {target}, which is missing"
            if anchor and where.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", where.read_text(), re.M)
                assert anchor in {slug(h) for h in headings}, (
                    f"{page.relative_to(ROOT)} links to {target}: no such heading"
                )
            checked += 1
    assert checked >= 10


@pytest.fixture(scope="module")
def served_docs(tmp_path_factory, database_url, admin_key):
    """`ledger serve` run as the README says, from a directory of its own
    (with the repository's docs/ beside it for the files examples upload);
    on an external test database, with the session's admin key in the file
    the embedded start would have written."""
    work = tmp_path_factory.mktemp("docs")
    (work / "docs").symlink_to(ROOT / "docs")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    if os.environ.get("LEDGER_TEST_DATABASE_URL"):
        # The service and the examples' `ledger` commands alike use it.
        (work / ".ledger").mkdir()
        (work / ".ledger" / "admin-key").write_text(admin_key)
        env["LEDGER_DATABASE_URL"] = database_url
    log = open(work / "serve.log", "w")  # noqa: SIM115 - the child writes it
    process = subprocess.Popen(
        [sys.executable, "-m", "ledger.cli", "serve", "--port", str(port)],
        cwd=work,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    deadline = time.monotonic() + 90
    while True:
        assert process.poll() is None, (work / "serve.log").read_text()
        assert time.monotonic() < deadline, "the service did not start"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready").status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    yield work, port, env
    process.terminate()
    process.wait(30)


PAGES_WITH_EXAMPLES = [p for p in PAGES if runnable(p)]


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES_WITH_EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_examples_of_a_page_run(served_docs, page):
    work, port, env = served_docs
    log = work / f"{page.stem}.statuses"
    log.write_text("")
    script = ["set -euo pipefail", CURL]
    examples = runnable(page)
    for i, text in enumerate(examples):
        text = text.replace("localhost:8000", f"localhost:{port}")
        text = text.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        script += [f"DOCS_BLOCK={i}", text]
    run = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=work,
        env={**env, "DOCS_LOG": str(log)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, f"{page.name}: an example failed:\n{run.stdout}\n{run.stderr}"
    # A page of `ledger` commands only is judged by their exit statuses.
    answered = [line.split() for line in log.read_text().splitlines()]
    for block, status in answered:
        said = examples[int(block)]
        assert status[0] in "23" or (status[0] == "4" and status in said), (
            f"{page.name}: an example got {status}, which its block does not mention:\n"
            f"{said}\n{run.stdout}"
        )
