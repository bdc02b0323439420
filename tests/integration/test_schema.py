"""The tables the queries are built from (`ledger.storage.tables`) match what
the migrations create: Alembic's autogenerate comparison finds nothing."""

import re

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from ledger.storage import dialect
from ledger.storage.tables import AUDIT_SCHEMA, metadata


def _ours(obj, name, type_, reflected, compare_to) -> bool:
    """Leave out what the migrations add beyond Core's reach: PostgreSQL's hash
    partitions of `entries`, CockroachDB's hidden shard columns, Alembic's
    own table, and the commit-order index, which differs between the two."""
    if name and "crdb_internal" in name:
        return False
    if type_ == "index" and name == dialect.COMMIT_ORDER_INDEX:
        return False  # another column and kind on each database
    return not (
        type_ == "table" and (re.fullmatch(r"entries_p\d+", name) or name == "alembic_version")
    )


def _our_schemas(name, type_, parent_names) -> bool:
    return type_ != "schema" or name in (None, AUDIT_SCHEMA)


def test_the_core_tables_match_the_migrated_schema(database_url):
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "compare_type": True,
                    "include_object": _ours,
                    # The default schema and the audit trail's.
                    "include_schemas": True,
                    "include_name": _our_schemas,
                },
            )
            differences = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    assert differences == []
