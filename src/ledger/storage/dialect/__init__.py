"""Everything that differs between PostgreSQL and CockroachDB, in one place.

No other module asks which database it talks to: they call the functions
of this package (sessions and the posting path here, the DDL in `ddl`, the
sequencer's reads in `journal`; all of them re-exported here). The unit
tests exercise every branch offline (`tests/unit/test_dialect.py`).
What is the same on both lives elsewhere: ids in `ids.py`, the classification
of database errors in `failures.py`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import make_url

from ledger.storage.dialect.names import COCKROACHDB, POSTGRESQL


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


# --- sessions ------------------------------------------------------------------------


def session_setup(name: str, role: str, statement_timeout_ms: int) -> list[str]:
    """Statements run once on every new connection.

    The service logs in as the append-only writer role itself. On
    PostgreSQL it SETs ROLE to it too, which changes nothing for that login
    and keeps a service still given the owner's URL on the writer's rights
    (it warns at start; see `login_is_privileged`). On CockroachDB only
    admins may SET ROLE, so there the login user is the writer role.
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


def replica_read_options(name: str) -> dict[str, Any]:
    """Execution options of reads on a replica. PostgreSQL refuses
    SERIALIZABLE on a hot standby: REPEATABLE READ READ ONLY, one snapshot.
    CockroachDB: its follower reads (see `stale_read_statements`)."""
    return snapshot_read_options(name)


def replica_lag_sql(name: str) -> str:
    """One row: (is a standby, how far behind the primary in ms, its now()).
    PostgreSQL: 0 once it has replayed all it received, else the age of its
    last replayed commit. CockroachDB, inside a follower read: how far the
    read's timestamp is behind the statement's."""
    if name == COCKROACHDB:
        return (
            "SELECT true, CAST(extract(epoch FROM statement_timestamp() - now()) * 1000 AS INT), "
            "now()"
        )
    return (
        "SELECT pg_is_in_recovery(), CASE WHEN NOT pg_is_in_recovery() "
        "OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
        "ELSE CAST(COALESCE(extract(epoch FROM now() - pg_last_xact_replay_timestamp()) * 1000, 0) "
        "AS BIGINT) END, now()"
    )


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


def privileged_login_query() -> str:
    """Whether the session's login could take the owner's rights: a
    superuser (CockroachDB: an admin), a role that may create roles, or a
    member of the role owning `entries`. The same SQL on both."""
    return (
        "SELECT r.rolsuper OR r.rolcreaterole OR pg_has_role(session_user, "
        "(SELECT tableowner FROM pg_tables WHERE tablename = 'entries' LIMIT 1), 'MEMBER') "
        "FROM pg_roles r WHERE r.rolname = session_user"
    )


def writer_url(url: str, role: str) -> str:
    """The owner's URL with the writer role as its login (and no password):
    what the service connects with where the login needs none, as on the
    embedded server's socket or an insecure test cluster."""
    parsed = make_url(url)
    return parsed.set(username=role, password=None).render_as_string(hide_password=False)


# --- the posting path ----------------------------------------------------------------


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


def posting_settings(name: str) -> list[str]:
    """Statements that open every posting transaction, right after BEGIN.

    PostgreSQL: `SET LOCAL enable_seqscan = off`. Under SERIALIZABLE a
    sequential scan takes a predicate lock on the whole relation, so one
    posting whose locking read of `account_balances` was planned as a scan
    conflicts with every concurrent posting's balance update. The planner
    picks that scan whenever the table looks small: on a fresh cluster,
    before the first autoanalyze, a 1,000-account table is costed at 14.6
    for a scan against more for three index probes. That was `fan_in_hot`'s
    retry storm right after `ledger cluster up` (0.7 retries per commit,
    0.015 once the table was analyzed). With the setting the posting's reads
    are index lookups whatever the statistics say (a scan is still used
    where nothing else can answer), and its predicate locks stay on the
    rows and index pages it touched. PostgreSQL's manual gives the same
    advice for serializable workloads.

    CockroachDB: nothing. A lookup by primary key is a point read of the
    primary index whatever the statistics, and there are no predicate locks.
    """
    return ["SET LOCAL enable_seqscan = off"] if name == POSTGRESQL else []


from ledger.storage.dialect.ddl import *  # noqa: E402, F403
from ledger.storage.dialect.journal import *  # noqa: E402, F403
