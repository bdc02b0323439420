"""The sequencer survives kill -9: a real process killed with SIGKILL after
it appended a block and before it committed leaves nothing behind; another
sequencer seals those transactions instead, and the chain verifies."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from ledger.app import build_ledger, build_store
from ledger.engine.model import IdempotencyKey, Leg, NewTransaction
from support.database import new_database
from support.ids import fresh_id
from support.ledger import open_account

# Seals once, and stalls inside its transaction after writing the block.
DOOMED_SEALER = """
import asyncio, sys
from ledger.app import build_ledger, build_store
from ledger.settings import Settings
from ledger.storage.queries import journal

written = journal.append

async def append_and_stall(*args, **kwargs):
    await written(*args, **kwargs)
    print("appended", flush=True)
    await asyncio.sleep(600)

journal.append = append_and_stall

async def main():
    settings = Settings(database_url=sys.argv[1])
    store = build_store(sys.argv[1], settings, application_name="ledger-doomed-sealer")
    await build_ledger(store, settings).journal.seal(1000)

asyncio.run(main())
"""


async def test_a_sequencer_killed_mid_block_leaves_nothing_and_another_seals_it(
    server_url, settings
):
    url = await asyncio.to_thread(new_database, server_url, "ledger_sealkill")
    store = build_store(url, settings, application_name="ledger-survivor")
    ledger = build_ledger(store, settings)
    doomed = None
    try:
        a, b = await open_account(ledger), await open_account(ledger, normal_side="credit")
        posted = [
            (
                await ledger.postings.post(
                    NewTransaction([Leg(a, "debit", n), Leg(b, "credit", n)]),
                    IdempotencyKey("tests", fresh_id("key")),
                )
            ).transaction.id
            for n in range(1, 6)
        ]
        doomed = await asyncio.create_subprocess_exec(
            sys.executable, "-c", DOOMED_SEALER, url, stdout=asyncio.subprocess.PIPE
        )
        line = await asyncio.wait_for(doomed.stdout.readline(), timeout=60)
        assert line.strip() == b"appended"
        # Block 1 is written, uncommitted. Another sequencer meanwhile skips
        # the round (PostgreSQL: the guard lock is held) or waits on the
        # block's number (CockroachDB); either way it writes nothing over it.
        meanwhile = asyncio.create_task(ledger.journal.seal(1000))
        await asyncio.sleep(0.5)
        os.kill(doomed.pid, signal.SIGKILL)
        assert await asyncio.wait_for(doomed.wait(), timeout=10) == -signal.SIGKILL
        sealed = await asyncio.wait_for(meanwhile, timeout=30)
        # The server lets go of the killed session's guard lock only once it
        # notices the socket closed, which on a busy machine can come after
        # the next round; rounds go on as the background loop's would.
        deadline = asyncio.get_running_loop().time() + 30
        while sealed < len(posted) and asyncio.get_running_loop().time() < deadline:
            n = await ledger.journal.seal(1000)
            sealed += n
            if not n:
                await asyncio.sleep(0.05)
        assert await ledger.journal.seal(1000) == 0, "nothing is left to seal twice"
        assert sealed == len(posted), "the killed block's transactions, sealed once, elsewhere"
        head = await ledger.journal.head()
        assert (head.block, head.last_sequence) == (1, len(posted))
        places = sorted([(await ledger.postings.get(t)).sequence for t in posted])
        assert places == list(range(1, len(posted) + 1))
        report = await ledger.verify()
        assert report.ok, report
        assert report.journal.left_out.waiting == 0
    finally:
        if doomed is not None and doomed.returncode is None:
            doomed.kill()
            await doomed.wait()
        await store.dispose()
