"""`ledger reconcile --source ID FILE [--from --to]`: upload a statement,
run the source's reconciliation over its days, print the summary, and exit
1 while a `high` exception of the source is open (so a scheduler alerts).
Straight against the database, like `ledger verify`."""

from __future__ import annotations

import argparse
from datetime import date, timedelta
from pathlib import Path

from ledger.cli.common import database_args, with_ledger
from ledger.engine import access, errors
from ledger.engine.reconcile.model import ExceptionFilter, NewRun

MEDIA = {"camt.053": "application/xml"}
ACTOR = access.system("reconcile-cli")


def register(sub) -> None:

    rec = sub.add_parser(
        "reconcile",
        help="upload a statement file and reconcile it; exit 1 while a high exception is open",
    )
    rec.add_argument("--source", required=True, help="the reconciliation source's id")
    rec.add_argument("file", type=Path, help="the statement file (camt.053 XML or CSV)")
    rec.add_argument(
        "--from",
        dest="from_",
        type=date.fromisoformat,
        help="first day (default: the file's first)",
    )
    rec.add_argument(
        "--to", type=date.fromisoformat, help="day after the last (default: the file's last + 1)"
    )
    database_args(rec)
    rec.set_defaults(func=cmd_reconcile)


def cmd_reconcile(args: argparse.Namespace) -> int:
    body = args.file.read_bytes()
    return with_ledger(args, lambda ledger, _settings: reconcile(ledger, args, body))


async def reconcile(ledger, args: argparse.Namespace, body: bytes) -> int:
    cases = ledger.reconciliation
    try:
        source = await cases.source(args.source)
        statement, replayed = await cases.upload(
            source.id, body, MEDIA.get(source.format, "text/csv"), ACTOR
        )
        start = args.from_ or statement.first_date
        end = args.to or (statement.last_date + timedelta(days=1) if statement.last_date else None)
        if start is None or end is None:
            print(f"statement {statement.id}: no dated line; give --from and --to")
            return 2
        run = await cases.run(NewRun(source_id=source.id, from_=start, to=end), ACTOR)
    except errors.LedgerError as exc:
        print(f"refused ({exc.code}): {exc.detail}")
        return 2
    counts = run.counts
    again = " (uploaded before)" if replayed else ""
    print(f"statement {statement.id}{again}: {statement.lines} lines")
    print(
        f"run {run.id} over [{start}, {end}): {counts.lines} lines, {counts.entries} entries, "
        f"{counts.matched} matches, {counts.skipped} skipped, {counts.settled} settled before"
    )
    for cls, n in counts.exceptions.items():
        print(f"  {cls}: {n}")
    high = await cases.exceptions(
        ExceptionFilter(source_id=source.id, severity="high", status="open"), None, 1
    )
    if high.items:
        print(f"HIGH exceptions are open for {source.id}: see GET /reconciliation/exceptions")
        return 1
    return 0
