"""Reach on every resource: what an audit row concerns, and which key owns
a webhook endpoint.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07

`audit.log.reach` lists the account ids (or account-id prefixes) a row
concerns: a posting's legs, a source's account, a key's or an endpoint's
prefixes. A key limited to prefixes sees a row only when all of them lie
within its own; rows without it (every row written before this revision,
refusals, key changes of unlimited keys) are for unlimited keys alone.

`webhook_endpoints.key_id` names the key that registered an endpoint; the
endpoint pauses when that key is revoked. Endpoints made before this
revision belong to no key and never pause that way.

On PostgreSQL the writer role may log in now: the service logs in as it
instead of logging in as the owner and dropping to it with SET ROLE (which
RESET ROLE would undo). On CockroachDB it always was the login.
"""

import sqlalchemy as sa
from alembic import op

from ledger.storage import migrate
from ledger.storage.dialect import POSTGRESQL

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    role = migrate.arguments().role
    if op.get_context().dialect.name == POSTGRESQL:
        op.execute(f"ALTER ROLE {role} WITH LOGIN")
    # The service checks at start that the schema is the one it knows.
    op.execute(f"GRANT SELECT ON TABLE alembic_version TO {role}")
    op.add_column(
        "log",
        sa.Column("reach", sa.dialects.postgresql.JSONB, nullable=True),
        schema="audit",
    )
    op.add_column("webhook_endpoints", sa.Column("key_id", sa.String(32), nullable=True))
    op.create_index("webhook_endpoints_key", "webhook_endpoints", ["key_id"])
    # An endpoint may be paused now (its key was revoked).
    op.drop_constraint("webhook_endpoints_status_check", "webhook_endpoints", type_="check")
    op.create_check_constraint(
        "webhook_endpoints_status_check",
        "webhook_endpoints",
        "status IN ('active', 'paused', 'disabled', 'deleted')",
    )


def downgrade() -> None:
    op.execute("UPDATE webhook_endpoints SET status = 'disabled' WHERE status = 'paused'")
    op.drop_constraint("webhook_endpoints_status_check", "webhook_endpoints", type_="check")
    op.create_check_constraint(
        "webhook_endpoints_status_check",
        "webhook_endpoints",
        "status IN ('active', 'disabled', 'deleted')",
    )
    op.drop_index("webhook_endpoints_key", table_name="webhook_endpoints")
    op.drop_column("webhook_endpoints", "key_id")
    op.drop_column("log", "reach", schema="audit")
