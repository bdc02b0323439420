"""The two databases' names, as SQLAlchemy spells them."""

POSTGRESQL = "postgresql"
COCKROACHDB = "cockroachdb"
