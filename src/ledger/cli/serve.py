"""`ledger serve`: the HTTP service on the embedded PostgreSQL or a database
given by URL, with its background loops in a child process, drained on
SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from typing import TYPE_CHECKING

from ledger.cli.common import database, database_args, schema_is_current, settings_of
from ledger.settings import Settings

if TYPE_CHECKING:
    from ledger.phases import Phases


def register(sub) -> None:
    serve = sub.add_parser("serve", help="run the HTTP service")
    database_args(serve)
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8000)")
    serve.add_argument(
        "--migrate",
        action="store_true",
        help="apply migrations before serving an external database (always done on embedded)",
    )
    serve.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    metrics_dir = _shared_metrics(settings)
    try:
        return _serve(settings, args)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _shared_metrics(settings: Settings) -> str | None:
    """With the loops in a child process, both processes keep their metrics
    in files of one directory (prometheus_client's multiprocess mode), and
    the service's /metrics adds them up. Must run before prometheus_client
    is imported: it reads the variable then."""
    if not settings.background_process or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return None
    path = tempfile.mkdtemp(prefix="ledger-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    return path


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.phases import Phases

    started = Phases()
    import uvicorn

    from ledger import background
    from ledger.api import telemetry
    from ledger.app import create_app
    from ledger.storage import dialect, migrate

    started.mark("imports")

    if settings.bootstrap_key and not _well_formed_key(settings.bootstrap_key):
        print(
            "ledger: LEDGER_BOOTSTRAP_KEY is not a key of the form lk_<key id>_<secret> "
            '(make one with: python -c "from ledger.engine.access import new_key; '
            'print(new_key()[1])")',
            file=sys.stderr,
        )
        return 2
    role = settings.db_role or "ledger_writer"
    with database(settings) as (owner_url, embedded):
        started.mark("embedded database")
        if embedded or args.migrate:
            migrate.upgrade(settings.migrate_database_url or owner_url, role=role)
        elif not schema_is_current(owner_url):
            return 2
        started.mark("schema")
        # The embedded server's owner migrates; the service logs in as the
        # writer role (trusted on the server's own socket), so no statement
        # it could send gives it the owner's rights back.
        url = dialect.writer_url(owner_url, role) if embedded else owner_url
        _warn_if_privileged(url)
        telemetry.configure_access_log(settings)
        # The loops' child process starts once the service listens: on a
        # busy machine its imports would otherwise compete with the
        # service's own for the CPU, and the service is what clients wait on.
        loops: list = []
        if settings.background_process:
            settings = background.request_loop_settings(settings)
        app = create_app(settings, url, bootstrapped=_announce_key(settings))
        started.mark("app")
        config = _uvicorn_config(app, settings)
        server = uvicorn.Server(config)
        # uvicorn drains on SIGTERM/SIGINT, then re-raises the signal to the
        # handler that was installed before it. The default one would kill the
        # process before the embedded database is stopped, so install one that
        # lets the code below run.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: None)
        # The loop uvicorn would choose itself (uvloop when installed).
        try:
            with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
                runner.run(
                    _serve_and_announce(
                        server, settings, started, lambda: loops.append(background.spawn(url))
                    )
                )
        finally:
            for child in loops:
                child.terminate()
                child.wait(30)
        print("ledger: stopped", flush=True)
    return 0


def _warn_if_privileged(url: str) -> None:
    """Say so at start when the service's login could undo its own role."""
    from ledger.storage.database import login_is_privileged

    if login_is_privileged(url):
        print(
            "ledger: warning: the service logs in as a superuser or the tables' owner, so "
            "the database does not hold it to append-only; give LEDGER_DATABASE_URL the "
            "ledger_writer login and `ledger migrate` the owner's (see the README)",
            file=sys.stderr,
            flush=True,
        )


def _uvicorn_config(app, settings: Settings):
    import uvicorn

    from ledger.api.server import bounded_protocol

    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        # uvicorn stops accepting on SIGTERM and waits this long for
        # in-flight requests before it closes them.
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        access_log=False,
        log_level="warning",
        # Nothing reads the client's address; X-Forwarded-* parsing on
        # every request is work for nothing.
        proxy_headers=False,
        http=bounded_protocol(settings.max_head_bytes, settings.max_headers),
    )


def _well_formed_key(key: str) -> bool:
    from ledger.engine import errors
    from ledger.engine.access import key_id_of

    try:
        key_id_of(key)
    except errors.Unauthenticated:
        return False
    return True


def _announce_key(settings: Settings):
    """What `ledger serve` does with the admin key it made because the
    database held none: the key itself is never printed or logged; a random
    one goes into a file only its owner can read."""

    def announce(issued, from_environment: bool) -> None:
        if from_environment:
            print(
                f"ledger: no API key existed; made admin key {issued.id} from LEDGER_BOOTSTRAP_KEY",
                flush=True,
            )
            return
        path = settings.key_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(issued.key + "\n")
        os.chmod(path, 0o600)  # a file that was there keeps its mode otherwise
        print(
            f"ledger: no API key existed; made admin key {issued.id}, written to {path} "
            "(mode 0600)",
            flush=True,
        )

    return announce


async def _serve_and_announce(
    server, settings: Settings, started: Phases, spawn_loops: Callable[[], None]
) -> None:
    """Run uvicorn and print the listening line once the socket is bound,
    so that whoever waits for the line can connect at once, and where the
    start's time went."""
    serving = asyncio.create_task(server.serve())
    # uvicorn offers `started` only as a flag, not an event to wait on.
    while not server.started and not serving.done():  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    if server.started:
        started.mark("start-up (connections, keys, loops)")
        print(
            f"ledger: listening on http://{settings.host}:{settings.port} (API docs at /schema)",
            flush=True,
        )
        print(f"ledger: {started}", flush=True)
        if settings.background_process:
            spawn_loops()
    await serving
