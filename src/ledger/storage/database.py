"""Creating the AsyncEngine the service and the tools talk through."""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ledger.settings import Settings
from ledger.storage import dialect


def create_engine(
    url: str,
    settings: Settings,
    *,
    role: str | None = None,
    application_name: str = "ledger",
    autocommit: bool = False,
    isolation_level: str | None = None,
) -> AsyncEngine:
    """An engine whose connections are SERIALIZABLE and run as the writer role.

    `autocommit`: the connections are in the driver's autocommit mode, for
    work that sends BEGIN ISOLATION LEVEL SERIALIZABLE and COMMIT itself
    (the batched posting path, see `dialect.batches_postings`).

    `role` overrides `settings.db_role` (tests pass "" to act as the owner).
    `isolation_level` overrides SERIALIZABLE (a hot standby refuses it, even
    for the queries SQLAlchemy sends when it first connects).
    SQLAlchemy's own pool is used rather than psycopg_pool: SQLAlchemy's async
    engine manages its pool itself, and putting a second pool under it would
    only add a layer; its size and timeout are the named settings.
    """
    name = dialect.dialect_name(url)
    engine = create_async_engine(
        url,
        pool_size=settings.pool_size,
        max_overflow=settings.pool_max_overflow,
        pool_timeout=settings.pool_timeout_seconds,
        pool_recycle=settings.pool_recycle_seconds,
        isolation_level=isolation_level or ("AUTOCOMMIT" if autocommit else "SERIALIZABLE"),
        connect_args={"application_name": application_name},
    )
    setup = dialect.session_setup(
        name, settings.db_role if role is None else role, settings.statement_timeout_ms
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        try:
            for statement in setup:
                cursor.execute(statement)
        finally:
            cursor.close()
        # Session settings survive the commit; the commit ends the implicit
        # transaction so SQLAlchemy may set the isolation level next.
        dbapi_connection.commit()

    return engine


def login_is_privileged(url: str) -> bool:
    """Whether the login of `url` is a superuser, may create roles, or is (or
    may become) the owner of the journal's tables: a service logged in so
    could undo its own role. False when it cannot be told (the question
    itself failed)."""
    from sqlalchemy import create_engine as create_sync_engine
    from sqlalchemy import pool, text

    engine = create_sync_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return bool(conn.execute(text(dialect.privileged_login_query())).scalar())
    except Exception:  # a question about the login must not stop the service
        return False
    finally:
        engine.dispose()
