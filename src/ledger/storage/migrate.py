"""Applying the Alembic migrations under `schema/` from Python."""

from __future__ import annotations

import argparse
import io
from importlib import resources
from pathlib import Path
from typing import NamedTuple

from alembic import command, context
from alembic.config import Config


class Arguments(NamedTuple):
    partitions: int
    role: str


def arguments() -> Arguments:
    """The `-x NAME=VALUE` arguments of the running migration, checked: the
    role is written into GRANT statements, so it may hold nothing but
    letters, digits and underscores."""
    x = context.get_x_argument(as_dictionary=True)
    partitions = int(x.get("partitions", 16))
    if not 1 <= partitions <= 1024:
        raise ValueError("partitions must be between 1 and 1024")
    role = x.get("role", "ledger_writer")
    if not role.replace("_", "").isalnum():
        raise ValueError("role must be letters, digits and underscores")
    return Arguments(partitions, role)


def schema_dir() -> Path:
    """The migrations: packaged inside the wheel as `ledger/_schema`, or the
    repository's `schema/` in a source checkout (editable install)."""
    packaged = resources.files("ledger") / "_schema"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[3] / "schema"


def alembic_config(url: str, *, partitions: int = 16, role: str = "ledger_writer") -> Config:
    config = Config(stdout=io.StringIO())
    config.set_main_option("script_location", str(schema_dir()))
    # Escape % for ConfigParser interpolation (URL-encoded passwords).
    config.set_main_option("sqlalchemy.url", sync_url(url).replace("%", "%%"))
    config.cmd_opts = argparse.Namespace(x=[f"partitions={partitions}", f"role={role}"])
    return config


def sync_url(url: str) -> str:
    """Alembic runs synchronously; psycopg 3 serves both, so the URL is the same."""
    return url


def upgrade(url: str, *, partitions: int = 16, role: str = "ledger_writer") -> None:
    command.upgrade(alembic_config(url, partitions=partitions, role=role), "head")


def behind(url: str) -> tuple[str | None, str] | None:
    """None when the database is at the newest revision; otherwise
    (its revision or None for an empty database, the newest revision)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine, pool

    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    engine = create_engine(sync_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
    return None if current == head else (current, head)


def render_sql(url: str, *, partitions: int = 16, role: str = "ledger_writer") -> str:
    """The DDL `upgrade` would run, rendered offline without a database."""
    config = alembic_config(url, partitions=partitions, role=role)
    buffer = io.StringIO()
    config.output_buffer = buffer
    command.upgrade(config, "head", sql=True)
    return buffer.getvalue()
