"""Finding transactions by their metadata: an index for JSONB containment.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-22

`GET /transactions?metadata.<key>=<value>` asks `metadata @> {...}`:
a GIN index on PostgreSQL, an inverted index on CockroachDB
(`dialect.metadata_index_ddl`).
"""

from alembic import op

from ledger.storage import dialect

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    name = op.get_context().dialect.name
    for statement in dialect.metadata_index_ddl(name):
        op.execute(statement)


def downgrade() -> None:
    op.drop_index(dialect.METADATA_INDEX, table_name="transactions")
