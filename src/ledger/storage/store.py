"""The engine's Store over SQLAlchemy: its pools and settings, and one
mixin per port (`stores/`), each call of which runs one database
transaction through the retry loop (`methods.py`) and hands the connection
to the query that knows the SQL (`queries/`); postings run in a
`SqlPostingUnit` over the wire path chosen once, here (`posting/`)."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.settings import Settings
from ledger.storage import dialect
from ledger.storage.database import create_engine
from ledger.storage.posting.wire import FourMessages, TwoMessages, forget_prepared_on_rollback
from ledger.storage.replica import Replica
from ledger.storage.retry import RetryPolicy
from ledger.storage.stores.accounts import AccountMethods
from ledger.storage.stores.audit import AuditMethods
from ledger.storage.stores.checks import CheckMethods
from ledger.storage.stores.events import EventMethods
from ledger.storage.stores.journal import JournalMethods
from ledger.storage.stores.keys import KeyMethods
from ledger.storage.stores.posting import PostingMethods
from ledger.storage.stores.reconciliation import ReconciliationMethods
from ledger.storage.stores.reports import ReportMethods
from ledger.storage.stores.webhooks import WebhookMethods

T = TypeVar("T")


class SqlStore(
    PostingMethods,
    AccountMethods,
    CheckMethods,
    JournalMethods,
    EventMethods,
    WebhookMethods,
    KeyMethods,
    AuditMethods,
    ReconciliationMethods,
    ReportMethods,
):
    """Every call, reads included, goes through the retry loop, so a
    connection the server dropped costs a retry, not an error."""

    def __init__(
        self,
        engine: AsyncEngine,
        policy: RetryPolicy,
        *,
        batch_postings: bool | None = None,
        posting_engine: AsyncEngine | None = None,
        seal_lookback_seconds: float = 300.0,
        replica: Replica | None = None,
    ) -> None:
        self.engine = engine
        # Reads that feed no decision go there when there is one.
        self.replica = replica
        self.policy = policy
        self.seal_lookback_seconds = seal_lookback_seconds
        # `batch_postings` overrides the dialect's choice (the tests run the
        # four-message path on PostgreSQL too, as CockroachDB takes it).
        self.batch_postings = (
            dialect.batches_postings(engine.dialect.name)
            if batch_postings is None
            else batch_postings
        )
        self.wire = TwoMessages if self.batch_postings else FourMessages
        self.posting_settings = dialect.posting_settings(engine.dialect.name)
        # Two messages need autocommit connections: a pool of their own
        # (`posting_engine`, what `build_store` makes), or else the same pool
        # with each connection switched to autocommit while it posts, which
        # costs about 45 us of CPU per posting.
        self.posting_engine = posting_engine
        if self.batch_postings:
            if self.posting_engine is None:
                self.posting_engine = engine.execution_options(isolation_level="AUTOCOMMIT")
            forget_prepared_on_rollback(self.posting_engine)

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.replica is not None:
            await self.replica.dispose()
        if self.posting_engine is not None:
            await self.posting_engine.dispose()


def build_store(
    url: str, settings: Settings, *, role: str | None = None, application_name: str = "ledger"
) -> SqlStore:
    """The store, with its pools: one for everything on CockroachDB; on
    PostgreSQL a second one, of autocommit connections, for postings (see
    `dialect.batches_postings`), each of `settings.pool_size`."""
    policy = RetryPolicy(
        settings.retry_attempts, settings.retry_base_seconds, settings.retry_cap_seconds
    )
    engine = create_engine(url, settings, role=role, application_name=application_name)
    replica = None
    if settings.read_database_url:
        reads = create_engine(
            settings.read_database_url,
            settings,
            role=role,
            application_name=f"{application_name}-reads",
            isolation_level=dialect.replica_read_options(
                dialect.dialect_name(settings.read_database_url)
            )["isolation_level"],
        )
        replica = Replica(reads, fallback=settings.read_fallback)
    postings = None
    if dialect.batches_postings(dialect.dialect_name(url)):
        postings = create_engine(
            url, settings, role=role, application_name=application_name, autocommit=True
        )
    return SqlStore(
        engine,
        policy,
        posting_engine=postings,
        seal_lookback_seconds=settings.seal_lookback_seconds,
        replica=replica,
    )
