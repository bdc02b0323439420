"""Fixtures shared by every test that touches a database.

One database per test session: on the embedded PostgreSQL this session
starts, or, when LEDGER_TEST_DATABASE_URL is set (PostgreSQL or CockroachDB),
a fresh database on that server. Either way the migrations create the schema
and the tests run unchanged. Tests isolate themselves with unique account ids
(`fresh_id`), not by truncating: the journal is append-only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from alembic import command
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import text
from sqlalchemy.engine import make_url

from ledger.app import build_ledger, build_store, create_app
from ledger.engine.access import DIRECT, SCOPES, NewKey
from ledger.engine.ledger import Ledger
from ledger.engine.model import AccountFlags, NewAccount
from ledger.settings import Settings
from ledger.storage import dialect, migrate
from ledger.storage.store import SqlStore

TEST_PARTITIONS = 4


def fresh_id(prefix: str = "acct") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def server_url(tmp_path_factory) -> Iterator[str]:
    """A URL of a database on the server the tests use."""
    given = os.environ.get("LEDGER_TEST_DATABASE_URL")
    if given:
        yield given
        return
    from ledger.storage.embedded import EmbeddedPostgres

    home = tmp_path_factory.mktemp("pg")
    embedded = EmbeddedPostgres(home / "data")
    url = embedded.start()
    yield url
    embedded.stop()
    shutil.rmtree(home, ignore_errors=True)  # the session's database: a few hundred MB


@pytest.fixture(scope="session")
def database_url(server_url: str) -> str:
    """A fresh, migrated database for this session."""
    # On our own throw-away server, commits need not wait for the disk.
    ours = dialect.dialect_name(server_url) == dialect.POSTGRESQL and not os.environ.get(
        "LEDGER_TEST_DATABASE_URL"
    )
    url = new_database(server_url, "ledger_test", lazy_commits=ours)
    if make_url(url).password and dialect.dialect_name(url) == dialect.POSTGRESQL:
        # A server that asks for passwords: give the service's login one.
        admin = create_sync_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"ALTER ROLE ledger_writer PASSWORD '{WRITER_PASSWORD}'"))
        admin.dispose()
    return url


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


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    # Keys are cached briefly, so a test can see a revocation take effect;
    # failed authentications are not rate-limited (every test comes from one
    # address), except where a test asks for it.
    return Settings(
        database_url=database_url,
        pool_size=8,
        retry_attempts=40,
        key_cache_seconds=0.3,
        auth_failures_per_minute=1_000_000,
        # Webhooks go to receivers the tests run on 127.0.0.1, and are
        # retried and taken over quickly.
        webhook_allow_private=True,
        webhook_lease_seconds=3.0,
        webhook_claim_seconds=0.2,
        webhook_backoff_base_seconds=0.05,
        webhook_backoff_cap_seconds=0.5,
    )


@pytest.fixture(scope="session")
async def ledger(database_url: str, settings: Settings) -> AsyncIterator[Ledger]:
    store = build_store(
        service_url(database_url, settings), settings, application_name="ledger-tests"
    )
    yield build_ledger(store, settings)
    await store.dispose()


@pytest.fixture(scope="session")
async def four_message_ledger(database_url: str, settings: Settings) -> AsyncIterator[Ledger]:
    """A ledger whose postings go as four messages (BEGIN, open, write,
    COMMIT): CockroachDB's path, run on PostgreSQL too (see
    `dialect.batches_postings`)."""
    from ledger.storage.database import create_engine
    from ledger.storage.retry import RetryPolicy
    from ledger.storage.store import SqlStore

    policy = RetryPolicy(
        settings.retry_attempts, settings.retry_base_seconds, settings.retry_cap_seconds
    )
    engine = create_engine(database_url, settings, application_name="ledger-tests-four")
    store = SqlStore(engine, policy, batch_postings=False)
    yield build_ledger(store, settings)
    await store.dispose()


@pytest.fixture(scope="session")
async def owner_engine(database_url: str, settings: Settings):
    """Connections as the owner (no SET ROLE): for tests that inspect or
    deliberately damage what the service cannot."""
    from ledger.storage.database import create_engine

    engine = create_engine(database_url, settings, role="", application_name="ledger-owner")
    yield engine
    await engine.dispose()


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


@pytest.fixture(scope="session")
async def admin_key(ledger: Ledger) -> str:
    """A key with every scope, of client "default"."""
    issued = await ledger.keys.create(
        NewKey(name="tests-admin", client_id="default", scopes=list(SCOPES)), DIRECT
    )
    return issued.key


async def make_key(ledger: Ledger, *scopes: str, client: str = "default", **fields) -> str:
    """A new key with `scopes` (and `accounts=`, `requests_per_second=`)."""
    issued = await ledger.keys.create(
        NewKey(name=fresh_id("key"), client_id=client, scopes=list(scopes), **fields), DIRECT
    )
    return issued.key


@pytest.fixture(scope="session")
async def client(database_url: str, settings: Settings, admin_key: str):
    """The app for the whole session, without its expiry sweeper: a sweeper
    running behind every test would race the tests that sweep themselves.
    `sweeping_client` has one. It sends the admin key with every request."""
    async with app_client(
        database_url, settings.with_overrides(expiry_sweep_seconds=0), admin_key
    ) as c:
        yield c


@contextlib.asynccontextmanager
async def app_client(database_url: str, settings: Settings, key: str | None = None):
    """A test client of the app; with `key`, every request carries it."""
    from litestar.testing import AsyncTestClient

    async with AsyncTestClient(app=create_app(settings, service_url(database_url, settings))) as c:
        if key is not None:
            c.headers["Authorization"] = f"Bearer {key}"
        yield c


async def open_account(
    ledger: Ledger,
    *,
    currency: str = "USD",
    normal_side: str = "debit",
    flags: AccountFlags | None = None,
    prefix: str = "acct",
    hot: bool = False,
) -> str:
    account, _ = await ledger.create_account(
        NewAccount(
            id=fresh_id(prefix),
            currency=currency,
            scale=2,
            normal_side=normal_side,
            flags=flags or AccountFlags(),
            hot=hot,
        )
    )
    return account.id


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
