"""The ASGI application for servers started by their own command line
(granian, uvicorn, gunicorn): `granian --interface asgi --factory
ledger.asgi:app`. It reads every setting from `LEDGER_*` variables and needs
LEDGER_DATABASE_URL (an external database; the embedded default is started
by `ledger serve`)."""

from __future__ import annotations

from litestar import Litestar

from ledger.app import create_app
from ledger.settings import Settings


def app() -> Litestar:
    settings = Settings.from_env()
    if not settings.database_url:
        raise RuntimeError("set LEDGER_DATABASE_URL: this entry point does not start a database")
    return create_app(settings, settings.database_url)
