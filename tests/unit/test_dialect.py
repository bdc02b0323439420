"""The PostgreSQL/CockroachDB seam, checked offline: real psycopg error
objects are classified, and the migrations are rendered for both dialects."""

import re
import uuid

import psycopg
import pytest
from psycopg import errors as pg_errors
from sqlalchemy import exc as sa_exc

from ledger.storage import dialect, failures, migrate
from ledger.storage import ids as storage_ids
from ledger.storage.failures import Failure

PG = "postgresql+psycopg://u@localhost/db"
CRDB = "cockroachdb+psycopg://u@localhost:26257/db"


def wrapped(orig: Exception, invalidated: bool = False) -> sa_exc.DBAPIError:
    return sa_exc.DBAPIError.instance(
        "COMMIT", {}, orig, psycopg.Error, connection_invalidated=invalidated
    )


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("40001", Failure.SERIALIZATION),  # also every CockroachDB RETRY_* error
        ("40P01", Failure.DEADLOCK),
        ("40003", Failure.AMBIGUOUS),  # CockroachDB's ambiguous result
        ("57P01", Failure.CONNECTION),  # pg_terminate_backend
        ("08006", Failure.CONNECTION),
        ("23505", Failure.FATAL),
        ("42501", Failure.FATAL),
    ],
)
def test_classify_real_psycopg_errors_by_sqlstate(state, expected):
    error = pg_errors.lookup(state)("boom")
    assert error.sqlstate == state
    assert failures.classify(error, during_commit=False) is expected
    assert failures.classify(wrapped(error), during_commit=False) is expected


def test_a_connection_lost_during_commit_is_ambiguous_not_failed():
    lost = psycopg.OperationalError("server closed the connection unexpectedly")
    assert (
        failures.classify(wrapped(lost, invalidated=True), during_commit=True) is Failure.AMBIGUOUS
    )
    assert (
        failures.classify(wrapped(lost, invalidated=True), during_commit=False)
        is Failure.CONNECTION
    )
    assert failures.classify(lost, during_commit=True) is Failure.AMBIGUOUS


def test_dialect_names():
    assert dialect.dialect_name(PG) == "postgresql"
    assert dialect.dialect_name(CRDB) == "cockroachdb"
    with pytest.raises(ValueError):
        dialect.dialect_name("sqlite:///x.db")


def test_entry_ids_are_time_ordered_uuid7_and_transaction_ids_random():
    import time

    first = storage_ids.new_entry_id()
    time.sleep(0.002)
    second = storage_ids.new_entry_id()
    assert first < second
    assert first.version == 7 and first.variant == uuid.RFC_4122
    assert storage_ids.new_transaction_id().version == 4


def test_session_setup_uses_set_role_only_on_postgresql():
    assert 'SET ROLE "w"' in dialect.session_setup("postgresql", "w", 1000)
    assert not any("ROLE" in s for s in dialect.session_setup("cockroachdb", "w", 1000))
    assert not any("ROLE" in s for s in dialect.session_setup("postgresql", "", 1000))


def test_writer_url_logs_in_as_the_role_on_both():
    assert dialect.writer_url(PG, "w").startswith("postgresql+psycopg://w@localhost")
    assert dialect.writer_url(CRDB, "w").startswith("cockroachdb+psycopg://w@")


def test_the_writer_role_is_a_login_and_nothing_more():
    sql = migrate.render_sql(PG)
    assert "CREATE ROLE ledger_writer LOGIN" in sql
    assert "ALTER ROLE ledger_writer WITH LOGIN" in sql
    for power in ("SUPERUSER", "CREATEROLE", "CREATEDB", "BYPASSRLS"):
        assert power not in sql


def test_postgresql_ddl_hash_partitions_entries():
    sql = migrate.render_sql(PG, partitions=8)
    assert "PARTITION BY HASH (account_id)" in sql
    assert sql.count("PARTITION OF entries") == 8
    assert "CONSTRAINT entries_pkey PRIMARY KEY (account_id, entry_id)" in sql


def test_cockroachdb_ddl_has_no_partitions_and_keeps_the_key_prefix():
    sql = migrate.render_sql(CRDB, partitions=8)
    assert "PARTITION" not in sql
    assert "CONSTRAINT entries_pkey PRIMARY KEY (account_id, entry_id)" in sql
    assert "CREATE ROLE IF NOT EXISTS ledger_writer" in sql
    assert "SERIAL" not in sql.upper() and "unique_rowid" not in sql


@pytest.mark.parametrize("url", [PG, CRDB])
def test_the_writer_role_never_gets_update_or_delete_on_the_journal(url):
    grants = [line for line in migrate.render_sql(url).splitlines() if line.startswith("GRANT")]
    journal = [g for g in grants if "transactions" in g or "entries" in g]
    assert journal == ["GRANT SELECT, INSERT ON TABLE transactions, entries TO ledger_writer;"]
    # DELETE only on the two work sets (the expiry queue, the hot deltas not
    # yet folded) and the webhook delivery log (pruned past its retention),
    # never on a journal, snapshot or account table.
    assert [g for g in grants if "DELETE" in g] == [
        "GRANT SELECT, INSERT, DELETE ON TABLE pending_expiry TO ledger_writer;",
        "GRANT SELECT, INSERT, DELETE ON TABLE hot_deltas TO ledger_writer;",
        "GRANT SELECT, INSERT, DELETE ON TABLE webhook_deliveries TO ledger_writer;",
    ]
    assert "GRANT SELECT, INSERT ON TABLE hot_snapshots, account_changes TO ledger_writer;" in (
        grants
    )
    assert "GRANT SELECT, INSERT ON TABLE posting_batches TO ledger_writer;" in grants
    # UPDATE only where a row's state changes: a balance, a key's revocation,
    # an account's status, metadata and limits, a webhook endpoint's cursor
    # and lease, a reconciliation exception's resolution, the reconciliation
    # events' counter.
    assert [g for g in grants if "UPDATE" in g] == [
        "GRANT SELECT, INSERT, UPDATE ON TABLE account_balances TO ledger_writer;",
        "GRANT SELECT, INSERT, UPDATE ON TABLE api_keys TO ledger_writer;",
        "GRANT UPDATE ON TABLE accounts TO ledger_writer;",
        "GRANT SELECT, INSERT, UPDATE ON TABLE webhook_endpoints TO ledger_writer;",
        "GRANT SELECT, INSERT, UPDATE ON TABLE recon_exceptions TO ledger_writer;",
        "GRANT SELECT, UPDATE ON TABLE recon_event_counter TO ledger_writer;",
    ]
    # Reconciliation's statements, lines, runs, matches and events are
    # append-only.
    for table in (
        "recon_sources",
        "recon_statements",
        "recon_lines",
        "recon_runs",
        "recon_matches",
        "recon_events",
    ):
        assert f"GRANT SELECT, INSERT ON TABLE {table} TO ledger_writer;" in grants
    # The audit trail: insert and read, nothing else.
    assert [g for g in grants if "audit" in g] == [
        "GRANT USAGE ON SCHEMA audit TO ledger_writer;",
        "GRANT SELECT, INSERT ON TABLE audit.log TO ledger_writer;",
    ]


def test_terminate_sessions_sql_per_dialect():
    assert "pg_terminate_backend" in dialect.terminate_sessions_sql("postgresql", "x")
    assert "CANCEL SESSIONS" in dialect.terminate_sessions_sql("cockroachdb", "x")


@pytest.mark.parametrize("url", [PG, CRDB])
def test_the_posting_statements_compile_for_both_dialects(url):
    from ledger.settings import Settings
    from ledger.storage.database import create_engine
    from ledger.storage.posting import statements

    engine = create_engine(url, Settings())  # builds, does not connect
    assert engine.dialect.is_async
    assert engine.dialect.name == dialect.dialect_name(url)
    compiled = {
        "lock": str(statements.open_posting(2).compile(dialect=engine.dialect)),
        "entries": str(statements.insert_entries(3).compile(dialect=engine.dialect)),
        "balances": str(statements.add_to_balances(2).compile(dialect=engine.dialect)),
    }
    # Ordinary accounts' rows are locked inside a CTE; hot ones are only read.
    assert "locked AS" in compiled["lock"] and "FOR UPDATE" in compiled["lock"]
    assert "account_balances.hot IS false" in compiled["lock"]
    # The audit row and the header are inserted by the same statement, as CTEs.
    flat = " ".join(compiled["lock"].split())
    assert flat.startswith("WITH audit_row AS (INSERT INTO audit.log")
    assert "header AS (INSERT INTO transactions" in flat
    assert "RETURNING transactions.created_at" in flat
    assert compiled["entries"].count("::UUID") == 6  # entry_id and transaction_id, 3 rows
    assert "FROM (VALUES" in compiled["balances"]


def test_follower_reads_only_on_cockroachdb():
    assert dialect.stale_read_statements("cockroachdb") == [
        "SET TRANSACTION AS OF SYSTEM TIME follower_read_timestamp()"
    ]
    assert dialect.stale_read_statements("postgresql") == []


def test_the_posting_path_has_no_way_to_read_stale():
    """A limit check must never see a follower read: the unit a posting runs
    in offers no stale option, and only the display reads take one."""
    import inspect

    from ledger.engine.ports import PostingUnit, Store

    for name, member in inspect.getmembers(PostingUnit, inspect.isfunction):
        assert "stale" not in inspect.signature(member).parameters, name
    assert "stale" in inspect.signature(Store.cached_totals).parameters


def test_the_idempotency_index_is_hash_sharded_on_cockroachdb_only():
    crdb = migrate.render_sql(CRDB)
    pg = migrate.render_sql(PG)
    assert (
        "CREATE UNIQUE INDEX transactions_idempotency_key ON transactions "
        "(client_id, idempotency_key) USING HASH" in crdb
    )
    assert "USING HASH" not in pg
    assert "CONSTRAINT transactions_idempotency_key UNIQUE (client_id, idempotency_key)" in pg


@pytest.mark.parametrize(
    "message",
    [
        "restart transaction: TransactionRetryWithProtoRefreshError: WriteTooOldError",
        "restart transaction: TransactionRetryWithProtoRefreshError: "
        "TransactionRetryError: retry txn (RETRY_SERIALIZABLE)",
        "restart transaction: TransactionRetryWithProtoRefreshError: ReadWithinUncertaintyInterval",
    ],
)
def test_cockroachdb_restart_errors_are_retried(message):
    error = pg_errors.lookup("40001")(message)
    assert failures.classify(wrapped(error), during_commit=True) is Failure.SERIALIZATION


def test_cockroachdb_ambiguous_result_is_never_a_failure():
    error = pg_errors.lookup("40003")("result is ambiguous (error=rpc error: ...)")
    assert failures.classify(wrapped(error), during_commit=True) is Failure.AMBIGUOUS


@pytest.mark.parametrize("url", [PG, CRDB])
def test_the_hot_account_statements_compile_for_both_dialects(url):
    from ledger.settings import Settings
    from ledger.storage.database import create_engine
    from ledger.storage.posting.statements import write_entries
    from ledger.storage.queries import hot
    from ledger.storage.queries.balances import CURRENT_TOTALS

    engine = create_engine(url, Settings())
    fold = str(hot.FOLD.compile(dialect=engine.dialect))
    # One statement: delete the deltas and append the snapshot of exactly them.
    assert " ".join(fold.split()).startswith("WITH gone AS (DELETE FROM hot_deltas")
    assert "RETURNING hot_deltas.created_at" in fold
    assert "INSERT INTO hot_snapshots" in fold
    current = str(CURRENT_TOTALS.compile(dialect=engine.dialect))
    assert current.count("LATERAL") == 2
    as_of = str(hot.SNAPSHOT_AS_OF.compile(dialect=engine.dialect))
    assert "NOT (EXISTS" in as_of and "hot_deltas" in as_of
    for statement in (hot.OPEN_SNAPSHOT, hot.DUE_FOR_COMPACTION, write_entries(2, 1)):
        statement.compile(dialect=engine.dialect)
    # After the header, one statement writes all: entries and hot deltas as
    # CTEs of the balance update.
    both = " ".join(str(write_entries(2, 1, 2).compile(dialect=engine.dialect)).split())
    assert both.startswith("WITH w0 AS (INSERT INTO hot_deltas")
    assert "w1 AS (INSERT INTO entries" in both
    assert ") UPDATE account_balances SET" in both


def test_hot_deltas_are_hash_sharded_on_cockroachdb_only():
    crdb = migrate.render_sql(CRDB)
    pg = migrate.render_sql(PG)
    assert "CONSTRAINT hot_deltas_pkey PRIMARY KEY (account_id, transaction_id) USING HASH)" in crdb
    assert "CONSTRAINT hot_deltas_pkey PRIMARY KEY (account_id, transaction_id))" in pg


def test_entry_ids_follow_the_creation_time_they_are_given():
    from datetime import UTC, datetime, timedelta

    at = datetime(2026, 11, 21, 12, 0, 0, 123456, tzinfo=UTC)
    ids = [storage_ids.new_entry_id(at) for _ in range(50)]
    assert all(storage_ids.entry_id_floor(at) <= i < storage_ids.entry_id_ceiling(at) for i in ids)
    assert storage_ids.entry_id_ceiling(at) <= storage_ids.new_entry_id(
        at + timedelta(milliseconds=1)
    )
    assert storage_ids.new_entry_id(at - timedelta(milliseconds=1)) < storage_ids.entry_id_floor(at)
    assert all(i.version == 7 for i in ids)


def test_a_conflict_is_not_a_lost_connection():
    """The raw posting path drops a connection from the pool only when it is
    gone: a serialization failure leaves it healthy (and reusable)."""
    assert not failures.connection_lost(pg_errors.lookup("40001")("conflict"))
    assert not failures.connection_lost(pg_errors.lookup("23505")("duplicate"))
    assert failures.connection_lost(pg_errors.lookup("57P01")("terminating connection"))
    assert failures.connection_lost(pg_errors.lookup("08006")("connection failure"))
    assert failures.connection_lost(psycopg.OperationalError("server closed the connection"))


@pytest.mark.parametrize("role", ["writer; DROP TABLE entries", "a-b", ""])
def test_every_migration_refuses_a_role_that_is_not_a_plain_name(role):
    with pytest.raises(ValueError, match="role must be"):
        migrate.render_sql(PG, role=role)


@pytest.mark.parametrize("url", [PG, CRDB])
def test_the_audit_trail_has_two_indexes_and_a_sharded_key_on_cockroachdb(url):
    ddl = " ".join(migrate.render_sql(url).split())
    assert "CREATE SCHEMA IF NOT EXISTS audit" in ddl
    sharded = " USING HASH" if url == CRDB else ""
    assert f"CONSTRAINT log_pkey PRIMARY KEY (occurred_at, id){sharded})" in ddl
    assert re.findall(r"CREATE INDEX (\w+) ON audit\.log", ddl) == ["log_target"]


@pytest.mark.parametrize("url", [PG, CRDB])
def test_the_event_and_lease_statements_compile_for_both_dialects(url):
    """The feed's read and the leases' clock use nothing one of the two
    lacks: row comparisons, EXISTS, interval arithmetic on now()."""
    from ledger.engine.events import EVENT_TYPES, EventFilter
    from ledger.settings import Settings
    from ledger.storage.database import create_engine
    from ledger.storage.queries import events, webhooks
    from ledger.storage.tables import webhook_endpoints

    engine = create_engine(url, Settings())  # builds, does not connect
    feed = str(
        events._sealed_query(EventFilter(EVENT_TYPES, "acct")).compile(dialect=engine.dialect)
    )
    flat = " ".join(feed.split())
    assert "(journal.block, journal.sequence) >" in flat
    assert "EXISTS (SELECT * FROM entries" in flat
    assert "ORDER BY journal.block, journal.sequence" in flat
    lease = str(
        webhook_endpoints.update()
        .values(lease_until=webhooks._seconds_from_now("lease"))
        .compile(dialect=engine.dialect)
    )
    assert "now() + CAST(" in lease and "INTERVAL '1 second'" in lease


def test_the_metadata_index_is_gin_on_postgresql_and_inverted_on_cockroachdb():
    crdb = migrate.render_sql(CRDB)
    pg = migrate.render_sql(PG)
    assert "CREATE INVERTED INDEX transactions_metadata ON transactions (metadata)" in crdb
    assert "USING GIN" not in crdb
    assert (
        "CREATE INDEX transactions_metadata ON transactions USING GIN (metadata jsonb_path_ops)"
        in pg
    )
