"""The application's route table, as the route-walking tests read it."""

from __future__ import annotations

from ledger.app import create_app
from ledger.settings import Settings


def documentation(path: str, method: str) -> bool:
    """The documentation is public and read-only."""
    return (path == "/schema" or path.startswith("/schema/")) and method in {
        "GET",
        "HEAD",
        "OPTIONS",
    }


def handlers():
    """(path, method, handler) of every route, Litestar's own included."""
    for route in APP.routes:
        for handler in getattr(route, "route_handlers", []):
            for method in handler.http_methods:
                yield route.path, method, handler


APP = create_app(Settings(), "postgresql+psycopg://unused@localhost/unused")
