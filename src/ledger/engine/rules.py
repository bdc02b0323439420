"""The rules of double entry, as pure functions: no I/O, no SQL, no HTTP.

Each function either returns or raises one `LedgerError` subclass naming the
mistake. `ledger.engine.ledger` calls them in order before and while it
writes; the unit tests call them directly.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping

import msgspec

from ledger.engine import errors
from ledger.engine.account_rules import known_account_id
from ledger.engine.free_text import check_metadata
from ledger.engine.limits import Limits
from ledger.engine.model import (
    AccountState,
    BalanceDelta,
    BalanceTotals,
    Direction,
    IdempotencyKey,
    Leg,
    NewTransaction,
    PendingTotals,
    PostPendingRequest,
    Transaction,
)

# Totals are kept in 64-bit integers in the database.
INT64_MAX = 2**63 - 1


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


def check_accounts(legs: list[Leg], states: Mapping[str, AccountState]) -> list[str]:
    """Every leg's account exists, is active, and has the leg's currency,
    where the leg states one; returns each leg's currency.

    Raises UnknownAccount, AccountFrozen, AccountClosed, CurrencyMismatch.
    """
    currencies = []
    for i, leg in enumerate(legs):
        state = states.get(leg.account_id)
        if state is None:
            raise errors.UnknownAccount(
                f"entries[{i}] names account {leg.account_id!r}, which does not exist",
                pointer=f"/entries/{i}/account_id",
                account_id=leg.account_id,
            )
        _check_active(i, state)
        currency = state.account.currency
        if leg.currency is not None and leg.currency != currency:
            raise errors.CurrencyMismatch(
                f"entries[{i}] is in {leg.currency} but account {leg.account_id!r} "
                f"holds {currency}",
                pointer=f"/entries/{i}/currency",
                account_id=leg.account_id,
                account_currency=currency,
                leg_currency=leg.currency,
            )
        currencies.append(currency)
    return currencies


def _check_active(i: int, state: AccountState) -> None:
    account = state.account
    if account.status == "active":
        return
    refusal = errors.AccountFrozen if account.status == "frozen" else errors.AccountClosed
    raise refusal(
        f"entries[{i}] names account {account.id!r}, which is {account.status}: "
        "no new posting may touch it",
        pointer=f"/entries/{i}/account_id",
        account_id=account.id,
        account_status=account.status,
    )


def check_balanced(legs: list[Leg], currencies: list[str]) -> None:
    """Per currency, debits equal credits. Raises UnbalancedTransaction,
    pointing at the leg when a currency has legs on one side only (an
    account of another currency named by mistake)."""
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    where: dict[str, list[int]] = defaultdict(list)
    for i, (leg, currency) in enumerate(zip(legs, currencies, strict=True)):
        sums[currency][0 if leg.direction == "debit" else 1] += leg.amount
        where[currency].append(i)
    for currency, (debits, credits) in sorted(sums.items()):
        if debits != credits and len(sums) > 1 and not (debits and credits):
            i = where[currency][0]
            others = ", ".join(sorted(c for c in sums if c != currency))
            raise errors.UnbalancedTransaction(
                f"entries[{i}] names account {legs[i].account_id!r}, which holds {currency}, "
                f"but no leg in {currency} {'credits' if debits else 'debits'} it back (the "
                f"other legs are in {others}); every currency balances on its own",
                pointer=f"/entries/{i}/account_id",
                currency=currency,
                debits=debits,
                credits=credits,
            )
        if debits != credits:
            raise errors.UnbalancedTransaction(
                f"in {currency}, debits total {debits} but credits total {credits}",
                currency=currency,
                debits=debits,
                credits=credits,
            )


def balance_deltas(legs: Iterable[Leg], *, pending: bool = False) -> list[BalanceDelta]:
    """What the legs add to each account's posted totals (or, for a pending
    transaction, to its pending totals), sorted by account id."""
    acc: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for leg in legs:
        acc[leg.account_id][0 if leg.direction == "debit" else 1] += leg.amount
    if pending:
        return [BalanceDelta(a, 0, 0, d, c) for a, (d, c) in sorted(acc.items())]
    return [BalanceDelta(a, d, c) for a, (d, c) in sorted(acc.items())]


def release_deltas(pending_legs: Iterable[Leg]) -> list[BalanceDelta]:
    """Taking a pending transaction's legs out of the pending totals."""
    return [
        BalanceDelta(d.account_id, 0, 0, -d.pending_debits, -d.pending_credits)
        for d in balance_deltas(pending_legs, pending=True)
    ]


def merge_deltas(*parts: Iterable[BalanceDelta]) -> list[BalanceDelta]:
    acc: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for part in parts:
        for d in part:
            totals = acc[d.account_id]
            totals[0] += d.debits
            totals[1] += d.credits
            totals[2] += d.pending_debits
            totals[3] += d.pending_credits
    return [BalanceDelta(a, *t) for a, t in sorted(acc.items())]


# Each limit flag: which total it bounds, and by which.
LIMIT_FLAGS = {
    "debits_must_not_exceed_credits": ("debits", "credits"),
    "credits_must_not_exceed_debits": ("credits", "debits"),
}


def check_limits(states: Mapping[str, AccountState], deltas: list[BalanceDelta]) -> None:
    """Every account's limit flag holds after the deltas are applied, against
    the available balance: pending amounts on the bounded side count as if
    posted, pending amounts on the other side do not count until posted.

    Raises LimitExceeded naming the account and what it would have, or
    BalanceOverflow when a running total would leave 64 bits.
    """
    for delta in deltas:
        state = states[delta.account_id]
        if state.account.hot:
            # No limit to check (check_hot), and no totals read: a hot
            # account's postings do not read its balance.
            continue
        totals = {
            "debits": state.posted_debits + delta.debits,
            "credits": state.posted_credits + delta.credits,
        }
        held = {
            "debits": state.pending_debits + delta.pending_debits,
            "credits": state.pending_credits + delta.pending_credits,
        }
        if max(totals["debits"] + held["debits"], totals["credits"] + held["credits"]) > INT64_MAX:
            raise errors.BalanceOverflow(
                f"account {delta.account_id!r} would exceed the largest total the ledger can hold",
                account_id=delta.account_id,
            )
        for limit, (bounded, bound) in LIMIT_FLAGS.items():
            excess = limit_excess(limit, totals, held)
            if getattr(state.account.flags, limit) and excess > 0:
                raise errors.LimitExceeded(
                    f"account {delta.account_id!r} has {limit}; after this posting its "
                    f"{bounded} would be {totals[bounded]} posted and {held[bounded]} pending "
                    f"against {bound} of {totals[bound]} (exceeding them by {excess})",
                    account_id=delta.account_id,
                    limit=limit,
                    shortfall=excess,
                )


def limit_excess(limit: str, totals: Mapping[str, int], held: Mapping[str, int]) -> int:
    """By how much `limit` is broken (0 or less: kept), counting pending
    amounts on the bounded side as if posted; `totals` and `held` are the
    posted and pending "debits" and "credits"."""
    bounded, bound = LIMIT_FLAGS[limit]
    return totals[bounded] + held[bounded] - totals[bound]


def split_hot(
    states: Mapping[str, AccountState], deltas: list[BalanceDelta]
) -> tuple[list[BalanceDelta], list[BalanceDelta]]:
    """The deltas for ordinary accounts (added to their locked balance rows)
    and those for hot accounts (appended as deltas, nothing locked)."""
    ordinary = [d for d in deltas if not states[d.account_id].account.hot]
    hot = [d for d in deltas if states[d.account_id].account.hot]
    return ordinary, hot


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
