"""The DDL that differs between the two databases (migrations call these)."""

from __future__ import annotations

from typing import Any

from ledger.storage.dialect.names import COCKROACHDB, POSTGRESQL

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


def audit_log_ddl(name: str) -> list[str]:
    """The audit trail's table, in its own schema, with as few indexes as
    it can serve its reads with: every posting writes one row, and each
    index is a write more (measured with pgbench on the posting's own
    statements: four indexes cost about 16% of the raw database's postings
    per second, these two about 8%). The primary key is the trail's order,
    time then id, which pages and exports; `target` finds what happened to
    one account, transaction or key. On CockroachDB a key led by the time is
    one range taking every write: there it is hash-sharded."""
    using = " USING HASH" if name == COCKROACHDB else ""
    return [
        "CREATE SCHEMA IF NOT EXISTS audit",
        "CREATE TABLE audit.log ("
        "id UUID NOT NULL, "
        "occurred_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(), "
        "request_id VARCHAR(128) NOT NULL, "
        "key_id VARCHAR(32), "
        "key_name VARCHAR(128) NOT NULL, "
        "client_id VARCHAR(128) NOT NULL, "
        "source VARCHAR(64), "
        "action VARCHAR(32) NOT NULL, "
        "target VARCHAR(255), "
        # Set only on the row of the write that committed this transaction.
        "transaction_id UUID, "
        "fingerprint VARCHAR(64), "
        "reason VARCHAR(500), "
        "outcome VARCHAR(16) NOT NULL, "
        "problem VARCHAR(64), "
        "detail TEXT, "
        f"CONSTRAINT log_pkey PRIMARY KEY (occurred_at, id){using})",
        "CREATE INDEX log_target ON audit.log (target)",
    ]


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
    server share it; it is created only if missing. It is the service's
    login on both databases: never a superuser, never the tables' owner,
    and a member of no role that is, so the service cannot become one.
    """
    if name == POSTGRESQL:
        create = (
            "DO $$ BEGIN "
            f"IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') "
            f"THEN CREATE ROLE {role} LOGIN; END IF; END $$"
        )
    else:
        create = f"CREATE ROLE IF NOT EXISTS {role} WITH LOGIN"
    return [create] + [g.format(role=role) for g in _GRANTS]


def revoke_writer_role_ddl(name: str, role: str) -> list[str]:
    return [f"REVOKE ALL ON TABLE transactions, entries, accounts, account_balances FROM {role}"]


METADATA_INDEX = "transactions_metadata"


def metadata_index_ddl(name: str) -> list[str]:
    """The index that serves metadata equality (`metadata @> '{"k": "v"}'`).
    PostgreSQL: GIN with jsonb_path_ops (smaller, and only containment is
    asked of it). CockroachDB: an inverted index, its GIN."""
    if name == COCKROACHDB:
        return [f"CREATE INVERTED INDEX {METADATA_INDEX} ON transactions (metadata)"]
    return [f"CREATE INDEX {METADATA_INDEX} ON transactions USING GIN (metadata jsonb_path_ops)"]
