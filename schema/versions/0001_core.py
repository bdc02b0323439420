"""Core journal: accounts, balances, transactions, entries, and the writer role.

Revision ID: 0001
Revises:
Create Date: 2026-11-21

Parameters (alembic -x NAME=VALUE, or `ledger migrate --partitions N`):
  partitions  hash partitions of `entries` on PostgreSQL (default 16)
  role        the role the service writes with (default ledger_writer)
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from ledger.storage import dialect, migrate

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    partitions, role = migrate.arguments()
    name = op.get_context().dialect.name

    op.create_table(
        "accounts",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("currency", sa.String(12), nullable=False),
        sa.Column("scale", sa.SmallInteger, nullable=False),
        sa.Column("normal_side", sa.String(6), nullable=False),
        sa.Column("debits_must_not_exceed_credits", sa.Boolean, nullable=False),
        sa.Column("credits_must_not_exceed_debits", sa.Boolean, nullable=False),
        sa.Column("metadata", JSONB, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint("normal_side IN ('debit', 'credit')", name="accounts_normal_side"),
        sa.CheckConstraint("scale BETWEEN 0 AND 18", name="accounts_scale"),
        sa.CheckConstraint(
            "NOT (debits_must_not_exceed_credits AND credits_must_not_exceed_debits)",
            name="accounts_one_limit",
        ),
    )
    op.create_table(
        "account_balances",
        sa.Column("account_id", sa.String(128), sa.ForeignKey("accounts.id"), primary_key=True),
        sa.Column("posted_debits", sa.BigInteger, nullable=False),
        sa.Column("posted_credits", sa.BigInteger, nullable=False),
        sa.CheckConstraint(
            "posted_debits >= 0 AND posted_credits >= 0", name="account_balances_nonnegative"
        ),
    )
    op.create_table(
        "transactions",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("reverses", sa.Uuid, sa.ForeignKey("transactions.id"), nullable=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("metadata", JSONB, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    for statement in dialect.idempotency_index_ddl(name, "transactions_idempotency_key"):
        op.execute(statement)
    # No index here is time-ordered by itself: transaction ids are random, and
    # the time-ordered entry ids sit behind the account id in the entries key.
    # At most one reversal per transaction, enforced by the database: two
    # racing reversals cannot both commit.
    op.create_index("transactions_reverses_key", "transactions", ["reverses"], unique=True)
    op.create_table(
        "entries",
        sa.Column("account_id", sa.String(128), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("entry_id", sa.Uuid, nullable=False),
        sa.Column("transaction_id", sa.Uuid, sa.ForeignKey("transactions.id"), nullable=False),
        sa.Column("leg", sa.SmallInteger, nullable=False),
        sa.Column("direction", sa.String(6), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(12), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "entry_id", name="entries_pkey"),
        sa.CheckConstraint("direction IN ('debit', 'credit')", name="entries_direction"),
        sa.CheckConstraint("amount > 0", name="entries_amount_positive"),
        **dialect.entries_table_options(name),
    )
    for statement in dialect.entries_partition_ddl(name, partitions):
        op.execute(statement)
    op.create_index("entries_transaction_id", "entries", ["transaction_id"])

    # The journal is append-only for the role the service writes with: it may
    # insert and read transactions and entries, never update or delete them.
    for statement in dialect.writer_role_ddl(name, role):
        op.execute(statement)


def downgrade() -> None:
    role = migrate.arguments().role
    name = op.get_context().dialect.name
    for statement in dialect.revoke_writer_role_ddl(name, role):
        op.execute(statement)
    op.drop_table("entries")
    op.drop_table("transactions")
    op.drop_table("account_balances")
    op.drop_table("accounts")
