"""The operator tools' subcommands, mounted on `ledger` by `ledger.cli`:
`ledger cluster up|down|status`, `ledger bench`, `ledger drill`. They need
the `ops` extra (Locust, matplotlib); everything they read ships inside the
package, so they run from an installed wheel as well as from a checkout."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import msgspec

from ledger.ops.files import SCENARIOS, SHAPES

RESULTS_HELP = "default bench/results under the working directory"


def _cluster_dir(args: argparse.Namespace) -> Path:
    from ledger.ops.cluster import DEFAULT_DIR

    return args.dir or DEFAULT_DIR


def cmd_cluster_up(args: argparse.Namespace) -> int:
    from ledger.ops.cluster import Cluster
    from ledger.ops.nodes import format_status

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


def _load_cluster(args: argparse.Namespace, command: str):
    """The cluster in --dir, or None after saying why there is none."""
    from ledger.ops.cluster import Cluster

    try:
        return Cluster.load(_cluster_dir(args))
    except FileNotFoundError as exc:
        print(f"ledger {command}: {exc}", file=sys.stderr)
        return None


def cmd_cluster_down(args: argparse.Namespace) -> int:
    cluster = _load_cluster(args, "cluster down")
    if cluster is None:
        return 1
    cluster.stop()
    print(f"stopped the cluster in {cluster.directory}")
    if args.purge:
        shutil.rmtree(cluster.directory, ignore_errors=True)
        print(f"removed {cluster.directory} (its databases, logs and admin key)")
    return 0


def cmd_cluster_status(args: argparse.Namespace) -> int:
    from ledger.ops.nodes import format_status

    cluster = _load_cluster(args, "cluster status")
    if cluster is None:
        return 1
    rows = cluster.status()
    if args.json:
        print(msgspec.json.format(msgspec.json.encode(rows)).decode())
    else:
        print(format_status(rows))
    healthy = all(r["state"] in ("primary", "standby", "ready") for r in rows)
    return 0 if healthy else 3


def cmd_bench(args: argparse.Namespace) -> int:
    from ledger.ops import bench, report
    from ledger.ops.cluster import Cluster

    if args.shape not in SHAPES:
        print(f"ledger bench: --shape must be one of {', '.join(SHAPES)}", file=sys.stderr)
        return 2
    if args.target:
        if not args.database_url:
            print("ledger bench: --target needs --database-url to audit", file=sys.stderr)
            return 2
        targets = [t.strip().rstrip("/") for t in args.target.split(",") if t.strip()]
        database_url = args.database_url
        api_key = _given_key(args)
        if not api_key:
            print("ledger bench: --target needs --api-key (or LEDGER_API_KEY)", file=sys.stderr)
            return 2
    else:
        try:
            cluster = Cluster.load(_cluster_dir(args))
            database_url = cluster.primary_url()
        except (FileNotFoundError, RuntimeError) as exc:
            print(f"ledger bench: {exc}", file=sys.stderr)
            return 2
        targets = cluster.service_urls()
        api_key = cluster.admin_key()
    options = bench.BenchOptions(
        shape=args.shape,
        targets=targets,
        database_url=database_url,
        duration=args.duration,
        accounts=args.accounts,
        step_users=args.step_users or (1 if args.shape == "bulk" else 4),
        step_seconds=args.step_seconds,
        max_users=args.max_users,
        # A step's latency target: the shape's target p99 unless given.
        p99_ms=args.p99_ms or report.load_targets(args.shape).get("max_p99_ms", 50),
        max_errors=args.max_errors,
        baseline_seconds=args.baseline_seconds,
        check_targets=not args.no_targets,
        api_key=api_key,
        batch_size=args.batch_size,
        reads=args.reads,
    )
    _override_runner(options, args)
    print(
        f"ledger bench: {args.shape} on {', '.join(targets)} for up to {args.duration} s, "
        f"{options.workers} Locust workers",
        flush=True,
    )
    code, out, summary = bench.run(options, lambda: _pgbench_baseline(database_url, args))
    print(report.format_summary(summary))
    print(f"report: {out}")
    return code


def _given_key(args: argparse.Namespace) -> str:
    return args.api_key or os.environ.get("LEDGER_API_KEY", "")


def _override_runner(options, args: argparse.Namespace) -> None:
    """--workers and --results, where given, over the defaults."""
    if args.workers:
        options.workers = args.workers
    if args.results:
        options.results = args.results


def _pgbench_baseline(database_url: str, args: argparse.Namespace) -> dict | None:
    """pgbench on the database behind the services, or None where pgbench
    cannot go (it speaks PostgreSQL's protocol, not CockroachDB's SQL)."""
    from ledger.ops import pgbench

    found = pgbench.connection_args(database_url)
    if found is None:
        return None
    connection, database = found
    print(f"raw database: pgbench for {args.baseline_seconds} s ...", flush=True)
    return pgbench.run(
        connection, database, args.accounts, "load-", pgbench.CLIENTS, args.baseline_seconds
    )


def cmd_drill(args: argparse.Namespace) -> int:
    from ledger.ops import bench, drill
    from ledger.ops.cluster import Cluster

    if args.target == "compose":
        targets = [t.strip() for t in args.services.split(",") if t.strip()]
        database_url = args.database_url
        fault = drill.compose_fault(args.scenario, args.pause)
        api_key = _given_key(args)
        if not api_key:
            print("ledger drill: compose needs --api-key (or LEDGER_API_KEY)", file=sys.stderr)
            return 2
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
        api_key = cluster.admin_key()
    options = bench.BenchOptions(
        shape=args.shape,
        targets=targets,
        database_url=database_url,
        accounts=args.accounts,
        step_users=args.users,
        check_targets=False,
        api_key=api_key,
    )
    _override_runner(options, args)
    print(
        f"ledger drill: {args.scenario} on {', '.join(targets)}: {args.users} users, "
        f"fault after {args.before:g} s, then {args.after:g} s more",
        flush=True,
    )
    code, out, verdict = drill.run(args.scenario, options, fault, args.before, args.after)
    print(drill.format_verdict(verdict))
    print(f"report: {out}")
    return code


def register(sub) -> None:
    """Add the subcommands to `ledger`'s subparsers."""
    _cluster_parser(sub)
    _bench_parser(sub)
    _drill_parser(sub)


def _cluster_parser(sub) -> None:
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
    down.add_argument(
        "--purge", action="store_true", help="then remove the cluster's directory and data"
    )
    down.set_defaults(func=cmd_cluster_down)
    st = cluster_sub.add_parser("status", help="every part: pid, port, state, log")
    st.add_argument("--dir", type=Path, default=None)
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_cluster_status)


def _bench_parser(sub) -> None:
    bench = sub.add_parser(
        "bench", help="a Locust capacity run, audited, next to pgbench, with a report"
    )
    bench.add_argument("--shape", default="any_to_any", help=f"a load shape: {', '.join(SHAPES)}")
    bench.add_argument(
        "--duration", type=int, default=60, help="seconds of load at most (default 60)"
    )
    bench.add_argument(
        "--target",
        help="comma-separated service URLs (default: the local cluster's services); "
        "with it, --database-url names the database to audit",
    )
    bench.add_argument("--database-url", help="the database behind --target")
    bench.add_argument(
        "--api-key", help="with --target: the key the load sends (default LEDGER_API_KEY)"
    )
    bench.add_argument("--dir", type=Path, default=None, help="the local cluster's directory")
    bench.add_argument(
        "--accounts", type=int, default=1000, help="accounts the load posts between (default 1000)"
    )
    bench.add_argument(
        "--step-users", type=int, help="users added per step (default 4; 1 for bulk)"
    )
    bench.add_argument(
        "--step-seconds", type=float, default=10, help="seconds per step (default 10)"
    )
    bench.add_argument(
        "--max-users", type=int, default=200, help="the step ramp stops here (default 200)"
    )
    bench.add_argument(
        "--p99-ms",
        type=float,
        help="latency target of a step (default: the shape's max_p99_ms in targets.toml, or 50)",
    )
    bench.add_argument(
        "--batch-size",
        type=int,
        default=100,
        help="postings per request of shape bulk (default 100)",
    )
    bench.add_argument(
        "--reads",
        choices=["replica", "primary"],
        default="replica",
        help="shape read_mix: stale reads (the read replica) or strong ones (the primary)",
    )
    bench.add_argument(
        "--max-errors",
        type=float,
        default=0.01,
        help="the error ratio a step may have (default 0.01)",
    )
    bench.add_argument("--workers", type=int, help="Locust workers (default: one per core)")
    bench.add_argument(
        "--baseline-seconds",
        type=int,
        default=15,
        help="seconds of pgbench, the baseline (default 15)",
    )
    bench.add_argument("--results", type=Path, help=RESULTS_HELP)
    bench.add_argument(
        "--no-targets",
        action="store_true",
        help="do not judge ledger/ops/targets.toml (smoke runs)",
    )
    bench.set_defaults(func=cmd_bench)


def _drill_parser(sub) -> None:
    drill = sub.add_parser("drill", help="kill a node under load; prove nothing was lost")
    drill.add_argument("scenario", choices=SCENARIOS, help="what fails (see `ledger.ops.drill`)")
    drill.add_argument(
        "--target",
        default="local",
        choices=["local", "compose"],
        help="the local cluster (default) or the Docker Compose stack of deploy/cockroach",
    )
    drill.add_argument("--dir", type=Path, default=None, help="the local cluster's directory")
    drill.add_argument("--shape", default="any_to_any", help="the load shape (default any_to_any)")
    drill.add_argument("--users", type=int, default=8, help="constant Locust users (default 8)")
    drill.add_argument(
        "--before", type=float, default=10, help="seconds of load before the fault (default 10)"
    )
    drill.add_argument(
        "--after", type=float, default=20, help="seconds of load after it (default 20)"
    )
    drill.add_argument(
        "--pause", type=float, default=3, help="seconds a killed node stays down (default 3)"
    )
    drill.add_argument(
        "--accounts", type=int, default=1000, help="accounts the load posts between (default 1000)"
    )
    drill.add_argument("--workers", type=int, help="Locust workers (default: one per core)")
    drill.add_argument("--results", type=Path, help=RESULTS_HELP)
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
    drill.add_argument(
        "--api-key",
        help="with --target compose: the key the load sends (default LEDGER_API_KEY)",
    )
    drill.set_defaults(func=cmd_drill)
