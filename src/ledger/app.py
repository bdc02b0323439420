"""The Litestar application factory: wiring only. The lifespan owns the
database engine and the background loops; the ledger and the settings reach
the handlers through Litestar's dependency injection."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import RedocRenderPlugin, SwaggerRenderPlugin

from ledger import __version__, workers
from ledger.api import operations
from ledger.api.accounts import AccountController
from ledger.api.problems import EXCEPTION_HANDLERS
from ledger.api.transactions import TransactionController
from ledger.engine.ledger import Ledger
from ledger.settings import Settings
from ledger.storage.store import SqlStore, build_store

__all__ = ["build_ledger", "build_store", "create_app"]


def build_ledger(store: SqlStore, settings: Settings) -> Ledger:
    return Ledger(store, settings.limits())


def _provide_ledger(state: State) -> Ledger:
    return state.ledger


def create_app(settings: Settings, database_url: str) -> Litestar:
    """The service for one database. `database_url` is required here: the CLI
    resolves the embedded default before it calls this."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        store = build_store(database_url, settings)
        ledger = build_ledger(store, settings)
        app.state.ledger = ledger
        app.state.draining = False
        background = workers.start(ledger, settings)
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
        route_handlers=[AccountController, TransactionController, *operations.HANDLERS],
        dependencies={
            "ledger": Provide(_provide_ledger, sync_to_thread=False),
            "settings": Provide(lambda: settings, sync_to_thread=False, use_cache=True),
        },
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
