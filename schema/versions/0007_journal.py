"""A commit-ordered, hash-sealed journal.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22

Every header records its position in commit order (`commit_xid` on
PostgreSQL; CockroachDB uses each row's MVCC timestamp, see
`ledger.storage.dialect.journal`). The sequencer appends blocks: each
`journal_blocks` row holds the Merkle root of its transactions' hashes and
the previous block's hash; each `journal` row gives one transaction its
place (a gap-free `sequence`) and its hash. Both are appended, never
changed: the service's role may insert and read them, nothing else.
"""

from alembic import op

from ledger.storage import dialect, migrate

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    name = op.get_context().dialect.name
    role = migrate.arguments().role
    for statement in dialect.journal_ddl(name) + dialect.journal_tables_ddl(name):
        op.execute(statement)
    op.execute(f"GRANT SELECT, INSERT ON TABLE journal_blocks, journal TO {role}")


def downgrade() -> None:
    op.drop_table("journal")
    op.drop_table("journal_blocks")
    op.drop_index(dialect.COMMIT_ORDER_INDEX, "transactions")
    op.drop_column("transactions", "commit_xid")
