"""Accounts that can change: a status, and a reason on each recorded change.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22

`accounts.status` is `active`, `frozen` (no new posting may touch the
account) or `closed` (final; only an account with nothing posted or held on
it may close). The service's role may now UPDATE accounts (table-level, as
CockroachDB has no column privileges) to change the status, the metadata
and the limit flags; the id, currency, scale and normal side never change,
which the engine keeps to, and every change is appended to
`account_changes` with the request's reason.
"""

import sqlalchemy as sa
from alembic import op

from ledger.storage import migrate

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    role = migrate.arguments().role
    op.add_column(
        "accounts",
        sa.Column("status", sa.String(8), nullable=False, server_default="active"),
    )
    op.create_check_constraint(
        "accounts_status_check", "accounts", "status IN ('active', 'frozen', 'closed')"
    )
    op.add_column("account_changes", sa.Column("reason", sa.String(500), nullable=True))
    op.execute(f"GRANT UPDATE ON TABLE accounts TO {role}")


def downgrade() -> None:
    role = migrate.arguments().role
    op.execute(f"REVOKE UPDATE ON TABLE accounts FROM {role}")
    op.drop_column("account_changes", "reason")
    op.drop_constraint("accounts_status_check", "accounts")
    op.drop_column("accounts", "status")
