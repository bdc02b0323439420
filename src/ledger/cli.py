"""`ledger migrate | verify`, the database every command shares, and `ledger
serve` (`ledger.serve_cli`), the keys' and the audit trail's subcommands
(`ledger.access_cli`) and the operator tools' (`ledger.ops.cli`) mounted
beside them."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from ledger.settings import Settings

if TYPE_CHECKING:
    pass


def database_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        help="postgresql+psycopg://... or cockroachdb+psycopg://...; "
        "default: the embedded PostgreSQL in --data-dir (env LEDGER_DATABASE_URL)",
    )
    parser.add_argument(
        "--data-dir", type=Path, help="embedded PostgreSQL data directory (default .ledger/pgdata)"
    )


def settings_of(args: argparse.Namespace) -> Settings:
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


def cmd_migrate(args: argparse.Namespace) -> int:
    from ledger.storage import migrate

    settings = settings_of(args)
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


async def _verify(url: str, settings: Settings, since_block: int = 1):
    from ledger.app import build_ledger, build_store

    store = build_store(url, settings)
    try:
        return await build_ledger(store, settings).verify(since_block)
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
    if args.since_block < 1:
        print("ledger verify: --since-block counts from block 1", file=sys.stderr)
        return 2
    settings = settings_of(args)
    with database(settings, quiet=args.json) as (url, _):
        if not schema_is_current(url):
            return 2
        report = asyncio.run(_verify(url, settings, args.since_block))
    if args.json:
        print(msgspec.json.format(msgspec.json.encode(report)).decode())
    else:
        print(format_report(report))
    return 0 if report.ok else 1


def format_report(report) -> str:
    lines = [
        f"accounts {report.accounts}, transactions {report.transactions}, entries {report.entries}"
    ]
    for currency, t in sorted(report.per_currency.items()):
        mark = "ok" if t.debits == t.credits else "UNBALANCED"
        lines.append(f"  {currency}: debits {t.debits} credits {t.credits} {mark}")
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
    if report.short_transactions:
        lines.append(
            f"  {report.short_transaction_count} transactions with the wrong number of entries "
            f"for their kind, e.g. {', '.join(report.short_transactions)}"
        )
    if report.mixed_scales:
        lines.append(
            f"  accounts at another scale than their currency's: {', '.join(report.mixed_scales)}"
        )
    if report.currency_mismatches:
        lines.append(f"  {report.currency_mismatches} entries differ from their account's currency")
    if report.journal is not None:
        from ledger.journal_cli import format_journal

        lines += format_journal(report.journal)
    lines.append("verify: clean" if report.ok else "verify: DIFFERENCES FOUND")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="ledger", description="A double-entry ledger service.")
    sub = parser.add_subparsers(dest="command", required=True)
    _migrate_parser(sub)
    _verify_parser(sub)
    from ledger import access_cli, journal_cli, reconcile_cli, serve_cli
    from ledger.ops.cli import register

    serve_cli.register(sub)
    access_cli.register(sub)
    journal_cli.register(sub)
    reconcile_cli.register(sub)
    register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


def _migrate_parser(sub) -> None:
    mig = sub.add_parser("migrate", help="apply the schema migrations")
    database_args(mig)
    mig.add_argument("--partitions", type=int, default=16, help="hash partitions of entries")
    mig.add_argument("--sql", action="store_true", help="print the DDL instead of running it")
    mig.set_defaults(func=cmd_migrate)


def _verify_parser(sub) -> None:
    ver = sub.add_parser(
        "verify",
        help="recompute balances from the journal and compare; recompute the sealed "
        "journal's hashes and chain",
    )
    database_args(ver)
    ver.add_argument("--json", action="store_true", help="print the report as JSON")
    ver.add_argument(
        "--since-block",
        type=int,
        default=1,
        metavar="N",
        help="check the chain from block N on (trusting block N-1 as stored)",
    )
    ver.set_defaults(func=cmd_verify)


if __name__ == "__main__":
    sys.exit(main())
