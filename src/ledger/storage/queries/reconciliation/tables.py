"""Reconciliation's tables (migration 0010), in the one `metadata`
`ledger.storage.tables` holds (which imports this module last)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

from ledger.storage.tables import metadata

STATEMENT_SHA256 = "recon_statements_sha256"

recon_sources = Table(
    "recon_sources",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("account_id", String(128), ForeignKey("accounts.id"), nullable=False),
    # The source as created (`NewSource`).
    Column("settings", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

recon_statements = Table(
    "recon_statements",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("source_id", String(128), ForeignKey("recon_sources.id"), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("line_count", Integer, nullable=False),
    Column("skipped", Integer, nullable=False),
    Column("opening", BigInteger, nullable=True),
    Column("closing", BigInteger, nullable=True),
    Column("first_date", Date, nullable=True),
    Column("last_date", Date, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("source_id", "sha256", name=STATEMENT_SHA256),
)

recon_lines = Table(
    "recon_lines",
    metadata,
    Column("source_id", String(128), nullable=False),
    Column("booked_on", Date, nullable=False),
    Column("id", String(56), nullable=False),
    Column("statement_id", String(40), nullable=False),
    Column("line_no", Integer, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(12), nullable=False),
    Column("external_id", String(255), nullable=True),
    Column("reference", String(255), nullable=True),
    Column("description", Text, nullable=True),
    Column("status", String(8), nullable=False),
    Column("reversal", Boolean, nullable=False),
    Column("grp", String(255), nullable=True),
    PrimaryKeyConstraint("source_id", "booked_on", "id", name="recon_lines_pkey"),
)
Index("recon_lines_id", recon_lines.c.source_id, recon_lines.c.id)

recon_runs = Table(
    "recon_runs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("source_id", String(128), ForeignKey("recon_sources.id"), nullable=False),
    Column("from_date", Date, nullable=False),
    Column("to_date", Date, nullable=False),
    Column("as_of", Date, nullable=False),
    Column("dry_run", Boolean, nullable=False),
    Column("counts", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

recon_matches = Table(
    "recon_matches",
    metadata,
    Column("run_id", String(40), nullable=False),
    Column("id", String(40), nullable=False),
    Column("source_id", String(128), nullable=False),
    Column("kind", String(12), nullable=False),
    Column("statement_lines", JSONB, nullable=False),
    Column("entry_ids", JSONB, nullable=False),
    Column("transaction_ids", JSONB, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("difference", BigInteger, nullable=False),
    Column("tentative", Boolean, nullable=False),
    PrimaryKeyConstraint("run_id", "id", name="recon_matches_pkey"),
)
Index("recon_matches_manual", recon_matches.c.source_id, recon_matches.c.kind)

recon_exceptions = Table(
    "recon_exceptions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("source_id", String(128), ForeignKey("recon_sources.id"), nullable=False),
    Column("run_id", String(40), nullable=False),
    Column("class", String(24), nullable=False),
    Column("severity", String(8), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(12), nullable=False),
    Column("subject", String(300), nullable=False),
    Column("statement_line", String(56), nullable=True),
    Column("entry_id", String(40), nullable=True),
    Column("transaction_id", String(40), nullable=True),
    Column("detail", String(500), nullable=True),
    Column("detected_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("status", String(8), nullable=False),
    Column("resolution", String(16), nullable=True),
    Column("note", String(500), nullable=True),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    Column("adjustment_transaction_id", String(40), nullable=True),
    CheckConstraint("status IN ('open', 'resolved')", name="recon_exceptions_status_check"),
)
Index("recon_exceptions_subject", recon_exceptions.c.source_id, recon_exceptions.c.subject)
Index(
    "recon_exceptions_open",
    recon_exceptions.c.status,
    recon_exceptions.c["class"],
    recon_exceptions.c.severity,
)

# Migration 0012: the exceptions as events, the event feed's second stream
# (`ledger.engine.reconcile.feed`), numbered by the one counter row a run
# bumps last in its transaction. An event row keeps what of the exception
# may change later (severity, amount, run), as it stood.
recon_events = Table(
    "recon_events",
    metadata,
    Column("sequence", BigInteger, nullable=False, autoincrement=False),
    Column("exception_id", String(40), nullable=False),
    Column("account_id", String(128), nullable=False),
    Column("severity", String(8), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("run_id", String(40), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("sequence", name="recon_events_pkey"),
)
Index("recon_events_account", recon_events.c.account_id, recon_events.c.sequence)

recon_event_counter = Table(
    "recon_event_counter",
    metadata,
    Column("id", Integer, nullable=False, autoincrement=False),
    Column("last_sequence", BigInteger, nullable=False),
    PrimaryKeyConstraint("id", name="recon_event_counter_pkey"),
)
