"""Webhook endpoints and their delivery log.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22

An endpoint row says where its deliveries stand (the last event a 2xx
acknowledged, as block and sequence) and which service process holds its
lease; the service's role updates it as deliveries advance, and deletes an
endpoint only by marking it. `webhook_deliveries` logs attempts; the
deliverer prunes what is older than the retention, so the role may delete
there. Events themselves need no table: they are the sealed journal.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from ledger.storage import migrate

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

NOW = sa.text("now()")


def upgrade() -> None:
    role = migrate.arguments().role
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("event_types", JSONB, nullable=False),
        sa.Column("description", sa.String(500), nullable=True),
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("accounts", JSONB, nullable=True),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("previous_secret", sa.String(128), nullable=True),
        sa.Column("previous_secret_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("status_reason", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("cursor_block", sa.BigInteger, nullable=False),
        sa.Column("cursor_sequence", sa.BigInteger, nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('active', 'disabled', 'deleted')", name="webhook_endpoints_status_check"
        ),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column(
            "endpoint_id", sa.String(32), sa.ForeignKey("webhook_endpoints.id"), nullable=False
        ),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(12), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("error", sa.String(500), nullable=True),
        sa.Column("duration_ms", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint(
            "endpoint_id", "attempted_at", "id", name="webhook_deliveries_pkey"
        ),
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON TABLE webhook_endpoints TO {role}")
    op.execute(f"GRANT SELECT, INSERT, DELETE ON TABLE webhook_deliveries TO {role}")


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_endpoints")
