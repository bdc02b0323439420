"""The Litestar application factory: wiring only. The lifespan owns the
database engine and the background loops; the ledger and the settings reach
the handlers through Litestar's dependency injection."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide

from ledger import workers
from ledger.api import (
    access,
    accounts,
    audit,
    batch,
    currencies,
    docs,
    events,
    journal,
    keys,
    operations,
    reconciliation,
    reports,
    telemetry,
    transactions,
    webhooks,
)
from ledger.api.client_address import parse_proxies
from ledger.api.middleware import AccessMiddleware, echo_request_id
from ledger.api.problems import EXCEPTION_HANDLERS
from ledger.engine import Ledger
from ledger.engine.access import IssuedKey
from ledger.outbound import webhook_client
from ledger.settings import Settings
from ledger.storage.store import SqlStore, build_store

# Every resource's routes, each module's `router(settings)`: one way in.
ROUTES = (
    accounts,
    transactions,
    batch,
    keys,
    webhooks,
    reconciliation,
    reports,
    audit,
    currencies,
    journal,
    events,
    operations,
    docs,
)

__all__ = ["build_ledger", "build_store", "create_app"]


def build_ledger(store: SqlStore, settings: Settings) -> Ledger:
    return Ledger(
        store,
        settings.limits(),
        key_cache_seconds=settings.key_cache_seconds,
        proof_max_blocks=settings.proof_max_blocks,
        events_poll_seconds=settings.events_poll_seconds,
        resolve=webhook_client.resolve,
        webhook_allow_private=settings.webhook_allow_private,
        rotation_overlap_seconds=settings.webhook_rotation_overlap_seconds,
    )


def _provide_ledger(state: State) -> Ledger:
    return state.ledger


def create_app(
    settings: Settings,
    database_url: str,
    *,
    bootstrapped: Callable[[IssuedKey, bool], None] | None = None,
) -> Litestar:
    """The service for one database. `database_url` is required here: the CLI
    resolves the embedded default before it calls this. With `bootstrapped`,
    start-up makes an admin key when the database holds none (see
    `Keys.bootstrap`) and hands it to `bootstrapped` with whether it came
    from `LEDGER_BOOTSTRAP_KEY`. Raises ValueError for trusted proxies that
    are not addresses."""
    proxies = parse_proxies(settings.trusted_proxies)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        store = build_store(database_url, settings)
        ledger = build_ledger(store, settings)
        app.state.ledger = ledger
        app.state.gate = access.Gate(ledger.keys, settings.auth_failures_per_minute, proxies)
        app.state.draining = False
        if bootstrapped is not None:
            issued = await ledger.keys.bootstrap(settings.bootstrap_key or None)
            if issued is not None:
                bootstrapped(issued, bool(settings.bootstrap_key))
        background = workers.start(ledger, settings)
        # Everything made so far lives as long as the process: keep it out of
        # the collector's way, so that its full collections walk only what
        # requests allocate.
        gc.freeze()
        try:
            yield
        finally:
            app.state.draining = True
            await workers.stop(background)
            await store.dispose()

    return Litestar(
        route_handlers=[routes.router(settings) for routes in ROUTES],
        # Outermost first: the request metrics count refusals too.
        middleware=[telemetry.prometheus().middleware, AccessMiddleware()],
        plugins=telemetry.tracing_plugins(),
        before_send=[echo_request_id],
        cors_config=_cors(settings),
        dependencies={
            "ledger": Provide(_provide_ledger, sync_to_thread=False),
            "settings": Provide(lambda: settings, sync_to_thread=False, use_cache=True),
        },
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=docs.openapi_config(settings) if settings.docs else None,
        debug=False,
    )


def _cors(settings: Settings) -> CORSConfig | None:
    """Off unless origins are configured: a browser page elsewhere then
    cannot read an answer, and (bodies being JSON only) cannot send a write
    without a preflight this refuses."""
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if not origins:
        return None
    return CORSConfig(
        allow_origins=origins,
        allow_methods=["GET", "POST", "PATCH"],
        allow_headers=[
            "Authorization",
            "Content-Type",
            "Idempotency-Key",
            access.REASON_HEADER,
            access.REQUEST_ID_HEADER,
        ],
        expose_headers=["Idempotent-Replayed", access.REQUEST_ID_HEADER, "Retry-After"],
    )
