"""Hot accounts: balance snapshots plus deltas, and a record of account changes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21

A hot account (a fee, clearing or settlement account that most postings
touch) keeps no running balance row: a posting appends one `hot_deltas` row
per hot account it touches and takes no lock. Its balance is the newest
`hot_snapshots` row plus the deltas not yet folded into it. The compactor
folds deltas into a new snapshot and deletes exactly those deltas, in one
transaction. Snapshots are appended, never changed, and serve `as_of` reads.

`account_balances.hot` says which way an account's balance is kept; it lives
on the balance row (which the writer may update) rather than on `accounts`
(which it may not). `account_changes` records each change of it.
"""

import sqlalchemy as sa
from alembic import op

from ledger.storage import dialect, migrate

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    name = op.get_context().dialect.name
    role = migrate.arguments().role
    op.add_column(
        "account_balances",
        sa.Column("hot", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "hot_snapshots",
        sa.Column("account_id", sa.String(128), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        # 'open': taken when the account became hot, from its balance row;
        # 'compact': a fold of deltas; 'close': the last fold, when it stopped
        # being hot.
        sa.Column("kind", sa.String(8), nullable=False),
        # The snapshot holds exactly the deltas of transactions created at or
        # before `watermark`, unless a later snapshot's `late_from` (or a
        # delta still unfolded) says one such transaction committed too late.
        sa.Column("watermark", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "taken_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("posted_debits", sa.BigInteger, nullable=False),
        sa.Column("posted_credits", sa.BigInteger, nullable=False),
        sa.Column("pending_debits", sa.BigInteger, nullable=False),
        sa.Column("pending_credits", sa.BigInteger, nullable=False),
        sa.Column("folded", sa.Integer, nullable=False),
        sa.Column("late_from", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("account_id", "seq", name="hot_snapshots_pkey"),
        sa.CheckConstraint("kind IN ('open', 'compact', 'close')", name="hot_snapshots_kind"),
        sa.CheckConstraint(
            "posted_debits >= 0 AND posted_credits >= 0 "
            "AND pending_debits >= 0 AND pending_credits >= 0",
            name="hot_snapshots_nonnegative",
        ),
    )
    op.execute(dialect.hot_deltas_ddl(name))
    op.create_table(
        "account_changes",
        sa.Column("account_id", sa.String(128), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("change_id", sa.Uuid, nullable=False),
        sa.Column(
            "changed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("field", sa.String(32), nullable=False),
        sa.Column("old_value", sa.Text, nullable=False),
        sa.Column("new_value", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("account_id", "change_id", name="account_changes_pkey"),
    )
    # `as_of` on a hot account sums its pending entries from the journal;
    # this keeps that to the pending ones.
    op.execute("CREATE INDEX entries_pending ON entries (account_id, created_at) WHERE pending")
    # Snapshots and changes are history: appended, never changed. Deltas are a
    # work set the compactor empties, like the expiry queue.
    op.execute(f"GRANT SELECT, INSERT ON TABLE hot_snapshots, account_changes TO {role}")
    op.execute(f"GRANT SELECT, INSERT, DELETE ON TABLE hot_deltas TO {role}")


def downgrade() -> None:
    op.drop_index("entries_pending", "entries")
    op.drop_table("account_changes")
    op.drop_table("hot_deltas")
    op.drop_table("hot_snapshots")
    op.drop_column("account_balances", "hot")
