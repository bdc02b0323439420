"""`ledger serve | migrate | verify`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import msgspec

from ledger.settings import Settings


def _database_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        help="postgresql+psycopg://... or cockroachdb+psycopg://...; "
        "default: the embedded PostgreSQL in --data-dir (env LEDGER_DATABASE_URL)",
    )
    parser.add_argument(
        "--data-dir", type=Path, help="embedded PostgreSQL data directory (default .ledger/pgdata)"
    )


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env().with_overrides(
        database_url=getattr(args, "database_url", None),
        data_dir=getattr(args, "data_dir", None),
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
    )


@contextlib.contextmanager
def database(settings: Settings, *, quiet: bool = False) -> Iterator[tuple[str, bool]]:
    """The database URL to use, starting the embedded server when no URL is
    given (and stopping it afterwards). Yields (url, embedded)."""
    if settings.database_url:
        yield settings.database_url, False
        return
    from ledger.storage.embedded import EmbeddedPostgres

    embedded = EmbeddedPostgres(settings.data_dir)
    url = embedded.start()
    if not quiet:
        print(f"ledger: embedded PostgreSQL, data in {embedded.data_dir}", flush=True)
    try:
        yield url, True
    finally:
        embedded.stop()


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from ledger.app import create_app
    from ledger.storage import migrate

    settings = _settings(args)
    with database(settings) as (url, embedded):
        if embedded or args.migrate:
            migrate.upgrade(url, role=settings.db_role or "ledger_writer")
        elif not schema_is_current(url):
            return 2
        app = create_app(settings, url)
        config = uvicorn.Config(
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
        )
        server = uvicorn.Server(config)
        # uvicorn drains on SIGTERM/SIGINT, then re-raises the signal to the
        # handler that was installed before it. The default one would kill the
        # process before the embedded database is stopped, so install one that
        # lets the code below run.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: None)
        # The loop uvicorn would choose itself (uvloop when installed).
        with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
            runner.run(_serve_and_announce(server, settings))
        print("ledger: stopped", flush=True)
    return 0


async def _serve_and_announce(server, settings: Settings) -> None:
    """Run uvicorn and print the listening line once the socket is bound,
    so that whoever waits for the line can connect at once."""
    serving = asyncio.create_task(server.serve())
    # uvicorn offers `started` only as a flag, not an event to wait on.
    while not server.started and not serving.done():  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    if server.started:
        print(
            f"ledger: listening on http://{settings.host}:{settings.port} (API docs at /schema)",
            flush=True,
        )
    await serving


def cmd_migrate(args: argparse.Namespace) -> int:
    from ledger.storage import migrate

    settings = _settings(args)
    if args.sql:
        if not settings.database_url:
            print("--sql needs --database-url (only its dialect is used)", file=sys.stderr)
            return 2
        print(migrate.render_sql(settings.database_url, partitions=args.partitions))
        return 0
    with database(settings) as (url, _):
        migrate.upgrade(url, partitions=args.partitions, role=settings.db_role or "ledger_writer")
    print("ledger: schema is up to date")
    return 0


async def _verify(url: str, settings: Settings):
    from ledger.app import build_ledger, build_store

    store = build_store(url, settings)
    try:
        return await build_ledger(store, settings).verify()
    finally:
        await store.dispose()


def schema_is_current(url: str) -> bool:
    """Say so plainly, rather than fail on the first query, when the database
    is older than this code."""
    from ledger.storage import migrate

    lag = migrate.behind(url)
    if lag is None:
        return True
    current, head = lag
    print(
        f"ledger: the database schema is at revision {current or 'none'}, and this version "
        f"needs {head}. Run `ledger migrate` against it first (or `ledger serve --migrate`).",
        file=sys.stderr,
    )
    return False


def cmd_verify(args: argparse.Namespace) -> int:
    settings = _settings(args)
    with database(settings, quiet=args.json) as (url, _):
        if not schema_is_current(url):
            return 2
        report = asyncio.run(_verify(url, settings))
    if args.json:
        print(msgspec.json.format(msgspec.json.encode(report)).decode())
    else:
        print(format_report(report))
    return 0 if report.ok else 1


def format_report(report) -> str:
    lines = [
        f"accounts {report.accounts}, transactions {report.transactions}, entries {report.entries}"
    ]
    for currency, (debits, credits) in sorted(report.per_currency.items()):
        mark = "ok" if debits == credits else "UNBALANCED"
        lines.append(f"  {currency}: debits {debits} credits {credits} {mark}")
    for d in report.drift:
        lines.append(
            f"  DRIFT {d.account_id}: cached posted {d.cached_debits}/{d.cached_credits} "
            f"pending {d.cached_pending_debits}/{d.cached_pending_credits}; journal posted "
            f"{d.journal_debits}/{d.journal_credits} pending "
            f"{d.journal_pending_debits}/{d.journal_pending_credits}"
        )
    for s in report.snapshot_drift:
        lines.append(
            f"  SNAPSHOT DRIFT {s.account_id} #{s.seq} at {s.watermark.isoformat()}: snapshot "
            f"posted {s.snapshot_debits}/{s.snapshot_credits}; journal posted "
            f"{s.journal_debits}/{s.journal_credits}"
        )
    for u in report.unbalanced:
        lines.append(
            f"  UNBALANCED transaction {u.transaction_id} in {u.currency}: "
            f"debits {u.debits} credits {u.credits}"
        )
    for t in report.short_transactions:
        lines.append(f"  SHORT transaction {t}: fewer than two entries")
    if report.currency_mismatches:
        lines.append(f"  {report.currency_mismatches} entries differ from their account's currency")
    lines.append("verify: clean" if report.ok else "verify: DIFFERENCES FOUND")
    return "\n".join(lines)


def _cluster_dir(args: argparse.Namespace) -> Path:
    from ledger.cluster import DEFAULT_DIR

    return args.dir or DEFAULT_DIR


def cmd_cluster_up(args: argparse.Namespace) -> int:
    from ledger.cluster import Cluster, format_status

    # Settings given as LEDGER_* variables reach every service.
    environment = {k: v for k, v in os.environ.items() if k.startswith("LEDGER_")}
    environment.pop("LEDGER_DATABASE_URL", None)
    try:
        cluster = Cluster.create(
            _cluster_dir(args), args.services, args.base_port, environment=environment
        )
    except RuntimeError as exc:
        print(f"ledger cluster up: {exc}", file=sys.stderr)
        return 1
    print(format_status(cluster.status()))
    print(f"services: {','.join(cluster.service_urls())}")
    return 0


def cmd_cluster_down(args: argparse.Namespace) -> int:
    from ledger.cluster import Cluster

    try:
        cluster = Cluster.load(_cluster_dir(args))
    except FileNotFoundError as exc:
        print(f"ledger cluster down: {exc}", file=sys.stderr)
        return 1
    cluster.stop()
    print(f"stopped the cluster in {cluster.directory}")
    return 0


def cmd_cluster_status(args: argparse.Namespace) -> int:
    from ledger.cluster import Cluster, format_status

    try:
        cluster = Cluster.load(_cluster_dir(args))
    except FileNotFoundError as exc:
        print(f"ledger cluster status: {exc}", file=sys.stderr)
        return 1
    rows = cluster.status()
    if args.json:
        print(msgspec.json.format(msgspec.json.encode(rows)).decode())
    else:
        print(format_status(rows))
    healthy = all(r["state"] in ("primary", "standby", "ready") for r in rows)
    return 0 if healthy else 3


def cmd_bench(args: argparse.Namespace) -> int:
    from sqlalchemy.engine import make_url

    from ledger import capacity
    from ledger.cluster import Cluster

    if args.shape not in capacity.SHAPES:
        print(f"ledger bench: --shape must be one of {', '.join(capacity.SHAPES)}", file=sys.stderr)
        return 2
    if args.target:
        if not args.database_url:
            print("ledger bench: --target needs --database-url to audit", file=sys.stderr)
            return 2
        targets = [t.strip().rstrip("/") for t in args.target.split(",") if t.strip()]
        database_url = args.database_url
    else:
        try:
            cluster = Cluster.load(_cluster_dir(args))
            database_url = cluster.primary_url()
        except (FileNotFoundError, RuntimeError) as exc:
            print(f"ledger bench: {exc}", file=sys.stderr)
            return 2
        targets = cluster.service_urls()
    url = make_url(database_url)

    def baseline():
        if url.get_backend_name() != "postgresql":
            return None  # pgbench speaks PostgreSQL's protocol, not CockroachDB's SQL
        connection = ["-U", url.username or "postgres"]
        host = url.host or url.query.get("host")
        if host:
            connection += ["-h", str(host)]
        port = url.port or url.query.get("port")
        if port:
            connection += ["-p", str(port)]
        print(f"raw database: pgbench for {args.baseline_seconds} s ...", flush=True)
        return capacity.run_pgbench(
            connection,
            url.database,
            args.accounts,
            "load-",
            capacity.PGBENCH_CLIENTS,
            args.baseline_seconds,
        )

    options = capacity.BenchOptions(
        shape=args.shape,
        targets=targets,
        database_url=database_url,
        duration=args.duration,
        accounts=args.accounts,
        step_users=args.step_users,
        step_seconds=args.step_seconds,
        max_users=args.max_users,
        p99_ms=args.p99_ms,
        max_errors=args.max_errors,
        baseline_seconds=args.baseline_seconds,
        check_targets=not args.no_targets,
    )
    if args.workers:
        options.workers = args.workers
    if args.results:
        options.results = args.results
    print(
        f"ledger bench: {args.shape} on {', '.join(targets)} for up to {args.duration} s, "
        f"{options.workers} Locust workers",
        flush=True,
    )
    code, out, summary = capacity.run(options, baseline)
    print(capacity.format_summary(summary))
    print(f"report: {out}")
    return code


def cmd_drill(args: argparse.Namespace) -> int:
    from ledger import capacity, drill
    from ledger.cluster import Cluster

    if args.scenario not in drill.SCENARIOS:
        print(
            f"ledger drill: scenario must be one of {', '.join(drill.SCENARIOS)}", file=sys.stderr
        )
        return 2
    if args.target == "compose":
        targets = [t.strip() for t in args.services.split(",") if t.strip()]
        database_url = args.database_url
        fault = drill.compose_fault(args.scenario, args.pause)
    else:
        try:
            cluster = Cluster.load(_cluster_dir(args))
        except FileNotFoundError as exc:
            print(f"ledger drill: {exc}", file=sys.stderr)
            return 2
        # The services' own multi-host URL: after a failover the audit
        # reads the new primary.
        database_url = cluster.database_url()
        targets = cluster.service_urls()
        fault = drill.local_fault(cluster, args.scenario, args.pause)
    options = capacity.BenchOptions(
        shape=args.shape,
        targets=targets,
        database_url=database_url,
        accounts=args.accounts,
        step_users=args.users,
        check_targets=False,
    )
    if args.workers:
        options.workers = args.workers
    if args.results:
        options.results = args.results
    print(
        f"ledger drill: {args.scenario} on {', '.join(targets)}: {args.users} users, "
        f"fault after {args.before:g} s, then {args.after:g} s more",
        flush=True,
    )
    code, out, verdict = drill.run(args.scenario, options, fault, args.before, args.after)
    print(drill.format_verdict(verdict))
    print(f"report: {out}")
    return code


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="ledger", description="A double-entry ledger service.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP service")
    _database_args(serve)
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8000)")
    serve.add_argument(
        "--migrate",
        action="store_true",
        help="apply migrations before serving an external database (always done on embedded)",
    )
    serve.set_defaults(func=cmd_serve)

    mig = sub.add_parser("migrate", help="apply the schema migrations")
    _database_args(mig)
    mig.add_argument("--partitions", type=int, default=16, help="hash partitions of entries")
    mig.add_argument("--sql", action="store_true", help="print the DDL instead of running it")
    mig.set_defaults(func=cmd_migrate)

    ver = sub.add_parser("verify", help="recompute balances from the journal and compare")
    _database_args(ver)
    ver.add_argument("--json", action="store_true", help="print the report as JSON")
    ver.set_defaults(func=cmd_verify)

    cluster = sub.add_parser(
        "cluster", help="a local cluster: PostgreSQL primary, synchronous standby, N services"
    )
    cluster_sub = cluster.add_subparsers(dest="action", required=True)
    up = cluster_sub.add_parser("up", help="create and start it (replaces a stopped one)")
    up.add_argument("--dir", type=Path, default=None, help="default .ledger/cluster")
    up.add_argument("--services", type=int, default=2, help="service processes (default 2)")
    up.add_argument("--base-port", type=int, help="first service port (default: free ports)")
    up.set_defaults(func=cmd_cluster_up)
    down = cluster_sub.add_parser("down", help="stop every part (the data stays until `up`)")
    down.add_argument("--dir", type=Path, default=None)
    down.set_defaults(func=cmd_cluster_down)
    st = cluster_sub.add_parser("status", help="every part: pid, port, state, log")
    st.add_argument("--dir", type=Path, default=None)
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_cluster_status)

    bench = sub.add_parser(
        "bench", help="a Locust capacity run, audited, next to pgbench, with a report"
    )
    bench.add_argument("--shape", default="any_to_any", help="a locustfile of bench/locustfiles")
    bench.add_argument("--duration", type=int, default=60, help="seconds of load at most")
    bench.add_argument(
        "--target",
        help="comma-separated service URLs (default: the local cluster's services); "
        "with it, --database-url names the database to audit",
    )
    bench.add_argument("--database-url", help="the database behind --target")
    bench.add_argument("--dir", type=Path, default=None, help="the local cluster's directory")
    bench.add_argument("--accounts", type=int, default=1000)
    bench.add_argument("--step-users", type=int, default=4, help="users added per step")
    bench.add_argument("--step-seconds", type=float, default=10, help="seconds per step")
    bench.add_argument("--max-users", type=int, default=200)
    bench.add_argument("--p99-ms", type=float, default=50, help="latency target of a step")
    bench.add_argument("--max-errors", type=float, default=0.01, help="error ratio of a step")
    bench.add_argument("--workers", type=int, help="Locust workers (default: one per core)")
    bench.add_argument("--baseline-seconds", type=int, default=15, help="pgbench seconds")
    bench.add_argument("--results", type=Path, help="default bench/results")
    bench.add_argument(
        "--no-targets", action="store_true", help="do not judge bench/targets.toml (smoke runs)"
    )
    bench.set_defaults(func=cmd_bench)

    drill = sub.add_parser("drill", help="kill a node under load; prove nothing was lost")
    drill.add_argument("scenario", help="service-kill, db-primary-kill, db-restart, conn-reset")
    drill.add_argument(
        "--target",
        default="local",
        choices=["local", "compose"],
        help="the local cluster (default) or the Docker Compose stack of deploy/cockroach",
    )
    drill.add_argument("--dir", type=Path, default=None, help="the local cluster's directory")
    drill.add_argument("--shape", default="any_to_any")
    drill.add_argument("--users", type=int, default=8, help="constant Locust users")
    drill.add_argument("--before", type=float, default=10, help="seconds of load before the fault")
    drill.add_argument("--after", type=float, default=20, help="seconds of load after it")
    drill.add_argument("--pause", type=float, default=3, help="seconds a killed node stays down")
    drill.add_argument("--accounts", type=int, default=1000)
    drill.add_argument("--workers", type=int, help="Locust workers (default: one per core)")
    drill.add_argument("--results", type=Path, help="default bench/results")
    drill.add_argument(
        "--services",
        default="http://127.0.0.1:8001,http://127.0.0.1:8002",
        help="with --target compose: the services' URLs",
    )
    drill.add_argument(
        "--database-url",
        default="cockroachdb+psycopg://root@127.0.0.1:26257/ledger?sslmode=disable",
        help="with --target compose: the database to audit",
    )
    drill.set_defaults(func=cmd_drill)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
