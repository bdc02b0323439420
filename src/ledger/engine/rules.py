"""The rules of double entry, as pure functions: no I/O, no SQL, no HTTP.

Each function either returns or raises one `LedgerError` subclass naming the
mistake. `ledger.engine.ledger` calls them in order before and while it
writes; the unit tests call them directly.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable

import msgspec

from ledger.engine import errors
from ledger.engine.account_rules import known_account_id
from ledger.engine.free_text import check_metadata
from ledger.engine.legs import check_balanced
from ledger.engine.limits import Limits
from ledger.engine.model import (
    BalanceTotals,
    Direction,
    IdempotencyKey,
    Leg,
    NewTransaction,
    PendingTotals,
    PostPendingRequest,
    Transaction,
)


def check_transaction_shape(cmd: NewTransaction, limits: Limits) -> None:
    """Check what can be checked without reading the database.

    Raises TooFewLegs, TooManyLegs, InvalidAmount, InvalidValue (bad account id
    in a leg, oversized metadata). Balance per currency needs the accounts'
    currencies and is checked by `check_balanced`.
    """
    n = len(cmd.entries)
    if n < 2:
        raise errors.TooFewLegs(f"a transaction needs at least 2 legs; this one has {n}")
    if n > limits.max_legs:
        raise errors.TooManyLegs(
            f"a transaction may have at most {limits.max_legs} legs; this one has {n}",
            max_legs=limits.max_legs,
        )
    for i, leg in enumerate(cmd.entries):
        if leg.amount <= 0 or leg.amount > limits.max_amount:
            raise errors.InvalidAmount(
                f"entries[{i}].amount must be a positive integer of minor units "
                f"no larger than {limits.max_amount}; got {leg.amount}",
                pointer=f"/entries/{i}/amount",
                max_amount=limits.max_amount,
            )
        if not known_account_id(leg.account_id):
            raise errors.UnknownAccount(
                f"entries[{i}].account_id {leg.account_id!r} is not a valid account id",
                pointer=f"/entries/{i}/account_id",
                account_id=leg.account_id,
            )
    if cmd.timeout_seconds is not None:
        if not cmd.pending:
            raise errors.InvalidValue(
                "timeout_seconds applies only to a pending transaction", field="timeout_seconds"
            )
        if not 1 <= cmd.timeout_seconds <= limits.max_timeout_seconds:
            raise errors.InvalidValue(
                f"timeout_seconds must be between 1 and {limits.max_timeout_seconds}",
                field="timeout_seconds",
            )
    check_metadata(cmd.metadata, cmd.description, limits)
    check_moves_something(cmd.entries)


def check_moves_something(legs: list[Leg]) -> None:
    """A transaction whose legs cancel out on every account (debit and
    credit the same account alike) changes no balance: always a mistake.
    Raises MovesNothing."""
    net: dict[str, int] = defaultdict(int)
    for leg in legs:
        net[leg.account_id] += leg.amount if leg.direction == "debit" else -leg.amount
    if not any(net.values()):
        raise errors.MovesNothing(
            "the legs cancel out on every account they name, so the transaction would change "
            "no balance; a transfer debits one account and credits another"
        )


def reversed_legs(legs: Iterable[Leg]) -> list[Leg]:
    """The same legs with every direction swapped."""
    swap: dict[str, Direction] = {"debit": "credit", "credit": "debit"}
    return [Leg(leg.account_id, swap[leg.direction], leg.amount) for leg in legs]


def check_reversible(original: Transaction, overdue: bool = False) -> None:
    """Raises NotReversible for a pending transaction or a void (which moved
    no posted amount), AlreadyReversed for one reversed before. `overdue`:
    the transaction's deadline has passed (the sweeper may not have
    expired it yet)."""
    transaction_id = original.id
    if original.pending or original.resolution in ("voided", "expired"):
        raise errors.NotReversible(
            f"transaction {transaction_id!r} {_why_not_reversible(original, overdue)}",
            transaction_id=transaction_id,
        )
    if original.reversed_by is not None:
        raise errors.AlreadyReversed(
            f"transaction {transaction_id!r} was already reversed by {original.reversed_by!r}",
            transaction_id=transaction_id,
            reversed_by=original.reversed_by,
        )


def _why_not_reversible(original: Transaction, overdue: bool) -> str:
    """What to tell a client who asked to reverse a pending transaction or
    the release of one: neither moved a posted amount."""
    if original.pending:
        if original.state == "expired" or (original.state == "pending" and overdue):
            return (
                "is an authorisation that expired (at "
                f"{original.expires_at.isoformat() if original.expires_at else '?'}): "
                "it moved no posted amount, and nothing is held any more"
            )
        if original.state == "pending":
            return "is pending and moved no posted amount: post or void it instead"
        if original.state == "posted":
            return (
                "is an authorisation that was posted by "
                f"{original.resolved_by!r}: reverse that posting instead"
            )
        return f"is an authorisation that was {original.state}: it moved no posted amount"
    if original.resolution == "expired":
        return "is the expiry of an authorisation and moved no posted amount"
    return "is a void and moved no posted amount"


def totals(normal_side: Direction, debits: int, credits: int) -> BalanceTotals:
    """The signed balance on the account's normal side."""
    balance = debits - credits if normal_side == "debit" else credits - debits
    return BalanceTotals(debits=debits, credits=credits, balance=balance)


def available(normal_side: Direction, posted: BalanceTotals, pending: PendingTotals) -> int:
    """The posted balance less the pending amounts that would reduce it:
    pending credits on a debit-normal account, pending debits on a
    credit-normal one. Pending amounts that would increase it do not count."""
    reducing = pending.credits if normal_side == "debit" else pending.debits
    return posted.balance - reducing


def resolution_legs(
    pending_legs: list[Leg], currencies: list[str], request: PostPendingRequest
) -> list[Leg]:
    """The legs to post for a pending transaction: all of it, one `amount`
    for both legs of a two-leg transaction, or `amounts` one per leg. Each
    amount is between 1 and what the leg holds, and the result balances per
    currency. Raises InvalidResolution."""
    if request.amount is not None and request.amounts is not None:
        raise errors.InvalidResolution("give either amount or amounts, not both")
    if request.amount is not None:
        if len(pending_legs) != 2:
            raise errors.InvalidResolution(
                f"a single amount fits a two-leg transaction; this one has "
                f"{len(pending_legs)} legs: give amounts, one per leg"
            )
        amounts = [request.amount, request.amount]
    elif request.amounts is not None:
        if len(request.amounts) != len(pending_legs):
            raise errors.InvalidResolution(
                f"amounts has {len(request.amounts)} values for {len(pending_legs)} legs"
            )
        amounts = list(request.amounts)
    else:
        return list(pending_legs)
    for i, (leg, amount) in enumerate(zip(pending_legs, amounts, strict=True)):
        if not 1 <= amount <= leg.amount:
            raise errors.InvalidResolution(
                f"leg {i} holds {leg.amount}; the amount to post must be between 1 and that, "
                f"got {amount}",
                leg=i,
            )
    legs = [
        Leg(leg.account_id, leg.direction, a) for leg, a in zip(pending_legs, amounts, strict=True)
    ]
    try:
        check_balanced(legs, currencies)
    except errors.UnbalancedTransaction as exc:
        raise errors.InvalidResolution(
            f"the amounts to post do not balance: {exc.detail}", **exc.details
        ) from exc
    return legs


def check_idempotency_key(key: IdempotencyKey, limits: Limits) -> None:
    """Raises MissingIdempotencyKey for an empty key, InvalidValue for one
    too long or with characters that are not printable."""
    if not key.key:
        raise errors.MissingIdempotencyKey(
            "a posting needs an idempotency key: a unique string per posting, reused "
            "only to retry that same posting"
        )
    if len(key.key) > limits.max_idempotency_key_chars or not key.key.isprintable():
        raise errors.InvalidValue(
            f"the idempotency key must be 1 to {limits.max_idempotency_key_chars} "
            "printable characters",
            field="idempotency_key",
        )


def fingerprint(kind: str, request: msgspec.Struct) -> str:
    """A digest of what a request asks for, independent of JSON spelling.

    Two bodies that decode to the same command (other key order, other white
    space) have the same fingerprint; the endpoint (`kind`) is part of it, so a
    key reused on another endpoint is a conflict too.
    """
    canonical = msgspec.json.encode(msgspec.to_builtins(request), order="sorted")
    return hashlib.sha256(kind.encode() + b"\0" + canonical).hexdigest()
