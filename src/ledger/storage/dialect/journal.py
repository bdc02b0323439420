"""The sealed journal's seam: what the sequencer may seal, and in which
order, on each database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from ledger.storage.dialect.names import COCKROACHDB, POSTGRESQL

# The sequencer gives every committed transaction a place in one order that
# never changes (see `queries/journal.py`). What may be sequenced, and in
# which order, is the one thing the two databases answer differently.
#
# PostgreSQL: every header stores the id of the database transaction that
# wrote it (`commit_xid`, from `pg_current_xact_id()`, a column default, so
# the posting path sends nothing more). A snapshot's xmin is the lowest xid
# still running when it was taken: every transaction with a smaller xid has
# ended, committed (and visible to that snapshot) or rolled back. So the
# sequencer takes, in one REPEATABLE READ snapshot, only headers whose xid is
# below the snapshot's xmin, in (xid, id) order after the last sealed one.
# A transaction that commits later had not ended then, so its xid is at or
# above that xmin, above everything sealed: the order is final. xid order is
# not commit order, and need not be: the sequence is an order no later
# commit can change, which is what the chain needs.
#
# CockroachDB: there is no xid, but every row carries the MVCC timestamp of
# the transaction that committed it (`crdb_internal_mvcc_timestamp`). A read
# AS OF SYSTEM TIME a closed timestamp (`follower_read_timestamp()`) sees
# every transaction that committed at or below it, and none can commit there
# any more. So the sequencer reads at such a time, in (timestamp, id) order
# after the last sealed one, and seals in a second, ordinary transaction
# (an AS OF SYSTEM TIME transaction cannot write). The block's number is its
# primary key, so a sealer whose read went stale loses to the one that
# sealed first and writes nothing. The read is bounded by `created_at` (a
# transaction's start, never after its commit timestamp) through an index,
# looking back `seal_lookback_seconds` before the last sealed timestamp: the
# longest a posting transaction may stay open.

COMMIT_ORDER_INDEX = "transactions_commit_order"


def journal_ddl(name: str) -> list[str]:
    """The position column and its index, for migration 0007. Rows written
    before the migration get position 0 and are sequenced first, by id."""
    if name == POSTGRESQL:
        return [
            "ALTER TABLE transactions ADD COLUMN commit_xid BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE transactions ALTER COLUMN commit_xid "
            "SET DEFAULT (pg_current_xact_id()::text)::bigint",
            # The sequencer's read: the headers after the last sealed xid, a
            # range at the index's right end. (A block-range index was tried
            # first: cheaper to insert into, but the newest ranges are not
            # summarized until autovacuum gets to them, so every sealing
            # round scanned them all, more of them the longer it ran.)
            f"CREATE INDEX {COMMIT_ORDER_INDEX} ON transactions (commit_xid)",
        ]
    return [
        # Unused there (the MVCC timestamp is the position), but present, so
        # both databases have the same columns.
        "ALTER TABLE transactions ADD COLUMN commit_xid BIGINT NOT NULL DEFAULT 0",
        f"CREATE INDEX {COMMIT_ORDER_INDEX} ON transactions (created_at) USING HASH",
    ]


def journal_tables_ddl(name: str) -> list[str]:
    """The sequence (one row per sealed transaction) and the blocks. On
    CockroachDB the sequence's key is hash-sharded: every block appends at
    its end."""
    using = " USING HASH" if name == COCKROACHDB else ""
    return [
        "CREATE TABLE journal_blocks ("
        "number BIGINT NOT NULL, "
        "first_sequence BIGINT NOT NULL, "
        "last_sequence BIGINT NOT NULL, "
        "merkle_root BYTEA NOT NULL, "
        "previous_hash BYTEA NOT NULL, "
        "hash BYTEA NOT NULL, "
        "sealed_at TIMESTAMP WITH TIME ZONE NOT NULL, "
        # Where the sequencer stopped: the last sealed (position, id).
        "horizon_position NUMERIC NOT NULL, "
        "horizon_id UUID NOT NULL, "
        "CONSTRAINT journal_blocks_pkey PRIMARY KEY (number), "
        "CONSTRAINT journal_blocks_range CHECK (first_sequence <= last_sequence))",
        # Keyed by block, then sequence: a block's rows are one range of the
        # key (its page, a proof, verify's walk), and one index fewer than a
        # key on the sequence beside an index on the block (every sealed
        # transaction writes each index once more, on the standby too).
        # No foreign key to `transactions`: its check locks the transaction's
        # row FOR KEY SHARE, a write (and a WAL record) on every sealed
        # transaction's header. The sequencer seals only rows it has just
        # read, and `verify` names a sequence row whose transaction is gone.
        "CREATE TABLE journal ("
        "block BIGINT NOT NULL REFERENCES journal_blocks (number), "
        "sequence BIGINT NOT NULL, "
        "transaction_id UUID NOT NULL, "
        "hash BYTEA NOT NULL, "
        f"CONSTRAINT journal_pkey PRIMARY KEY (block, sequence){using}, "
        "CONSTRAINT journal_transaction_id_key UNIQUE (transaction_id))",
    ]


def commit_position_sql(name: str) -> str:
    """The SQL expression of a header's position in commit order."""
    if name == POSTGRESQL:
        return "transactions.commit_xid"
    return "transactions.crdb_internal_mvcc_timestamp"


def seals_in_one_transaction(name: str) -> bool:
    """PostgreSQL reads what to seal and seals it in one REPEATABLE READ
    transaction; CockroachDB reads at a closed timestamp first."""
    return name == POSTGRESQL


def seal_options(name: str) -> dict[str, Any]:
    """Execution options of the sealing transaction. PostgreSQL: REPEATABLE
    READ, one snapshot with no predicate locks, so the sealer never makes a
    posting fail for serialization; two sealers racing for one block number
    meet at its primary key."""
    if name == POSTGRESQL:
        return {"isolation_level": "REPEATABLE READ"}
    return {}


def sealed_read_options(name: str) -> dict[str, Any]:
    """Execution options of a read of what is sealed (the events). Sealed
    rows never change, so the read needs one snapshot and nothing more.
    PostgreSQL: REPEATABLE READ, as the sequencer's read, because a
    SERIALIZABLE read leaves predicate locks that every posting's writes
    then check against. CockroachDB: its only isolation."""
    return seal_options(name)


# Any constant: the key of the lock below.
SEAL_LOCK_KEY = 0x6C656467  # "ledg"


def seal_guard_sql(name: str) -> str | None:
    """A cheap way for a sequencer to see that another is sealing right now
    and skip this round rather than do the same work and lose at the
    block's primary key: on PostgreSQL a transaction-scoped advisory lock,
    tried without waiting. It saves work only; the primary key keeps the
    order right without it. CockroachDB has no advisory locks: there the
    primary key alone decides."""
    if name == POSTGRESQL:
        return f"SELECT pg_try_advisory_xact_lock({SEAL_LOCK_KEY})"
    return None


def sealable_bound_sql(name: str) -> str:
    """PostgreSQL: the snapshot's xmin (every lower xid has ended).
    CockroachDB: a closed timestamp to read at."""
    if name == POSTGRESQL:
        return "SELECT (pg_snapshot_xmin(pg_current_snapshot())::text)::bigint, now()"
    return "SELECT follower_read_timestamp(), now()"


def closed_read_statements(name: str, at: datetime) -> list[str]:
    """Statements that open CockroachDB's read at the closed time `at`."""
    if name == COCKROACHDB:
        return [f"SET TRANSACTION AS OF SYSTEM TIME '{at.isoformat()}'"]
    return []


def candidate_window(
    name: str, horizon: Decimal | None, lookback_seconds: float
) -> tuple[str, dict[str, Any]]:
    """The condition (SQL text with its parameters) that keeps the
    sequencer's read to the headers after `horizon`, the last sealed
    position (None before the first block), through an index.

    PostgreSQL: from the last sealed xid, below the snapshot's xmin (the
    parameter `bound`). CockroachDB: headers begun at most
    `lookback_seconds` before the last sealed commit timestamp (an MVCC
    timestamp is nanoseconds since the epoch, as a decimal); the read's own
    time is the upper bound."""
    if name == POSTGRESQL:
        start = -1 if horizon is None else int(horizon)
        return (
            "transactions.commit_xid >= :window_from AND transactions.commit_xid < :bound",
            {"window_from": start},
        )
    since = datetime(1970, 1, 1, tzinfo=UTC)
    if horizon is not None:
        since += timedelta(seconds=float(horizon / 1_000_000_000) - lookback_seconds)
    return "transactions.created_at >= :window_from", {"window_from": since}
