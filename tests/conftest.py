"""Fixtures shared by every test that touches a database.

One database per test session: on the embedded PostgreSQL this session
starts, or, when LEDGER_TEST_DATABASE_URL is set (PostgreSQL or CockroachDB),
a fresh database on that server. Either way the migrations create the schema
and the tests run unchanged. Tests isolate themselves with unique account ids
(`fresh_id`), not by truncating: the journal is append-only.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import text
from sqlalchemy.engine import make_url

from ledger.app import build_ledger, build_store
from ledger.engine.access import DIRECT, SCOPES, NewKey
from ledger.engine.ledger import Ledger
from ledger.settings import Settings
from ledger.storage import dialect
from ledger.storage.store import SqlStore
from support.database import WRITER_PASSWORD, new_database, service_url
from support.ledger import app_client


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


@pytest.fixture(scope="session")
async def admin_key(ledger: Ledger) -> str:
    """A key with every scope, of client "default"."""
    issued = await ledger.keys.create(
        NewKey(name="tests-admin", client_id="default", scopes=list(SCOPES)), DIRECT
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
