"""Resolving an exception by hand: the match a person makes, and the
write-off posted through the ledger's own posting path."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ledger.engine import errors
from ledger.engine.access import Actor
from ledger.engine.model import Account, IdempotencyKey, Leg, NewTransaction, PostingResult
from ledger.engine.reconcile.model import (
    WRITE_OFF_KEY,
    Match,
    ReconException,
    Resolved,
    ResolveRequest,
    Source,
)

if TYPE_CHECKING:
    from ledger.engine.ports import ReconciliationCases

Post = Callable[[NewTransaction, IdempotencyKey, Actor], Awaitable[PostingResult]]
# The client a write-off's idempotency key belongs to, whoever resolves:
# one exception, one adjusting posting.
WRITE_OFF_CLIENT = "reconciliation"
WRITES_OFF = ("missing_in_ledger", "missing_in_statement", "amount_mismatch")


async def manual_match(
    store: ReconciliationCases,
    account: Account,
    found: ReconException,
    source: Source,
    cmd: ResolveRequest,
) -> Resolved:
    """The match a person makes by hand: a statement line with the
    transaction it belongs to, or a ledger entry with its line. Raises
    InvalidValue."""
    if found.statement_line is not None and found.entry_id is None:
        if cmd.transaction_id is None:
            raise errors.InvalidValue(
                "matching a statement line needs the transaction_id it belongs to",
                field="transaction_id",
            )
        transaction = await store.get_transaction(cmd.transaction_id)
        legs = (
            []
            if transaction is None
            else [leg for leg in transaction.entries if leg.account_id == account.id]
        )
        if not legs:
            raise errors.InvalidValue(
                f"transaction {cmd.transaction_id!r} has no entry on {account.id!r}",
                field="transaction_id",
            )
        line_ids, entry_ids = [found.statement_line], [leg.entry_id for leg in legs]
        ledger = sum(
            leg.amount if leg.direction == account.normal_side else -leg.amount for leg in legs
        )
        transaction_ids = [cmd.transaction_id]
        line = await store.get_line(source.id, found.statement_line)
        amount = line.amount if line is not None else 0
    elif found.entry_id is not None and found.statement_line is None:
        if cmd.statement_line is None:
            raise errors.InvalidValue(
                "matching a ledger entry needs the statement_line it belongs to",
                field="statement_line",
            )
        line = await store.get_line(source.id, cmd.statement_line)
        if line is None:
            raise errors.InvalidValue(
                f"source {source.id!r} has no statement line {cmd.statement_line!r}",
                field="statement_line",
            )
        line_ids, entry_ids = [line.id], [found.entry_id]
        transaction_ids = [found.transaction_id or ""]
        amount, ledger = line.amount, line.amount + found.amount
    else:  # a pair already, or a difference on a match: nothing to match
        raise errors.InvalidValue(
            f"a {found.cls} exception is not matched by hand; accept or write it off",
            field="resolution",
        )
    match = Match(
        kind="manual",
        statement_lines=line_ids,
        entry_ids=entry_ids,
        transaction_ids=transaction_ids,
        amount=amount,
        difference=amount - ledger,
    )
    return Resolved(resolution="matched", note=cmd.note, match=match)


async def write_off(
    post: Post, account: Account, found: ReconException, cmd: ResolveRequest, actor: Actor
) -> Resolved:
    """Post the difference between the source's account and
    `offset_account_id` through the ledger's posting path, idempotent on
    the exception. Raises InvalidValue and a posting's refusals."""
    if found.cls not in WRITES_OFF or found.amount == 0:
        raise errors.InvalidValue(
            f"a {found.cls} exception of {found.amount} cannot be written off",
            field="resolution",
        )
    if cmd.offset_account_id is None:
        raise errors.InvalidValue(
            "a write-off needs the offset_account_id to post against",
            field="offset_account_id",
        )
    raise_side = account.normal_side
    lower_side = "credit" if raise_side == "debit" else "debit"
    here, there = (raise_side, lower_side) if found.amount > 0 else (lower_side, raise_side)
    amount = abs(found.amount)
    posting = NewTransaction(
        entries=[
            Leg(account_id=account.id, direction=here, amount=amount),
            Leg(account_id=cmd.offset_account_id, direction=there, amount=amount),
        ],
        description=cmd.note[:1024],
        metadata={WRITE_OFF_KEY: found.id},
    )
    key = IdempotencyKey(client_id=WRITE_OFF_CLIENT, key=f"write-off:{found.id}")
    result = await post(posting, key, actor)
    return Resolved(
        resolution="written_off",
        note=cmd.note,
        adjustment_transaction_id=result.transaction.id,
    )
