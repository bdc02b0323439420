"""One scale per currency.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22

`currencies` holds each currency's one scale, and every account's
(currency, scale) must be a row of it (`accounts_currency_scale_fkey`), so
the database refuses an account whose scale differs from its currency's:
otherwise a balanced posting between a USD account at scale 5 and one at
scale 2 moves a thousandth of a cent out and a dollar in.

A database whose accounts already mix scales for one currency cannot be
upgraded blindly (which of the two is right is a decision about money):
the migration stops and names them.
"""

import sqlalchemy as sa
from alembic import context, op

from ledger.storage import migrate

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    role = migrate.arguments().role
    if not context.is_offline_mode():  # `ledger migrate --sql` has no data to check
        _refuse_mixed_scales()
    op.create_table(
        "currencies",
        sa.Column("code", sa.String(12), primary_key=True),
        sa.Column("scale", sa.SmallInteger, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.UniqueConstraint("code", "scale", name="currencies_code_scale_key"),
    )
    op.execute(
        "INSERT INTO currencies (code, scale) "
        "SELECT currency, min(scale) FROM accounts GROUP BY currency"
    )
    op.create_foreign_key(
        "accounts_currency_scale_fkey",
        "accounts",
        "currencies",
        ["currency", "scale"],
        ["code", "scale"],
    )
    op.execute(f"GRANT SELECT, INSERT ON TABLE currencies TO {role}")


def _refuse_mixed_scales() -> None:
    mixed = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT currency, min(scale) AS low, max(scale) AS high, count(*) AS n "
                "FROM accounts GROUP BY currency HAVING count(DISTINCT scale) > 1 "
                "ORDER BY currency"
            )
        )
        .all()
    )
    if mixed:
        listed = "; ".join(
            f"{r.currency}: scales {r.low} to {r.high} over {r.n} accounts" for r in mixed
        )
        raise RuntimeError(
            "this database has accounts of one currency with different scales, which "
            f"makes their balanced postings move different values ({listed}). Decide which "
            "scale is right for each, correct those accounts (and their amounts) by hand, "
            "then run the migration again."
        )


def downgrade() -> None:
    op.drop_constraint("accounts_currency_scale_fkey", "accounts", type_="foreignkey")
    op.drop_table("currencies")
