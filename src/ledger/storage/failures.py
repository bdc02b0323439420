"""How the retry loop should treat an error from the database: classified by
SQLSTATE, the same way on PostgreSQL and CockroachDB (which reports its
restart errors, RETRY_WRITE_TOO_OLD, RETRY_SERIALIZABLE and the rest, as
40001, and an ambiguous result as 40003)."""

from __future__ import annotations

import enum

import psycopg
from sqlalchemy import exc as sa_exc


class Failure(enum.Enum):
    """How the retry loop should treat an error from the database."""

    SERIALIZATION = "serialization"  # 40001: nothing committed, retry
    DEADLOCK = "deadlock"  # 40P01: nothing committed, retry
    AMBIGUOUS = "ambiguous"  # 40003 or lost at COMMIT: may have committed
    CONNECTION = "connection"  # lost before COMMIT: nothing committed, retry
    FATAL = "fatal"  # anything else: do not retry


# SQLSTATEs of a connection the server closed or lost (class 08), and of a
# server shutting down or killing the backend (57P01 admin_shutdown, which is
# what pg_terminate_backend sends, 57P02 crash_shutdown, 57P03
# cannot_connect_now).
_CONNECTION_STATES = {"57P01", "57P02", "57P03"}


def sqlstate(exc: BaseException) -> str | None:
    orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    return getattr(orig, "sqlstate", None)


def constraint_name(exc: BaseException) -> str | None:
    orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    diag = getattr(orig, "diag", None)
    return getattr(diag, "constraint_name", None) if diag is not None else None


def classify(exc: BaseException, *, during_commit: bool) -> Failure:
    """Decide whether a failed transaction may be retried, and whether its
    outcome is known. Works on SQLAlchemy's wrapped errors and on raw psycopg
    errors alike, for both engines (CockroachDB reports its restart errors,
    RETRY_WRITE_TOO_OLD, RETRY_SERIALIZABLE and the rest, as 40001)."""
    state = sqlstate(exc)
    if state == "40001":
        return Failure.SERIALIZATION
    if state == "40P01":
        return Failure.DEADLOCK
    if state == "40003":
        return Failure.AMBIGUOUS
    lost = (
        (state is not None and (state.startswith("08") or state in _CONNECTION_STATES))
        or (isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated)
        or (state is None and _is_psycopg_operational(exc))
    )
    if lost:
        return Failure.AMBIGUOUS if during_commit else Failure.CONNECTION
    return Failure.FATAL


def connection_lost(exc: BaseException) -> bool:
    """Whether a raw driver error means the connection itself is gone (not a
    conflict or a refusal on a healthy connection, such as 40001)."""
    state = sqlstate(exc)
    if state is None:
        return _is_psycopg_operational(exc)
    return state.startswith("08") or state in _CONNECTION_STATES


def _is_psycopg_operational(exc: BaseException) -> bool:
    orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    return isinstance(orig, psycopg.OperationalError)


def is_numeric_overflow(exc: BaseException) -> bool:
    return sqlstate(exc) == "22003"
