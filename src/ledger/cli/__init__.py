"""The `ledger` command: `serve` (`cli.serve`), `migrate` and `verify`
(`cli.database`), the keys' and the audit trail's subcommands
(`cli.access`), the journal's (`cli.journal`), reconciliation's
(`cli.reconcile`), and the operator tools' (`ledger.ops.cli`)."""

from __future__ import annotations

import argparse
import logging


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="ledger", description="A double-entry ledger service.")
    sub = parser.add_subparsers(dest="command", required=True)
    from ledger.cli import access, database, journal, reconcile, serve
    from ledger.ops.cli import register

    database.register(sub)
    serve.register(sub)
    access.register(sub)
    journal.register(sub)
    reconcile.register(sub)
    register(sub)
    args = parser.parse_args(argv)
    return args.func(args)
