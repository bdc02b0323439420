"""Everything that differs between PostgreSQL and CockroachDB, in one place.

No other module asks which database it talks to: they call the functions
here. The unit tests exercise every branch offline (`tests/unit/test_dialect.py`).
"""

from __future__ import annotations

import enum
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

POSTGRESQL = "postgresql"
COCKROACHDB = "cockroachdb"


def dialect_name(url: str) -> str:
    """`postgresql` or `cockroachdb`, from a SQLAlchemy URL. Raises ValueError
    for anything else."""
    backend = make_url(url).get_backend_name()
    if backend in (POSTGRESQL, COCKROACHDB):
        return backend
    raise ValueError(
        f"unsupported database URL scheme {backend!r}: use postgresql+psycopg:// "
        "or cockroachdb+psycopg://"
    )


# --- ids ---------------------------------------------------------------------------


def new_transaction_id() -> uuid.UUID:
    """Random: transaction ids lead their table's primary key, and a
    time-ordered leading key would send every insert on CockroachDB to one
    range."""
    return uuid.uuid4()


def new_entry_id(at: datetime | None = None) -> uuid.UUID:
    """Time-ordered (UUIDv7 layout: 48 bits of milliseconds, then random).

    Safe on both engines because the entries key is (account_id, entry_id):
    the random-ish account id leads, so inserts spread across ranges, while
    one account's history stays in time order for pagination.

    The store passes the transaction's `created_at` (the database's time), so
    that a range of entry ids is a range of creation times: `as_of` on a hot
    account reads the entries after a snapshot by that range, through the
    primary key, with no other index.
    """
    millis = _millis(at) if at is not None else time.time_ns() // 1_000_000
    value = (millis & ((1 << 48) - 1)) << 80 | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return uuid.UUID(int=value)


def entry_id_floor(at: datetime) -> uuid.UUID:
    """The smallest entry id `new_entry_id` can give in `at`'s millisecond."""
    return uuid.UUID(int=(_millis(at) & ((1 << 48) - 1)) << 80)


def entry_id_ceiling(at: datetime) -> uuid.UUID:
    """An entry id above every one `new_entry_id` can give at or before `at`."""
    return uuid.UUID(int=((_millis(at) + 1) & ((1 << 48) - 1)) << 80)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _millis(at: datetime) -> int:
    """Whole milliseconds since the epoch, exactly (no float rounding)."""
    return (at - _EPOCH) // timedelta(milliseconds=1)


# --- sessions ------------------------------------------------------------------------


def session_setup(name: str, role: str, statement_timeout_ms: int) -> list[str]:
    """Statements run once on every new connection.

    On PostgreSQL the service may log in as the owner (the embedded default
    does) and drops to the append-only writer role with SET ROLE. On
    CockroachDB only admins may SET ROLE, so there the login user must itself
    be the writer role (deploy/cockroach sets that up).
    """
    statements = [f"SET statement_timeout = {int(statement_timeout_ms)}"]
    if role and name == POSTGRESQL:
        statements.append(f'SET ROLE "{role}"')
    return statements


def snapshot_read_options(name: str) -> dict[str, Any]:
    """Execution options for a long read that must see one consistent
    snapshot (verify). PostgreSQL: REPEATABLE READ READ ONLY, which never
    fails for serialization and blocks no writer. CockroachDB runs every
    transaction SERIALIZABLE; its reads are snapshot reads already."""
    if name == POSTGRESQL:
        return {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
    return {"isolation_level": "SERIALIZABLE"}


def stale_read_statements(name: str) -> list[str]:
    """Statements that open a read transaction allowed to be slightly stale.

    CockroachDB: a follower read (AS OF SYSTEM TIME follower_read_timestamp(),
    about 4.8 s in the past), served by the nearest replica without touching
    the leaseholder or waiting on writers. PostgreSQL: an ordinary read. Only
    reads that feed no decision may use this: history, reports, a balance
    shown to a person. A limit check never does (the posting path has no way
    to ask for it).
    """
    if name == COCKROACHDB:
        return ["SET TRANSACTION AS OF SYSTEM TIME follower_read_timestamp()"]
    return []


def terminate_sessions_sql(name: str, application_name: str) -> str:
    """SQL that kills every session with this application_name but the
    caller's (a drill and a test use it to make commits in flight ambiguous)."""
    if name == POSTGRESQL:
        return (
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            f"WHERE application_name = '{application_name}' AND pid <> pg_backend_pid()"
        )
    return (
        "CANCEL SESSIONS (SELECT session_id FROM [SHOW CLUSTER SESSIONS] "
        f"WHERE application_name = '{application_name}')"
    )


def writer_url(url: str, role: str) -> str:
    """The URL to connect with as the writer role: unchanged on PostgreSQL
    (the session SETs ROLE), the role as login user on CockroachDB."""
    parsed = make_url(url)
    if parsed.get_backend_name() == COCKROACHDB:
        return parsed.set(username=role, password=None).render_as_string(hide_password=False)
    return url


# --- the entries table ---------------------------------------------------------------


def entries_table_options(name: str) -> dict[str, Any]:
    """Keyword arguments for creating the entries table.

    PostgreSQL: hash-partitioned by account_id, so one account's history sits
    in one partition. CockroachDB: no partitioning clause; the primary key
    prefix (account_id, entry_id) keeps an account's history contiguous and
    ranges split by themselves.
    """
    if name == POSTGRESQL:
        return {"postgresql_partition_by": "HASH (account_id)"}
    return {}


def idempotency_index_ddl(name: str, index: str) -> list[str]:
    """The unique index on (client_id, idempotency_key).

    Clients often use increasing keys (order-1001, order-1002, ...) under one
    client id, so on CockroachDB a plain index would send every insert to the
    end of one range. There it is hash-sharded, which spreads those inserts.
    PostgreSQL has no such hot spot: a plain unique constraint.
    """
    if name == COCKROACHDB:
        return [
            f"CREATE UNIQUE INDEX {index} ON transactions (client_id, idempotency_key) USING HASH"
        ]
    return [f"ALTER TABLE transactions ADD CONSTRAINT {index} UNIQUE (client_id, idempotency_key)"]


def time_ordered_index_ddl(name: str, index: str, table: str, column: str) -> list[str]:
    """An index on a time column. Every new row lands at its end, which on
    CockroachDB is one hot range: there it is hash-sharded."""
    using = " USING HASH" if name == COCKROACHDB else ""
    return [f"CREATE INDEX {index} ON {table} ({column}){using}"]


def hot_deltas_ddl(name: str) -> str:
    """The table of a hot account's deltas not yet folded into a snapshot.

    Every posting that touches a hot account inserts here, all under one
    account id. On PostgreSQL that is fine (random transaction ids spread the
    inserts over the index). On CockroachDB a key led by one account id is
    one range taking every write: there the primary key is hash-sharded,
    which spreads the rows over buckets; reading one account's deltas then
    visits each bucket, which CockroachDB does by itself.
    """
    using = " USING HASH" if name == COCKROACHDB else ""
    return (
        "CREATE TABLE hot_deltas ("
        "account_id VARCHAR(128) NOT NULL REFERENCES accounts (id), "
        "transaction_id UUID NOT NULL REFERENCES transactions (id), "
        "created_at TIMESTAMP WITH TIME ZONE NOT NULL, "
        "posted_debits BIGINT NOT NULL, posted_credits BIGINT NOT NULL, "
        "pending_debits BIGINT NOT NULL, pending_credits BIGINT NOT NULL, "
        f"CONSTRAINT hot_deltas_pkey PRIMARY KEY (account_id, transaction_id){using})"
    )


def entries_partition_ddl(name: str, partitions: int) -> list[str]:
    if name != POSTGRESQL:
        return []
    return [
        f"CREATE TABLE entries_p{i} PARTITION OF entries "
        f"FOR VALUES WITH (MODULUS {partitions}, REMAINDER {i})"
        for i in range(partitions)
    ]


# --- the append-only writer role ------------------------------------------------------

_GRANTS = [
    "GRANT SELECT, INSERT ON TABLE transactions, entries TO {role}",
    "GRANT SELECT, INSERT ON TABLE accounts TO {role}",
    "GRANT SELECT, INSERT, UPDATE ON TABLE account_balances TO {role}",
]
# Later migrations grant on the tables they add (pending_expiry: 0002).


def writer_role_ddl(name: str, role: str) -> list[str]:
    """Create the writer role if needed and grant it what the service needs:
    INSERT and SELECT on the journal, never UPDATE or DELETE.

    Roles are cluster-wide on PostgreSQL, so several ledger databases on one
    server share it; it is created only if missing. On PostgreSQL it cannot log
    in (the service SETs ROLE to it); on CockroachDB it is the login user.
    """
    if name == POSTGRESQL:
        create = (
            "DO $$ BEGIN "
            f"IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') "
            f"THEN CREATE ROLE {role} NOLOGIN; END IF; END $$"
        )
    else:
        create = f"CREATE ROLE IF NOT EXISTS {role} WITH LOGIN"
    return [create] + [g.format(role=role) for g in _GRANTS]


def revoke_writer_role_ddl(name: str, role: str) -> list[str]:
    return [f"REVOKE ALL ON TABLE transactions, entries, accounts, account_balances FROM {role}"]


# --- errors --------------------------------------------------------------------------


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


def batches_postings(name: str) -> bool:
    """Whether a posting travels as two messages instead of four.

    On PostgreSQL a posting is `BEGIN; EXECUTE open(...)`, the engine's
    checks, then `EXECUTE write(...); COMMIT`: server-side prepared
    statements (SQL PREPARE, once per connection) run through the simple
    query protocol, which carries several statements in one message. BEGIN
    and COMMIT stop costing a round trip each, and the plans stay prepared.
    Measured on the same server: about 100 us less database CPU and 20 us
    less service CPU per posting than four messages with protocol-level
    prepared statements (psycopg's pipeline mode cost more CPU than the
    round trips it saved).

    CockroachDB keeps four messages (BEGIN, two statements, COMMIT, with
    protocol-level prepared statements): its SQL PREPARE/EXECUTE and
    multi-statement messages have not been tried against a CockroachDB
    server here, and the four-message path is the one it was built with.
    """
    return name == POSTGRESQL


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
