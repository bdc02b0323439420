"""Hypothesis strategies for the ledger, in one place. Grow them with every
feature (pending transactions, hot accounts, ...)."""

from __future__ import annotations

from hypothesis import strategies as st

from ledger.engine.model import Leg, NewTransaction

CURRENCIES = ["USD", "EUR"]
LIMIT_FLAGS = [None, "debits_must_not_exceed_credits", "credits_must_not_exceed_debits"]

currencies = st.sampled_from(CURRENCIES)
limit_flags = st.sampled_from(LIMIT_FLAGS)
normal_sides = st.sampled_from(["debit", "credit"])
amounts = st.integers(min_value=1, max_value=500)

# What a client sends, and what the ledger must answer:
#   balanced   -> posted, or refused for a limit
#   unbalanced -> refused as unbalanced, nothing written
#   unknown    -> refused for an unknown account, nothing written
#   replay     -> an earlier acknowledged request again: the same answer, replayed
#   conflict   -> an earlier key with another body: refused as a reused key
posting_kinds = st.sampled_from(
    ["balanced", "balanced", "balanced", "balanced", "unbalanced", "unknown", "replay", "conflict"]
)


@st.composite
def balanced_transactions(draw, accounts_by_currency: dict[str, list[str]]) -> NewTransaction:
    """One or two debit/credit pairs, each pair within one currency, so the
    transaction balances per currency (and may span two currencies)."""
    usable = sorted(c for c, ids in accounts_by_currency.items() if len(ids) >= 2)
    legs: list[Leg] = []
    for _ in range(draw(st.integers(1, 2))):
        currency = draw(st.sampled_from(usable))
        debit, credit = draw(
            st.lists(
                st.sampled_from(accounts_by_currency[currency]), min_size=2, max_size=2, unique=True
            )
        )
        amount = draw(amounts)
        undone = legs and (legs[0].account_id, legs[1].account_id) == (credit, debit)
        if undone and amount == legs[0].amount:
            # The first pair undone: a transaction that moves nothing, which
            # the ledger refuses (MovesNothing). Move one unit more.
            amount += 1
        legs += [Leg(debit, "debit", amount), Leg(credit, "credit", amount)]
    text = st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20
    )
    return NewTransaction(entries=legs, description=draw(st.none() | text))


def unbalance(tx: NewTransaction) -> NewTransaction:
    first = tx.entries[0]
    return NewTransaction(
        entries=[Leg(first.account_id, first.direction, first.amount + 1), *tx.entries[1:]]
    )


def with_unknown_account(tx: NewTransaction, ghost: str) -> NewTransaction:
    first = tx.entries[0]
    return NewTransaction(entries=[Leg(ghost, first.direction, first.amount), *tx.entries[1:]])


# Pending transactions: most without a timeout, some that expire within a
# step or two (1 s), some that outlive the test.
hold_timeouts = st.sampled_from([None, None, 1, 30])
resolutions = st.sampled_from(["post", "post_part", "void"])
