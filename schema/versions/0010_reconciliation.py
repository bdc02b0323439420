"""Reconciliation: sources, their statements' lines, runs, matches and
exceptions.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-22

A source is an external file feed for one ledger account (a bank
statement, a processor report). Lines are kept by (source, booking day),
so a run reads its window as one range of the key. Statements, lines,
runs and matches are append-only for the service's role; exceptions are
updated when they are resolved (by a person, or by a later run).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from ledger.storage import migrate

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

NOW = sa.text("now()")


def upgrade() -> None:
    role = migrate.arguments().role
    op.create_table(
        "recon_sources",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("account_id", sa.String(128), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("settings", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    )
    op.create_table(
        "recon_statements",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("source_id", sa.String(128), sa.ForeignKey("recon_sources.id"), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("line_count", sa.Integer, nullable=False),
        sa.Column("skipped", sa.Integer, nullable=False),
        sa.Column("opening", sa.BigInteger, nullable=True),
        sa.Column("closing", sa.BigInteger, nullable=True),
        sa.Column("first_date", sa.Date, nullable=True),
        sa.Column("last_date", sa.Date, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.UniqueConstraint("source_id", "sha256", name="recon_statements_sha256"),
    )
    op.create_table(
        "recon_lines",
        sa.Column("source_id", sa.String(128), nullable=False),
        sa.Column("booked_on", sa.Date, nullable=False),
        sa.Column("id", sa.String(56), nullable=False),
        sa.Column("statement_id", sa.String(40), nullable=False),
        sa.Column("line_no", sa.Integer, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(12), nullable=False),
        sa.Column("external_id", sa.String(255), nullable=True),
        sa.Column("reference", sa.String(255), nullable=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("reversal", sa.Boolean, nullable=False),
        sa.Column("grp", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("source_id", "booked_on", "id", name="recon_lines_pkey"),
    )
    op.create_index("recon_lines_id", "recon_lines", ["source_id", "id"])
    op.create_table(
        "recon_runs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("source_id", sa.String(128), sa.ForeignKey("recon_sources.id"), nullable=False),
        sa.Column("from_date", sa.Date, nullable=False),
        sa.Column("to_date", sa.Date, nullable=False),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("dry_run", sa.Boolean, nullable=False),
        sa.Column("counts", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    )
    op.create_table(
        "recon_matches",
        sa.Column("run_id", sa.String(40), nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("source_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("statement_lines", JSONB, nullable=False),
        sa.Column("entry_ids", JSONB, nullable=False),
        sa.Column("transaction_ids", JSONB, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("difference", sa.BigInteger, nullable=False),
        sa.Column("tentative", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "id", name="recon_matches_pkey"),
    )
    op.create_index("recon_matches_manual", "recon_matches", ["source_id", "kind"])
    op.create_table(
        "recon_exceptions",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("source_id", sa.String(128), sa.ForeignKey("recon_sources.id"), nullable=False),
        sa.Column("run_id", sa.String(40), nullable=False),
        sa.Column("class", sa.String(24), nullable=False),
        sa.Column("severity", sa.String(8), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(12), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("statement_line", sa.String(56), nullable=True),
        sa.Column("entry_id", sa.String(40), nullable=True),
        sa.Column("transaction_id", sa.String(40), nullable=True),
        sa.Column("detail", sa.String(500), nullable=True),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("resolution", sa.String(16), nullable=True),
        sa.Column("note", sa.String(500), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("adjustment_transaction_id", sa.String(40), nullable=True),
        sa.CheckConstraint("status IN ('open', 'resolved')", name="recon_exceptions_status_check"),
    )
    op.create_index("recon_exceptions_subject", "recon_exceptions", ["source_id", "subject"])
    op.create_index("recon_exceptions_open", "recon_exceptions", ["status", "class", "severity"])
    for table in ("recon_sources", "recon_statements", "recon_lines", "recon_runs", "recon_matches"):
        op.execute(f"GRANT SELECT, INSERT ON TABLE {table} TO {role}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON TABLE recon_exceptions TO {role}")


def downgrade() -> None:
    for table in (
        "recon_exceptions",
        "recon_matches",
        "recon_runs",
        "recon_lines",
        "recon_statements",
        "recon_sources",
    ):
        op.drop_table(table)
