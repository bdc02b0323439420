"""Access control: API keys, and the audit trail in schema `audit`.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22

`api_keys` holds each key's SHA-256, never the key. The service's role may
insert keys and set `revoked_at` (table-level UPDATE: CockroachDB has no
column privileges); it never deletes one, so a revoked key stays on record.

`audit.log` has one row per write request. It lives in a schema of its own
so that its privileges read plainly: the service's role may INSERT and
SELECT there and nothing else, so the application cannot change or remove
what it recorded. Only the owner (the migration's login) could.
"""

import sqlalchemy as sa
from alembic import op

from ledger.storage import dialect, migrate

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    name = op.get_context().dialect.name
    role = migrate.arguments().role
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("scopes", sa.dialects.postgresql.JSONB, nullable=False),
        sa.Column("accounts", sa.dialects.postgresql.JSONB, nullable=True),
        sa.Column("requests_per_second", sa.Integer, nullable=True),
        sa.Column("secret_sha256", sa.LargeBinary, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    for statement in dialect.audit_log_ddl(name):
        op.execute(statement)
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON TABLE api_keys TO {role}")
    op.execute(f"GRANT USAGE ON SCHEMA audit TO {role}")
    op.execute(f"GRANT SELECT, INSERT ON TABLE audit.log TO {role}")


def downgrade() -> None:
    op.execute("DROP TABLE audit.log")
    op.execute("DROP SCHEMA IF EXISTS audit")
    op.drop_table("api_keys")
