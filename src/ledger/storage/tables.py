"""The tables, as SQLAlchemy Core objects the queries are built from.

The DDL itself lives in the Alembic migrations under `schema/`, which also
create what Core cannot express (hash partitions, grants). Keep the two in
step: `tests/integration/test_schema.py` compares them.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

IDEMPOTENCY_CONSTRAINT = "transactions_idempotency_key"
BATCH_KEY_CONSTRAINT = "posting_batches_pkey"
REVERSES_CONSTRAINT = "transactions_reverses_key"
RESOLVES_CONSTRAINT = "transactions_resolves_key"

CURRENCY_SCALE_CONSTRAINT = "accounts_currency_scale_fkey"

# One scale per currency (migration 0005): an account's (currency, scale)
# must be its currency's row here, so the database itself refuses a second
# scale for a code.
currencies = Table(
    "currencies",
    metadata,
    Column("code", String(12), primary_key=True),
    Column("scale", SmallInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("code", "scale", name="currencies_code_scale_key"),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("currency", String(12), nullable=False),
    Column("scale", SmallInteger, nullable=False),
    Column("normal_side", String(6), nullable=False),
    Column("debits_must_not_exceed_credits", Boolean, nullable=False),
    Column("credits_must_not_exceed_debits", Boolean, nullable=False),
    Column("metadata", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Migration 0006: active, frozen (no new posting touches it) or closed (final).
    Column("status", String(8), nullable=False, server_default="active"),
    CheckConstraint("status IN ('active', 'frozen', 'closed')", name="accounts_status_check"),
    ForeignKeyConstraint(
        ["currency", "scale"],
        ["currencies.code", "currencies.scale"],
        name=CURRENCY_SCALE_CONSTRAINT,
    ),
)

account_balances = Table(
    "account_balances",
    metadata,
    Column("account_id", String(128), ForeignKey("accounts.id"), primary_key=True),
    Column("posted_debits", BigInteger, nullable=False),
    Column("posted_credits", BigInteger, nullable=False),
    Column("pending_debits", BigInteger, nullable=False, server_default="0"),
    Column("pending_credits", BigInteger, nullable=False, server_default="0"),
    # A hot account's row is not kept up to date: its balance is its newest
    # hot_snapshots row plus its hot_deltas.
    Column("hot", Boolean, nullable=False, server_default="false"),
)

transactions = Table(
    "transactions",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("client_id", String(128), nullable=False),
    Column("idempotency_key", String(255), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("reverses", Uuid, ForeignKey("transactions.id"), nullable=True),
    Column("description", Text, nullable=True),
    Column("metadata", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("pending", Boolean, nullable=False, server_default="false"),
    Column("timeout_seconds", Integer, nullable=True),
    Column("resolves", Uuid, ForeignKey("transactions.id"), nullable=True),
    Column("resolution", String(8), nullable=True),
    # Migration 0007: the writing database transaction's id on PostgreSQL
    # (a column default), the header's place in commit order; 0 on
    # CockroachDB, which orders by MVCC timestamp. Its index differs between
    # the two (`dialect.journal_ddl`) and is not declared here.
    Column("commit_xid", BigInteger, nullable=False, server_default="0"),
    UniqueConstraint("client_id", "idempotency_key", name=IDEMPOTENCY_CONSTRAINT),
)
Index(REVERSES_CONSTRAINT, transactions.c.reverses, unique=True)
# Migration 0011: metadata containment (GIN on PostgreSQL, an inverted index
# on CockroachDB: `dialect.metadata_index_ddl`).
Index(
    "transactions_metadata",
    transactions.c.metadata,
    postgresql_using="gin",
    postgresql_ops={"metadata": "jsonb_path_ops"},
)
Index(RESOLVES_CONSTRAINT, transactions.c.resolves, unique=True)

entries = Table(
    "entries",
    metadata,
    Column("account_id", String(128), ForeignKey("accounts.id"), nullable=False),
    Column("entry_id", Uuid, nullable=False),
    Column("transaction_id", Uuid, ForeignKey("transactions.id"), nullable=False),
    Column("leg", SmallInteger, nullable=False),
    Column("direction", String(6), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(12), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("pending", Boolean, nullable=False, server_default="false"),
    PrimaryKeyConstraint("account_id", "entry_id", name="entries_pkey"),
)
Index("entries_transaction_id", entries.c.transaction_id)
# `as_of` sums an account's pending entries; this keeps that to them.
Index(
    "entries_pending",
    entries.c.account_id,
    entries.c.created_at,
    postgresql_where=entries.c.pending,
)

# Migration 0009: what an atomic batch's key names (its items' keys name
# their transactions as a single posting's does).
posting_batches = Table(
    "posting_batches",
    metadata,
    Column("client_id", String(128), nullable=False),
    Column("idempotency_key", String(255), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("transaction_ids", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("client_id", "idempotency_key", name=BATCH_KEY_CONSTRAINT),
)

# A work queue, not journal: one row per unresolved pending transaction with
# a timeout, deleted by whatever resolves it.
pending_expiry = Table(
    "pending_expiry",
    metadata,
    Column("transaction_id", Uuid, ForeignKey("transactions.id"), primary_key=True),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)
# Hash-sharded on CockroachDB (see dialect.time_ordered_index_ddl).
Index("pending_expiry_expires_at", pending_expiry.c.expires_at)


# Hot accounts (migration 0003): appended snapshots, and the deltas not yet
# folded into one (a work set the compactor empties).
hot_snapshots = Table(
    "hot_snapshots",
    metadata,
    Column("account_id", String(128), ForeignKey("accounts.id"), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("kind", String(8), nullable=False),
    Column("watermark", DateTime(timezone=True), nullable=False),
    Column("taken_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("posted_debits", BigInteger, nullable=False),
    Column("posted_credits", BigInteger, nullable=False),
    Column("pending_debits", BigInteger, nullable=False),
    Column("pending_credits", BigInteger, nullable=False),
    Column("folded", Integer, nullable=False),
    Column("late_from", DateTime(timezone=True), nullable=True),
    PrimaryKeyConstraint("account_id", "seq", name="hot_snapshots_pkey"),
)

hot_deltas = Table(
    "hot_deltas",
    metadata,
    Column("account_id", String(128), ForeignKey("accounts.id"), nullable=False),
    Column("transaction_id", Uuid, ForeignKey("transactions.id"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("posted_debits", BigInteger, nullable=False),
    Column("posted_credits", BigInteger, nullable=False),
    Column("pending_debits", BigInteger, nullable=False),
    Column("pending_credits", BigInteger, nullable=False),
    PrimaryKeyConstraint("account_id", "transaction_id", name="hot_deltas_pkey"),
)

account_changes = Table(
    "account_changes",
    metadata,
    Column("account_id", String(128), ForeignKey("accounts.id"), nullable=False),
    Column("change_id", Uuid, nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("field", String(32), nullable=False),
    Column("old_value", Text, nullable=False),
    Column("new_value", Text, nullable=False),
    Column("reason", String(500), nullable=True),
    PrimaryKeyConstraint("account_id", "change_id", name="account_changes_pkey"),
)


# The sealed journal (migration 0007): blocks, and each sealed transaction's
# place and hash. Appended by the sequencer, never changed.
journal_blocks = Table(
    "journal_blocks",
    metadata,
    Column("number", BigInteger, nullable=False),
    Column("first_sequence", BigInteger, nullable=False),
    Column("last_sequence", BigInteger, nullable=False),
    Column("merkle_root", LargeBinary, nullable=False),
    Column("previous_hash", LargeBinary, nullable=False),
    Column("hash", LargeBinary, nullable=False),
    Column("sealed_at", DateTime(timezone=True), nullable=False),
    Column("horizon_position", Numeric, nullable=False),
    Column("horizon_id", Uuid, nullable=False),
    PrimaryKeyConstraint("number", name="journal_blocks_pkey"),
    CheckConstraint("first_sequence <= last_sequence", name="journal_blocks_range"),
)

journal = Table(
    "journal",
    metadata,
    Column("block", BigInteger, ForeignKey("journal_blocks.number"), nullable=False),
    Column("sequence", BigInteger, nullable=False),
    # No foreign key to transactions: see `dialect.journal_tables_ddl`.
    Column("transaction_id", Uuid, nullable=False),
    Column("hash", LargeBinary, nullable=False),
    PrimaryKeyConstraint("block", "sequence", name="journal_pkey"),
    UniqueConstraint("transaction_id", name="journal_transaction_id_key"),
)


# Webhooks (migration 0008): the endpoints, each with where its delivery
# stands and which process holds its lease, and a log of delivery attempts.
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("url", String(2048), nullable=False),
    Column("event_types", JSONB, nullable=False),
    Column("description", String(500), nullable=True),
    Column("client_id", String(128), nullable=False),
    # The creating key's account prefixes: the endpoint gets the events that
    # key could read, no more.
    Column("accounts", JSONB, nullable=True),
    Column("secret", String(128), nullable=False),
    Column("previous_secret", String(128), nullable=True),
    Column("previous_secret_until", DateTime(timezone=True), nullable=True),
    Column("status", String(8), nullable=False),
    Column("status_reason", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("changed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # The last event delivered (acknowledged with a 2xx), as (block, sequence).
    Column("cursor_block", BigInteger, nullable=False),
    Column("cursor_sequence", BigInteger, nullable=False),
    # ... and the last reconciliation event delivered (migration 0012).
    Column("cursor_exception", BigInteger, nullable=False, server_default="0"),
    # Bumped by every change an operator makes (replay, rotation, deletion):
    # a deliverer holding an older generation stops and reloads.
    Column("generation", Integer, nullable=False),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", DateTime(timezone=True), nullable=True),
    Column("failing_since", DateTime(timezone=True), nullable=True),
    Column("last_error", String(500), nullable=True),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
    # The key that registered it (migration 0013): revoking that key pauses it.
    Column("key_id", String(32), nullable=True),
    CheckConstraint(
        "status IN ('active', 'paused', 'disabled', 'deleted')",
        name="webhook_endpoints_status_check",
    ),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("endpoint_id", String(32), ForeignKey("webhook_endpoints.id"), nullable=False),
    Column("attempted_at", DateTime(timezone=True), nullable=False),
    Column("id", Uuid, nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("outcome", String(12), nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", String(500), nullable=True),
    Column("duration_ms", Integer, nullable=False),
    PrimaryKeyConstraint("endpoint_id", "attempted_at", "id", name="webhook_deliveries_pkey"),
)

Index("webhook_endpoints_key", webhook_endpoints.c.key_id)

# Access control (migration 0004): API keys, and the audit trail in its own
# schema, where the service's role may insert and read and nothing else.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("client_id", String(128), nullable=False),
    Column("scopes", JSONB, nullable=False),
    Column("accounts", JSONB, nullable=True),
    Column("requests_per_second", Integer, nullable=True),
    Column("secret_sha256", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

AUDIT_SCHEMA = "audit"

audit_log = Table(
    "log",
    metadata,
    Column("id", Uuid, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("request_id", String(128), nullable=False),
    Column("key_id", String(32), nullable=True),
    Column("key_name", String(128), nullable=False),
    Column("client_id", String(128), nullable=False),
    Column("source", String(64), nullable=True),
    Column("action", String(32), nullable=False),
    Column("target", String(255), nullable=True),
    Column("transaction_id", Uuid, nullable=True),
    Column("fingerprint", String(64), nullable=True),
    Column("reason", String(500), nullable=True),
    Column("outcome", String(16), nullable=False),
    Column("problem", String(64), nullable=True),
    Column("detail", Text, nullable=True),
    # The accounts or prefixes the row concerns (migration 0013); null: for
    # unlimited keys only (see ledger.engine.reach).
    Column("reach", JSONB, nullable=True),
    # The trail's order; hash-sharded on CockroachDB (see dialect.audit_log_ddl).
    PrimaryKeyConstraint("occurred_at", "id", name="log_pkey"),
    schema=AUDIT_SCHEMA,
)
Index("log_target", audit_log.c.target)

# Reconciliation's tables join the same metadata (migration 0010).
from ledger.storage.queries.reconciliation import tables as _reconciliation  # noqa: E402, F401
