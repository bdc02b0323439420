"""`ledger migrate` and `ledger verify`."""

from __future__ import annotations

import argparse
import sys

import msgspec

from ledger.cli.common import database, database_args, settings_of, with_ledger


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


def cmd_verify(args: argparse.Namespace) -> int:
    if args.since_block < 1:
        print("ledger verify: --since-block counts from block 1", file=sys.stderr)
        return 2
    report = with_ledger(
        args, lambda ledger, _settings: ledger.verify(args.since_block), quiet=args.json
    )
    if isinstance(report, int):
        return report
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
        from ledger.cli.journal import format_journal

        lines += format_journal(report.journal)
    lines.append("verify: clean" if report.ok else "verify: DIFFERENCES FOUND")
    return "\n".join(lines)


def register(sub) -> None:
    _migrate_parser(sub)
    _verify_parser(sub)


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
