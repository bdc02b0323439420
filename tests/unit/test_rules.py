"""The rules of double entry, checked without a database."""

import pytest

from ledger.engine import account_rules, errors, free_text, rules
from ledger.engine import legs as leg_rules
from ledger.engine.model import (
    Account,
    AccountFlags,
    AccountState,
    Leg,
    NewAccount,
    NewTransaction,
    PendingTotals,
    PostPendingRequest,
)
from ledger.engine.verify import (
    AccountSums,
    CurrencyTotals,
    JournalFacts,
    LegCount,
    Totals,
    UnbalancedRecord,
    judge,
)

LIMITS = rules.Limits(max_legs=4, max_amount=1_000, max_metadata_bytes=64)


def tx(*legs, **kw):
    return NewTransaction(entries=[Leg(a, d, n) for a, d, n in legs], **kw)


def state(account_id, debits=0, credits=0, currency="USD", pending_credits=0, **flags):
    account = Account(account_id, currency, 2, "debit", AccountFlags(**flags), {}, None)
    return AccountState(account, debits, credits, 0, pending_credits)


def test_a_transaction_needs_two_legs():
    with pytest.raises(errors.TooFewLegs):
        rules.check_transaction_shape(tx(("a", "debit", 1)), LIMITS)


def test_a_transaction_may_not_exceed_the_leg_limit():
    legs = [("a", "debit", 1)] * 5
    with pytest.raises(errors.TooManyLegs) as caught:
        rules.check_transaction_shape(tx(*legs), LIMITS)
    assert caught.value.details["max_legs"] == 4


@pytest.mark.parametrize("amount", [0, -1, 1_001, 2**70])
def test_amounts_are_positive_and_within_the_limit(amount):
    with pytest.raises(errors.InvalidAmount) as caught:
        rules.check_transaction_shape(tx(("a", "debit", amount), ("b", "credit", 5)), LIMITS)
    assert caught.value.details["pointer"] == "/entries/0/amount"


def test_the_largest_allowed_amount_is_accepted():
    rules.check_transaction_shape(tx(("a", "debit", 1_000), ("b", "credit", 1_000)), LIMITS)


def test_debits_must_equal_credits_per_currency():
    legs = [
        Leg("a", "debit", 5),
        Leg("b", "credit", 5),
        Leg("c", "debit", 3),
        Leg("d", "credit", 2),
    ]
    with pytest.raises(errors.UnbalancedTransaction) as caught:
        leg_rules.check_balanced(legs, ["USD", "USD", "EUR", "EUR"])
    assert caught.value.details == {"currency": "EUR", "debits": 3, "credits": 2}


def test_balanced_in_each_currency_is_accepted_even_if_totals_differ_across_currencies():
    legs = [
        Leg("a", "debit", 5),
        Leg("b", "credit", 5),
        Leg("c", "debit", 7),
        Leg("d", "credit", 7),
    ]
    leg_rules.check_balanced(legs, ["USD", "USD", "EUR", "EUR"])


def test_equal_totals_across_currencies_do_not_hide_an_imbalance():
    legs = [Leg("a", "debit", 5), Leg("b", "credit", 5)]
    with pytest.raises(errors.UnbalancedTransaction):
        leg_rules.check_balanced(legs, ["USD", "EUR"])


def test_every_leg_needs_an_existing_account():
    with pytest.raises(errors.UnknownAccount) as caught:
        leg_rules.check_accounts(
            [Leg("a", "debit", 1), Leg("ghost", "credit", 1)], {"a": state("a")}
        )
    assert caught.value.details["account_id"] == "ghost"


def test_a_stated_leg_currency_must_be_the_accounts():
    with pytest.raises(errors.CurrencyMismatch):
        leg_rules.check_accounts([Leg("a", "debit", 1, currency="EUR")], {"a": state("a")})
    assert leg_rules.check_accounts([Leg("a", "debit", 1, currency="USD")], {"a": state("a")}) == [
        "USD"
    ]


def test_deltas_sum_legs_per_account_in_account_order():
    deltas = leg_rules.balance_deltas(
        [Leg("b", "debit", 5), Leg("a", "credit", 2), Leg("b", "credit", 1)]
    )
    assert [(d.account_id, d.debits, d.credits) for d in deltas] == [("a", 0, 2), ("b", 5, 1)]


def test_debits_must_not_exceed_credits_allows_reaching_zero_but_not_below():
    states = {"w": state("w", debits=0, credits=10, debits_must_not_exceed_credits=True)}
    leg_rules.check_limits(states, leg_rules.balance_deltas([Leg("w", "debit", 10)]))
    with pytest.raises(errors.LimitExceeded) as caught:
        leg_rules.check_limits(states, leg_rules.balance_deltas([Leg("w", "debit", 11)]))
    assert caught.value.details["shortfall"] == 1


def test_credits_must_not_exceed_debits():
    states = {"c": state("c", debits=3, credits=0, credits_must_not_exceed_debits=True)}
    with pytest.raises(errors.LimitExceeded):
        leg_rules.check_limits(states, leg_rules.balance_deltas([Leg("c", "credit", 4)]))


def test_totals_beyond_64_bits_are_refused():
    states = {"a": state("a", debits=leg_rules.INT64_MAX)}
    with pytest.raises(errors.BalanceOverflow):
        leg_rules.check_limits(states, leg_rules.balance_deltas([Leg("a", "debit", 1)]))


def test_reversal_swaps_every_direction_and_keeps_amounts():
    legs = [Leg("a", "debit", 5), Leg("b", "credit", 5)]
    assert rules.reversed_legs(legs) == [Leg("a", "credit", 5), Leg("b", "debit", 5)]


def test_balance_is_signed_on_the_normal_side():
    assert rules.totals("debit", 10, 3).balance == 7
    assert rules.totals("credit", 10, 3).balance == -7


def test_fingerprint_ignores_json_spelling_but_not_content_or_endpoint():
    a = tx(("a", "debit", 5), ("b", "credit", 5), metadata={"x": 1, "y": 2})
    b = tx(("a", "debit", 5), ("b", "credit", 5), metadata={"y": 2, "x": 1})
    c = tx(("a", "debit", 6), ("b", "credit", 6))
    assert rules.fingerprint("post", a) == rules.fingerprint("post", b)
    assert rules.fingerprint("post", a) != rules.fingerprint("post", c)
    assert rules.fingerprint("post", a) != rules.fingerprint("reverse:x", a)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"id": "has space"}, "id"),
        ({"id": "x" * 129}, "id"),
        ({"currency": "usd"}, "currency"),
        ({"currency": "US"}, "currency"),
        ({"scale": 19}, "scale"),
        ({"scale": -1}, "scale"),
        (
            {"flags": AccountFlags(True, True)},
            "flags",
        ),
    ],
)
def test_account_definitions_are_checked(changes, field):
    base = {"id": "ok:id_1.x-y", "currency": "USD", "scale": 2, "normal_side": "debit"}
    with pytest.raises(errors.InvalidAccount) as caught:
        account_rules.check_new_account(NewAccount(**{**base, **changes}), LIMITS)
    assert caught.value.details["field"] == field


def test_metadata_size_and_nul_characters_are_refused():
    with pytest.raises(errors.InvalidValue):
        free_text.check_metadata({"k": "v" * 100}, None, LIMITS)
    with pytest.raises(errors.InvalidValue):
        free_text.check_metadata({"k": "a\x00b"}, None, LIMITS)
    with pytest.raises(errors.InvalidValue):
        free_text.check_metadata({}, "a\x00b", LIMITS)


def sums(cached, journal):
    return AccountSums(Totals(*cached), Totals(*journal))


def usd(debits, credits):
    return {"USD": CurrencyTotals(debits, credits)}


def test_judge_reports_drift_unbalanced_and_short_transactions():
    facts = JournalFacts(
        accounts=2,
        transactions=2,
        entries=3,
        per_account={"a": sums((5, 0), (5, 0)), "b": sums((0, 4), (0, 5))},
        unbalanced=[UnbalancedRecord("t1", "USD", 5, 4)],
        leg_counts=[LegCount(None, 1, 1, "t2")],
        currency_mismatches=0,
        per_currency=usd(5, 5),
    )
    report = judge(facts)
    assert not report.ok
    assert [d.account_id for d in report.drift] == ["b"]
    assert report.short_transactions == ["t2"]


def test_judge_passes_a_clean_journal_and_fails_an_unbalanced_book():
    clean = JournalFacts(1, 1, 2, {"a": sums((5, 5, 1, 0), (5, 5, 1, 0))}, [], [], 0, usd(5, 5))
    assert judge(clean).ok
    lopsided = JournalFacts(1, 1, 2, {"a": sums((5, 5), (5, 5))}, [], [], 0, usd(5, 4))
    assert not judge(lopsided).ok


def test_judge_reports_pending_drift():
    facts = JournalFacts(1, 1, 2, {"a": sums((5, 5, 3, 0), (5, 5, 2, 0))}, [], [], 0, usd(5, 5))
    report = judge(facts)
    assert not report.ok
    assert (report.drift[0].cached_pending_debits, report.drift[0].journal_pending_debits) == (3, 2)


@pytest.mark.parametrize(
    ("resolution", "entries", "wrong"),
    [
        (None, 0, True),
        (None, 1, True),
        (None, 2, False),
        ("posted", 1, True),
        ("posted", 2, False),
        ("voided", 0, False),
        ("voided", 2, True),
        ("expired", 0, False),
        ("expired", 1, True),
    ],
)
def test_a_void_or_expiry_has_no_entries_and_anything_else_two_or_more(resolution, entries, wrong):
    group = LegCount(resolution, entries, 3, "t")
    facts = JournalFacts(3, 3, 0, {}, [], [group], 0, {})
    report = judge(facts)
    assert report.ok is not wrong
    assert report.short_transaction_count == (3 if wrong else 0)


def test_text_that_is_not_valid_unicode_is_refused():
    with pytest.raises(errors.InvalidValue):
        free_text.check_metadata({}, "a\ud951b", LIMITS)
    with pytest.raises(errors.InvalidValue):
        free_text.check_metadata({"k": "a\ud951b"}, None, LIMITS)


# --- pending transactions -----------------------------------------------------------


def test_a_pending_transaction_moves_pending_totals_only():
    deltas = leg_rules.balance_deltas([Leg("a", "debit", 5), Leg("b", "credit", 5)], pending=True)
    assert [(d.debits, d.credits, d.pending_debits, d.pending_credits) for d in deltas] == [
        (0, 0, 5, 0),
        (0, 0, 0, 5),
    ]


def test_posting_for_less_releases_the_whole_hold_and_posts_the_part():
    held = [Leg("a", "debit", 10), Leg("b", "credit", 10)]
    posted = [Leg("a", "debit", 6), Leg("b", "credit", 6)]
    merged = leg_rules.merge_deltas(
        leg_rules.balance_deltas(posted), leg_rules.release_deltas(held)
    )
    assert [(d.debits, d.credits, d.pending_debits, d.pending_credits) for d in merged] == [
        (6, 0, -10, 0),
        (0, 6, 0, -10),
    ]


def test_pending_debits_count_against_a_debit_limit_pending_credits_do_not():
    wallet = state(
        "w", debits=0, credits=100, pending_credits=0, debits_must_not_exceed_credits=True
    )
    wallet = AccountState(wallet.account, 0, 100, 60, 500)
    # 60 held + 41 more would spend 101 of 100; the 500 pending credits do not help.
    with pytest.raises(errors.LimitExceeded) as caught:
        leg_rules.check_limits(
            {"w": wallet}, leg_rules.balance_deltas([Leg("w", "debit", 41)], pending=True)
        )
    assert caught.value.details["shortfall"] == 1
    leg_rules.check_limits(
        {"w": wallet}, leg_rules.balance_deltas([Leg("w", "debit", 40)], pending=True)
    )


def test_available_subtracts_only_pending_amounts_that_reduce_the_balance():
    posted_credit = rules.totals("credit", 10, 100)  # balance 90
    assert rules.available("credit", posted_credit, PendingTotals(debits=30, credits=999)) == 60
    posted_debit = rules.totals("debit", 100, 10)  # balance 90
    assert rules.available("debit", posted_debit, PendingTotals(debits=999, credits=25)) == 65


HELD = [Leg("a", "debit", 10), Leg("b", "credit", 10)]


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (PostPendingRequest(), [10, 10]),
        (PostPendingRequest(amount=4), [4, 4]),
        (PostPendingRequest(amounts=[10, 10]), [10, 10]),
    ],
)
def test_what_a_post_may_post(request_, expected):
    legs = rules.resolution_legs(HELD, ["USD", "USD"], request_)
    assert [leg.amount for leg in legs] == expected


@pytest.mark.parametrize(
    "request_",
    [
        PostPendingRequest(amount=11),
        PostPendingRequest(amount=0),
        PostPendingRequest(amounts=[4, 5]),
        PostPendingRequest(amounts=[4]),
        PostPendingRequest(amount=4, amounts=[4, 4]),
    ],
)
def test_what_a_post_may_not_post(request_):
    with pytest.raises(errors.InvalidResolution):
        rules.resolution_legs(HELD, ["USD", "USD"], request_)


def test_a_single_amount_fits_only_two_legs():
    legs = [*HELD, Leg("c", "debit", 3), Leg("d", "credit", 3)]
    with pytest.raises(errors.InvalidResolution):
        rules.resolution_legs(legs, ["USD"] * 4, PostPendingRequest(amount=3))
    posted = rules.resolution_legs(legs, ["USD"] * 4, PostPendingRequest(amounts=[5, 5, 3, 3]))
    assert [leg.amount for leg in posted] == [5, 5, 3, 3]


@pytest.mark.parametrize("timeout", [0, -1, 10**9])
def test_timeouts_are_bounded(timeout):
    with pytest.raises(errors.InvalidValue):
        rules.check_transaction_shape(
            tx(("a", "debit", 1), ("b", "credit", 1), pending=True, timeout_seconds=timeout),
            LIMITS,
        )


def test_a_timeout_needs_a_pending_transaction():
    with pytest.raises(errors.InvalidValue):
        rules.check_transaction_shape(
            tx(("a", "debit", 1), ("b", "credit", 1), timeout_seconds=5), LIMITS
        )


def test_legs_that_cancel_out_on_every_account_are_refused():
    same = [Leg("a", "debit", 5), Leg("a", "credit", 5)]
    with pytest.raises(errors.MovesNothing):
        rules.check_transaction_shape(NewTransaction(same), LIMITS)
    # Moving between two accounts, or netting to a change on one, is fine.
    rules.check_moves_something([Leg("a", "debit", 5), Leg("b", "credit", 5)])
    rules.check_moves_something(
        [Leg("a", "debit", 5), Leg("a", "credit", 3), Leg("b", "credit", 2)]
    )


def test_a_leg_alone_in_its_currency_is_pointed_at():
    legs = [Leg("usd", "debit", 100), Leg("eur", "credit", 100)]
    with pytest.raises(errors.UnbalancedTransaction) as caught:
        leg_rules.check_balanced(legs, ["USD", "EUR"])
    assert caught.value.details["pointer"] == "/entries/1/account_id"
    assert "'eur'" in caught.value.detail and "EUR" in caught.value.detail
    # Two sides in one currency that differ keep the totals message.
    legs = [Leg("a", "debit", 100), Leg("b", "credit", 90)]
    with pytest.raises(errors.UnbalancedTransaction) as caught:
        leg_rules.check_balanced(legs, ["USD", "USD"])
    assert "debits total 100 but credits total 90" in caught.value.detail
