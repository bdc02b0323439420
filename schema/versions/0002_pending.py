"""Pending transactions: pending totals, resolutions, the expiry queue.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21

A pending transaction writes entries flagged `pending`, which move the
accounts' pending totals. It is resolved once, by a new transaction whose
`resolves` points at it (unique: the database admits one resolution) and whose
`resolution` says posted, voided or expired. The pending row never changes.
`pending_expiry` is a work queue, not journal: a row per pending transaction
with a timeout, deleted in the transaction that resolves it, so the sweeper
reads only what is due.
"""

import sqlalchemy as sa
from alembic import op

from ledger.storage import dialect, migrate

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    name = op.get_context().dialect.name
    role = migrate.arguments().role
    zero = sa.text("0")
    op.add_column(
        "account_balances",
        sa.Column("pending_debits", sa.BigInteger, nullable=False, server_default=zero),
    )
    op.add_column(
        "account_balances",
        sa.Column("pending_credits", sa.BigInteger, nullable=False, server_default=zero),
    )
    op.create_check_constraint(
        "account_balances_pending_nonnegative",
        "account_balances",
        "pending_debits >= 0 AND pending_credits >= 0",
    )
    op.add_column(
        "transactions", sa.Column("pending", sa.Boolean, nullable=False, server_default=sa.false())
    )
    op.add_column("transactions", sa.Column("timeout_seconds", sa.Integer, nullable=True))
    op.add_column("transactions", sa.Column("resolves", sa.Uuid, nullable=True))
    op.add_column("transactions", sa.Column("resolution", sa.String(8), nullable=True))
    op.create_foreign_key(
        "transactions_resolves_fkey", "transactions", "transactions", ["resolves"], ["id"]
    )
    op.create_check_constraint(
        "transactions_resolution",
        "transactions",
        "(resolves IS NULL) = (resolution IS NULL) "
        "AND (resolution IS NULL OR resolution IN ('posted', 'voided', 'expired'))",
    )
    op.create_index("transactions_resolves_key", "transactions", ["resolves"], unique=True)
    op.add_column(
        "entries", sa.Column("pending", sa.Boolean, nullable=False, server_default=sa.false())
    )
    op.create_table(
        "pending_expiry",
        sa.Column("transaction_id", sa.Uuid, sa.ForeignKey("transactions.id"), primary_key=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    for statement in dialect.time_ordered_index_ddl(
        name, "pending_expiry_expires_at", "pending_expiry", "expires_at"
    ):
        op.execute(statement)
    # A queue, not journal: the writer deletes what it resolves.
    op.execute(f"GRANT SELECT, INSERT, DELETE ON TABLE pending_expiry TO {role}")


def downgrade() -> None:
    op.drop_table("pending_expiry")
    op.drop_column("entries", "pending")
    op.drop_index("transactions_resolves_key", "transactions")
    op.drop_constraint("transactions_resolution", "transactions")
    op.drop_constraint("transactions_resolves_fkey", "transactions")
    for column in ("resolution", "resolves", "timeout_seconds", "pending"):
        op.drop_column("transactions", column)
    op.drop_constraint("account_balances_pending_nonnegative", "account_balances")
    op.drop_column("account_balances", "pending_credits")
    op.drop_column("account_balances", "pending_debits")
