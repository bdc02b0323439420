"""The Litestar application factory. The lifespan owns the database engine."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import RedocRenderPlugin, SwaggerRenderPlugin

from ledger import __version__
from ledger.api.problems import EXCEPTION_HANDLERS
from ledger.api.routes import HANDLERS
from ledger.engine.ledger import Ledger
from ledger.engine.rules import Limits
from ledger.settings import Settings
from ledger.storage import dialect
from ledger.storage.database import create_engine
from ledger.storage.retry import RetryPolicy
from ledger.storage.store import SqlStore

log = logging.getLogger(__name__)


def build_ledger(store: SqlStore, settings: Settings) -> Ledger:
    return Ledger(
        store,
        Limits(
            max_legs=settings.max_legs,
            max_amount=settings.max_amount,
            max_metadata_bytes=settings.max_metadata_bytes,
            max_description_chars=settings.max_description_chars,
            max_timeout_seconds=settings.max_timeout_seconds,
        ),
        max_page_size=settings.max_page_size,
        max_idempotency_key_chars=settings.max_idempotency_key_chars,
    )


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
    postings = None
    if dialect.batches_postings(dialect.dialect_name(url)):
        postings = create_engine(
            url, settings, role=role, application_name=application_name, autocommit=True
        )
    return SqlStore(engine, policy, posting_engine=postings)


async def sweep_expired(ledger: Ledger, interval: float, batch: int) -> None:
    """Void pending transactions past their timeout, forever. A failed round
    (database away, say) is logged and the next round tries again."""
    while True:
        try:
            while await ledger.expire_due(batch) >= batch:
                pass  # a full batch: more may be due at once
        except Exception:
            log.exception("expiry sweep failed; retrying in %.1f s", interval)
        await asyncio.sleep(interval)


async def compact_hot_accounts(ledger: Ledger, settings: Settings) -> None:
    """Fold hot accounts' deltas into snapshots, forever. It wakes a few
    times per `hot_compact_seconds`, so an account that reaches
    `hot_compact_deltas` is folded soon after."""
    interval = max(settings.hot_compact_seconds / 4, 0.05)
    while True:
        try:
            await ledger.compact_hot(
                min_deltas=settings.hot_compact_deltas,
                max_age_seconds=settings.hot_compact_seconds,
                grace_seconds=settings.hot_snapshot_grace_seconds,
                batch=settings.hot_compact_batch,
            )
        except Exception:
            log.exception("hot-account compaction failed; retrying in %.1f s", interval)
        await asyncio.sleep(interval)


def create_app(settings: Settings, database_url: str) -> Litestar:
    """The service for one database. `database_url` is required here: the CLI
    resolves the embedded default before it calls this."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        store = build_store(database_url, settings)
        ledger = build_ledger(store, settings)
        app.state.settings = settings
        app.state.ledger = ledger
        app.state.draining = False
        background = []
        if settings.expiry_sweep_seconds > 0:
            background.append(
                asyncio.create_task(
                    sweep_expired(ledger, settings.expiry_sweep_seconds, settings.expiry_batch)
                )
            )
        if settings.hot_compact_seconds > 0:
            background.append(asyncio.create_task(compact_hot_accounts(ledger, settings)))
        # Everything made so far lives as long as the process: keep it out of
        # the collector's way, so that its full collections walk only what
        # requests allocate.
        gc.freeze()
        try:
            yield
        finally:
            app.state.draining = True
            for task in background:
                task.cancel()
            for task in background:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await store.dispose()

    return Litestar(
        route_handlers=HANDLERS,
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Ledger",
            version=__version__,
            description="A double-entry ledger. Errors are RFC 9457 problem JSON; "
            "the `type` of each is stable.",
            path="/schema",
            render_plugins=[RedocRenderPlugin(), SwaggerRenderPlugin()],
        ),
        debug=False,
    )
