"""`ledger journal head | seal`, and how `ledger verify` words the sealed
journal's verdict. Straight against the database, like `ledger verify`."""

from __future__ import annotations

import argparse

import msgspec

from ledger.cli.common import database_args, with_ledger
from ledger.engine import JournalReport


def register(sub) -> None:

    journal = sub.add_parser("journal", help="the sealed, hash-chained journal")
    journal_sub = journal.add_subparsers(dest="journal_command", required=True)
    head = journal_sub.add_parser(
        "head", help="print the newest block as JSON: record its hash outside the system"
    )
    head.set_defaults(func=cmd_head)
    seal = journal_sub.add_parser(
        "seal", help="seal every committed transaction now (while no service is running)"
    )
    seal.set_defaults(func=cmd_seal)
    for parser in (head, seal):
        database_args(parser)


def cmd_head(args: argparse.Namespace) -> int:
    async def head(ledger, _settings) -> str:
        return msgspec.json.format(msgspec.json.encode(await ledger.journal.head())).decode()

    return with_ledger(args, printed(head))


def cmd_seal(args: argparse.Namespace) -> int:
    async def seal(ledger, settings) -> str:
        sealed = 0
        while n := await ledger.journal.seal(settings.seal_max):
            sealed += n
        head = await ledger.journal.head()
        return f"sealed {sealed} transactions; head block {head.block}, hash {head.hash}"

    return with_ledger(args, printed(seal))


def format_journal(report: JournalReport) -> list[str]:
    """The sealed journal's part of `ledger verify`'s report."""
    if report.blocks:
        lines = [
            f"  journal: blocks {report.first_block}..{report.last_block} "
            f"({report.transactions} transactions)"
        ]
    else:
        lines = ["  journal: no block sealed yet"]
    if report.first_broken_block is not None:
        lines.append(f"  JOURNAL BROKEN from block {report.first_broken_block}:")
    lines += [f"    block {p.block}: {p.problem}" for p in report.broken_blocks]
    for t in report.changed_transactions:
        lines.append(
            f"  CHANGED transaction {t.transaction_id} (block {t.block}, sequence "
            f"{t.sequence}): {t.problem}"
        )
    left = report.left_out
    if left.unsealed_below_horizon_count:
        lines.append(
            f"  LEFT OUT of the sequence: {left.unsealed_below_horizon_count} committed "
            f"transactions below the sealed horizon, e.g. {', '.join(left.unsealed_below_horizon)}"
        )
    if left.unaudited_count:
        lines.append(
            f"  UNAUDITED: {left.unaudited_count} transactions no audit row accounts for "
            f"(not written by the service), e.g. {', '.join(left.unaudited)}"
        )
    if left.waiting:
        lines.append(
            f"  {left.waiting} committed transactions wait for the sequencer "
            f"(oldest {left.oldest_waiting_seconds:.1f} s): is a service running?"
        )
    return lines


def printed(work):
    """`work`, its answer printed: 0."""

    async def run(ledger, settings) -> int:
        print(await work(ledger, settings))
        return 0

    return run
