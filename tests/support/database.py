"""The session's databases: fresh ones migrated to a revision, the login
the service uses, the tables a request could write, and a store that holds
a posting open before COMMIT."""

from __future__ import annotations

import asyncio
import uuid

from alembic import command
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import text
from sqlalchemy.engine import make_url

from ledger.settings import Settings
from ledger.storage import dialect, migrate
from ledger.storage.store import SqlStore

TEST_PARTITIONS = 4


def new_database(
    server_url: str,
    prefix: str = "ledger_extra",
    *,
    revision: str = "head",
    partitions: int = TEST_PARTITIONS,
    lazy_commits: bool = False,
) -> str:
    """A fresh database on the session's server (any database URL on it
    will do), migrated to `revision`: the session's, or one for a test that
    must damage, count or upgrade a database of its own."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = create_sync_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
        if lazy_commits:
            conn.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    admin.dispose()
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    command.upgrade(migrate.alembic_config(url, partitions=partitions), revision)
    return url


# The writer role's password on an external PostgreSQL that asks for one
# (set by `database_url`); the embedded server trusts its own socket.
WRITER_PASSWORD = uuid.uuid4().hex


def service_url(database_url: str, settings: Settings) -> str:
    """What the service logs in with: the writer role itself, as `ledger
    serve` does on the embedded server (never the owner, which could undo
    its role)."""
    url = make_url(dialect.writer_url(database_url, settings.db_role))
    if make_url(database_url).password and url.get_backend_name() == dialect.POSTGRESQL:
        url = url.set(password=WRITER_PASSWORD)
    return url.render_as_string(hide_password=False)


# Every table a request could write to, but the audit log (which records
# refusals too) and the work sets the background loops empty.
WRITTEN_TABLES = (
    "accounts",
    "account_balances",
    "account_changes",
    "currencies",
    "transactions",
    "entries",
    # Not hot_snapshots: the app's compaction loop adds to it whenever it
    # folds the deltas earlier tests left on hot accounts. A request that
    # makes an account hot shows in account_balances and account_changes.
    "api_keys",
    "webhook_endpoints",
    "recon_sources",
    "recon_statements",
    "recon_lines",
    "recon_runs",
    "recon_matches",
    "recon_exceptions",
)


async def written_rows(owner_engine) -> dict[str, int]:
    """How many rows each table a request could write to holds: equal
    before and after a refused request when it wrote nothing."""
    from sqlalchemy import text

    async with owner_engine.connect() as conn:
        return {
            t: (await conn.execute(text(f"SELECT count(*) FROM {t}"))).scalar_one()
            for t in WRITTEN_TABLES
        }


class HeldStore(SqlStore):
    """A store whose postings stop just before COMMIT until released: a
    posting held open across whatever the test does meanwhile. It posts in
    four messages (BEGIN, open, write, COMMIT), so the held posting's rows
    are written and uncommitted while it waits; the batched path sends its
    writes with COMMIT, where the same window is only as long as the server
    takes between the two."""

    def __init__(self, engine, policy) -> None:
        super().__init__(engine, policy, batch_postings=False)
        self.written = asyncio.Event()
        self.release = asyncio.Event()

    async def run(self, work):
        async def held(unit):
            result = await work(unit)
            self.written.set()
            await self.release.wait()
            return result

        return await super().run(held)
