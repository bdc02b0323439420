"""Atomic batches of postings: what a batch's idempotency key names.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22

An atomic `POST /transactions/batch` commits all of its items or none; the
same batch key and body again must answer the whole batch as it was. Its
row keeps the body's fingerprint and the items' transaction ids in request
order. Append-only like the journal: the service's role may insert and read.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from ledger.storage import migrate

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    role = migrate.arguments().role
    op.create_table(
        "posting_batches",
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("transaction_ids", JSONB, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")
        ),
        sa.PrimaryKeyConstraint("client_id", "idempotency_key", name="posting_batches_pkey"),
    )
    op.execute(f"GRANT SELECT, INSERT ON TABLE posting_batches TO {role}")


def downgrade() -> None:
    op.drop_table("posting_batches")
