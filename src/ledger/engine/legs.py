"""Judging a posting's legs against the accounts they name: one judge for
single postings, pending resolutions, batches and grouped commits alike.

`Judge` holds the accounts' locked states and carries every accepted
posting's changes into the next one's judgement, so a batch (or a group of
requests committed together) is judged exactly as the same postings would
be one after another. Pure functions: no I/O, no SQL, no HTTP.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime

from ledger.engine import errors
from ledger.engine.model import AccountState, BalanceDelta, Leg, NewEntry

# Totals are kept in 64-bit integers in the database.
INT64_MAX = 2**63 - 1


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


class Judge:
    """The rules every posting's legs obey, posting after posting, against
    balances that carry the postings accepted before (`states` are the
    locked accounts' states as read; `created_at` is the unit's clock)."""

    def __init__(self, states: Mapping[str, AccountState], created_at: datetime | None = None):
        self.created_at = created_at
        self.states = dict(states)
        self.net: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])

    def take(
        self, legs: list[Leg], *, pending: bool = False, release: Iterable[Leg] = ()
    ) -> list[NewEntry]:
        """The entries of a posting of `legs` (pending ones when `pending`),
        once its rules hold; `release` are the legs of a pending transaction
        it resolves, taken out of the pending totals. Its changes are then
        part of what the next posting is judged against; a refused posting
        changes nothing.

        Raises UnknownAccount, AccountFrozen, AccountClosed, CurrencyMismatch,
        UnbalancedTransaction, LimitExceeded, BalanceOverflow.
        """
        currencies = check_accounts(legs, self.states)
        check_balanced(legs, currencies)
        deltas = merge_deltas(balance_deltas(legs, pending=pending), release_deltas(release))
        check_limits(self.states, deltas)
        for d in deltas:
            self._apply(d)
        return [
            NewEntry(leg.account_id, i, leg.direction, leg.amount, currency, pending)
            for i, (leg, currency) in enumerate(zip(legs, currencies, strict=True))
        ]

    def _apply(self, d: BalanceDelta) -> None:
        net = self.net[d.account_id]
        net[0] += d.debits
        net[1] += d.credits
        net[2] += d.pending_debits
        net[3] += d.pending_credits
        state = self.states[d.account_id]
        if not state.account.hot:
            self.states[d.account_id] = AccountState(
                state.account,
                state.posted_debits + d.debits,
                state.posted_credits + d.credits,
                state.pending_debits + d.pending_debits,
                state.pending_credits + d.pending_credits,
            )

    def deltas(self) -> tuple[list[BalanceDelta], list[BalanceDelta]]:
        """The net change of every ordinary account's balance row over the
        postings taken, and one delta per hot account, by account id."""
        merged = [BalanceDelta(a, *t) for a, t in sorted(self.net.items())]
        return split_hot(self.states, merged)
