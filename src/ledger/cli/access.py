"""`ledger keys create | list | revoke` and `ledger audit export`: the
operator's side of access control, straight against the database (whoever
can reach the database is trusted already; these need no key)."""

from __future__ import annotations

import argparse
import getpass
import sys
import uuid
from datetime import datetime

import msgspec

from ledger.cli.common import database_args, with_ledger
from ledger.console import table
from ledger.engine.access import Actor, NewKey
from ledger.engine.audit import AuditFilter


def register(sub) -> None:
    keys = sub.add_parser("keys", help="make, list and revoke API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="make a key and print it (shown only now)")
    create.add_argument("--name", required=True, help="what the key is for")
    create.add_argument("--client", required=True, help="client id: the idempotency scope")
    create.add_argument("--scopes", required=True, help="comma-separated, e.g. accounts:read")
    create.add_argument("--accounts", help="comma-separated account-id prefixes it is limited to")
    create.add_argument("--requests-per-second", type=int, help="rate limit per process")
    create.set_defaults(func=cmd_keys_create)
    listing = keys_sub.add_parser("list", help="every key, revoked ones too")
    listing.set_defaults(func=cmd_keys_list)
    revoke = keys_sub.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    revoke.set_defaults(func=cmd_keys_revoke)
    for parser in (create, listing, revoke):
        _database_args(parser)

    trail = sub.add_parser("audit", help="the audit trail")
    trail_sub = trail.add_subparsers(dest="audit_command", required=True)
    export = trail_sub.add_parser("export", help="write audit rows as JSON lines")
    export.add_argument("--from", dest="since", type=_time, help="RFC 3339, inclusive")
    export.add_argument("--to", dest="until", type=_time, help="RFC 3339, exclusive")
    export.add_argument("--output", help="file to write (default: standard output)")
    _database_args(export)
    export.set_defaults(func=cmd_audit_export)


def _database_args(parser: argparse.ArgumentParser) -> None:

    database_args(parser)


def _time(raw: str) -> datetime:
    value = datetime.fromisoformat(raw)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError("give a time zone offset (Z or +hh:mm)")
    return value


def _actor() -> Actor:
    """The operator at this machine, as the audit trail records them."""
    return Actor(
        request_id=f"cli-{uuid.uuid4().hex}",
        client_id="ledger-cli",
        key_name=f"cli:{getpass.getuser()}",
        source="cli",
    )


def cmd_keys_create(args: argparse.Namespace) -> int:
    cmd = NewKey(
        name=args.name,
        client_id=args.client,
        scopes=[s.strip() for s in args.scopes.split(",") if s.strip()],
        accounts=[p.strip() for p in args.accounts.split(",")] if args.accounts else None,
        requests_per_second=args.requests_per_second,
    )

    async def work(ledger, _settings) -> int:
        from ledger.engine import errors

        try:
            issued = await ledger.keys.create(cmd, _actor())
        except errors.LedgerError as exc:
            print(f"ledger: {exc.detail}", file=sys.stderr)
            return 2
        print(f"key {issued.id} ({issued.name}, client {issued.client_id}); shown only now:")
        print(issued.key)
        return 0

    return with_ledger(args, work)


def cmd_keys_list(args: argparse.Namespace) -> int:
    async def work(ledger, _settings) -> int:
        cursor, rows = None, []
        while True:
            page = await ledger.keys.page(cursor, 500)
            for k in page.items:
                rows.append(
                    [
                        k.id,
                        k.name,
                        k.client_id,
                        k.created_at.isoformat(timespec="seconds"),
                        k.revoked_at.isoformat(timespec="seconds") if k.revoked_at else None,
                        ",".join(k.scopes)
                        + (f" accounts={','.join(k.accounts)}" if k.accounts else ""),
                    ]
                )
            cursor = page.next_cursor
            if cursor is None:
                break
        headers = ["id", "name", "client", "created", "revoked", "scopes"]
        print(table(headers, rows))
        return 0

    return with_ledger(args, work)


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    async def work(ledger, _settings) -> int:
        from ledger.engine import errors

        try:
            key = await ledger.keys.revoke(args.key_id, _actor())
        except errors.KeyNotFound as exc:
            print(f"ledger: {exc.detail}", file=sys.stderr)
            return 1
        print(f"key {key.id} revoked at {key.revoked_at.isoformat()}")
        return 0

    return with_ledger(args, work)


def cmd_audit_export(args: argparse.Namespace) -> int:
    where = AuditFilter(since=args.since, until=args.until)

    async def work(ledger, _settings) -> int:
        out = open(args.output, "wb") if args.output else sys.stdout.buffer  # noqa: SIM115, ASYNC230
        count = 0
        try:
            async for entry in ledger.audit.export(where):
                out.write(msgspec.json.encode(entry) + b"\n")
                count += 1
        finally:
            if args.output:
                out.close()
            else:
                out.flush()
        print(f"ledger: exported {count} audit rows", file=sys.stderr)
        return 0

    return with_ledger(args, work)
