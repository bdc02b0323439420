"""Reconciliation exceptions as events: the event feed's second stream.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-23

A run writes one `recon_events` row for each exception it opens (or finds
again with a higher severity), numbered by `recon_event_counter`'s one row,
which the run's transaction updates last: its lock, held to commit, gives
the numbers in commit order. Webhook endpoints keep their place in this
stream beside their place in the journal.
"""

import sqlalchemy as sa
from alembic import op

from ledger.storage import migrate

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

NOW = sa.text("now()")


def upgrade() -> None:
    role = migrate.arguments().role
    op.create_table(
        "recon_events",
        sa.Column("sequence", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("exception_id", sa.String(40), nullable=False),
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("severity", sa.String(8), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("run_id", sa.String(40), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("sequence", name="recon_events_pkey"),
    )
    op.create_index("recon_events_account", "recon_events", ["account_id", "sequence"])
    op.create_table(
        "recon_event_counter",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("last_sequence", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="recon_event_counter_pkey"),
    )
    op.execute("INSERT INTO recon_event_counter (id, last_sequence) VALUES (1, 0)")
    op.add_column(
        "webhook_endpoints",
        sa.Column("cursor_exception", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.execute(f"GRANT SELECT, INSERT ON TABLE recon_events TO {role}")
    op.execute(f"GRANT SELECT, UPDATE ON TABLE recon_event_counter TO {role}")


def downgrade() -> None:
    op.drop_column("webhook_endpoints", "cursor_exception")
    op.drop_table("recon_event_counter")
    op.drop_table("recon_events")
