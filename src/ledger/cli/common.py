"""What every `ledger` subcommand shares: the database arguments, the
settings they make, the database to use (the embedded one when no URL is
given), the check that its schema is current, and running a piece of work
against the ledger on it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from ledger.settings import Settings

if TYPE_CHECKING:
    from ledger.engine import Ledger

T = TypeVar("T")


def database_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        help="postgresql+psycopg://... or cockroachdb+psycopg://...; "
        "default: the embedded PostgreSQL in --data-dir (env LEDGER_DATABASE_URL)",
    )
    parser.add_argument(
        "--data-dir", type=Path, help="embedded PostgreSQL data directory (default .ledger/pgdata)"
    )


def settings_of(args: argparse.Namespace) -> Settings:
    return Settings.from_env().with_overrides(
        database_url=getattr(args, "database_url", None),
        data_dir=getattr(args, "data_dir", None),
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
    )


@contextlib.contextmanager
def database(settings: Settings, *, quiet: bool = False) -> Iterator[tuple[str, bool]]:
    """The database URL to use, starting the embedded server when no URL is
    given (and stopping it afterwards). Yields (url, embedded)."""
    if settings.database_url:
        yield settings.database_url, False
        return
    from ledger.storage.embedded import EmbeddedPostgres

    embedded = EmbeddedPostgres(settings.data_dir)
    url = embedded.start()
    if not quiet:
        print(f"ledger: embedded PostgreSQL, data in {embedded.data_dir}", flush=True)
    try:
        yield url, True
    finally:
        embedded.stop()


def schema_is_current(url: str) -> bool:
    """Say so plainly, rather than fail on the first query, when the database
    is older than this code."""
    from ledger.storage import migrate

    lag = migrate.behind(url)
    if lag is None:
        return True
    current, head = lag
    print(
        f"ledger: the database schema is at revision {current or 'none'}, and this version "
        f"needs {head}. Run `ledger migrate` against it first (or `ledger serve --migrate`).",
        file=sys.stderr,
    )
    return False


def with_ledger(
    args: argparse.Namespace,
    work: Callable[[Ledger, Settings], Awaitable[T]],
    *,
    quiet: bool = True,
) -> T | int:
    """`work(ledger, settings)` against the database the arguments name;
    2 (after saying why) when its schema is not current."""
    from ledger.app import build_ledger, build_store

    settings = settings_of(args)
    with database(settings, quiet=quiet) as (url, _):
        if not schema_is_current(url):
            return 2

        async def go() -> T:
            store = build_store(url, settings, application_name="ledger-cli")
            try:
                return await work(build_ledger(store, settings), settings)
            finally:
                await store.dispose()

        return asyncio.run(go())
