"""Matching, as a property: postings are drawn, a statement is derived from
them with labelled changes (delayed, fee deducted within and beyond the
tolerance, split, dropped, duplicated, amount changed, reversed, lines the
ledger never booked), and each change must land in its class; every line
and entry is accounted for exactly once; matched groups sum equal; and
shuffled input gives the same result."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.engine.reconcile.matching import reconcile
from ledger.engine.reconcile.model import LedgerItem, Line, NewSource

START = date(2026, 10, 1)
TO = START + timedelta(days=30)  # the window is [START, TO)
TODAY = TO - timedelta(days=1)  # the run's day: ages are counted to it
LAG, WINDOW, TOLERANCE = 2, 3, 100
# Amounts are M + 1000 k for distinct k: no two within the tolerance, and
# no sum of two or more equal to one (every amount is in [M, 2M)).
M = 1_000_000
SOURCE = NewSource(
    id="s",
    account_id="a",
    format="csv",
    currency="EUR",
    settlement_lag_days=LAG,
    date_window_days=WINDOW,
    amount_tolerance=TOLERANCE,
)
CHANGES = (
    "exact",
    "delayed",
    "fee_within_tolerance",
    "fee",
    "split",
    "dropped",
    "duplicated",
    "amount_changed",
    "reversed",
)
TWIN = "one matched, its twin a duplicate"
NEEDS_REFERENCE = {"fee", "split", "amount_changed", "reversed"}


def day(n: int) -> date:
    return START + timedelta(days=n)


def young(n: int) -> bool:
    return (TODAY - day(n)).days < LAG


@st.composite
def scenarios(draw):
    count = draw(st.integers(1, 10))
    extras = draw(st.integers(0, 3))
    ks = draw(
        st.lists(st.integers(0, 999), min_size=count + extras, max_size=count + extras, unique=True)
    )
    lines: list[Line] = []
    items: list[LedgerItem] = []
    expected: dict[str, str] = {}  # subject -> "matched" or a class
    differences: set[str] = set()  # lines whose tolerance match leaves a low exception

    def line(amount, on, ref, ext, **extra) -> str:
        made = Line(
            id=f"l{len(lines)}",
            line_no=len(lines) + 1,
            amount=amount,
            currency="EUR",
            booked_on=day(on),
            reference=ref,
            external_id=ext,
            **extra,
        )
        lines.append(made)
        return f"line:{made.id}"

    def item(i, amount, on, ref, reversal=False) -> str:
        made = LedgerItem(
            entry_id=f"e{len(items)}",
            transaction_id=f"t{i}",
            amount=amount,
            booked_on=day(on),
            at=datetime.combine(day(on), datetime.min.time(), UTC),
            reference=ref,
            reversal=reversal,
        )
        items.append(made)
        return f"entry:{made.entry_id}"

    for i in range(count):
        amount = M + 1000 * ks[i]
        on = draw(st.integers(0, 29), label="day")
        change = draw(st.sampled_from(CHANGES), label="change")
        ref = f"R{i}" if change in NEEDS_REFERENCE or draw(st.booleans(), label="ref") else None
        entry = item(i, amount, on, ref)
        if change == "exact":
            expected[line(amount, on, ref, f"B{i}")] = expected[entry] = "matched"
        elif change == "delayed":
            later = min(29, on + draw(st.integers(1, WINDOW)))
            expected[line(amount, later, ref, f"B{i}")] = expected[entry] = "matched"
        elif change == "fee_within_tolerance":
            fee = draw(st.integers(1, TOLERANCE))
            subject = line(amount - fee, on, ref, f"B{i}")
            expected[subject] = expected[entry] = "matched"
            differences.add(subject.removeprefix("line:"))
        elif change in ("fee", "amount_changed"):
            delta = draw(st.integers(TOLERANCE + 1, 1000 - TOLERANCE - 1))
            changed = amount - delta if change == "fee" else amount + delta
            expected[line(changed, on, ref, f"B{i}")] = "amount_mismatch"
            expected[entry] = "amount_mismatch"
        elif change == "split":
            cut = draw(st.integers(1, amount - 1))
            expected[line(cut, on, ref, f"B{i}.1")] = "matched"
            expected[line(amount - cut, on, ref, f"B{i}.2")] = "matched"
            expected[entry] = "matched"
        elif change == "dropped":
            expected[entry] = "timing" if young(on) else "missing_in_statement"
        elif change == "duplicated":
            # Two lines alike: either one is the duplicate, the other matched.
            expected[line(amount, on, ref, f"B{i}")] = TWIN
            expected[line(amount, on, ref, f"B{i}")] = TWIN
            expected[entry] = "matched"
        elif change == "reversed":
            back = min(29, on + draw(st.integers(0, 2)))
            expected[item(i, -amount, back, ref, reversal=True)] = "matched"
            expected[line(amount, on, ref, f"B{i}")] = "matched"
            expected[line(-amount, back, ref, f"B{i}r", reversal=True)] = "matched"
            expected[entry] = "matched"
    if draw(st.booleans(), label="a payout netting postings and a fee"):
        # Postings with no reference paid out as one line, net of a fee
        # booked on its own: only a group sum finds them. Their amounts end
        # in 7 and the fee's in 3, so no other subset adds up the same.
        on = draw(st.integers(0, 25), label="payout day")
        parts = draw(st.lists(st.integers(0, 999), min_size=2, max_size=3, unique=True))
        netted = [item(100 + n, M + 1000 * k + 7, on + n, None) for n, k in enumerate(parts)]
        fee = 1000 * draw(st.integers(1, 5)) + 3
        netted.append(item(199, -fee, on + 2, None))
        total = sum(M + 1000 * k + 7 for k in parts) - fee
        for subject in [*netted, line(total, on + 2, None, "PAYOUT")]:
            expected[subject] = "matched"
    if draw(st.booleans(), label="a posting the bank split, with no reference"):
        on = draw(st.integers(0, 29), label="split day")
        amount = M + 1000 * draw(st.integers(0, 999)) + 500_000_000
        cut = 1000 * draw(st.integers(1, 999)) + 500
        expected[item(200, amount, on, None)] = "matched"
        expected[line(cut, on, None, "S.1")] = "matched"
        expected[line(amount - cut, on, None, "S.2")] = "matched"
    for j in range(extras):
        on = draw(st.integers(0, 29), label="extra day")
        subject = line(M + 1000 * ks[count + j], on, f"X{j}", f"X{j}")
        expected[subject] = "timing" if young(on) else "missing_in_ledger"
    return lines, items, expected, differences


def dispositions(outcome) -> dict[str, list[str]]:
    """What became of each line and entry: the matches and exceptions that
    name it (a tolerance match's difference is not a disposition)."""
    seen: dict[str, list[str]] = {}
    for m in outcome.matches:
        for x in m.statement_lines:
            seen.setdefault(f"line:{x}", []).append("matched")
        for x in m.entry_ids:
            seen.setdefault(f"entry:{x}", []).append("matched")
    for f in outcome.findings:
        if f.subject.startswith("difference:"):
            continue
        if f.statement_line is not None:
            seen.setdefault(f"line:{f.statement_line}", []).append(f.cls)
        if f.entry_id is not None:
            seen.setdefault(f"entry:{f.entry_id}", []).append(f.cls)
    return seen


@settings(max_examples=300, deadline=None)
@given(scenarios(), st.randoms(use_true_random=False))
def test_each_change_lands_in_its_class_and_everything_once(scenario, shuffler: random.Random):
    lines, items, expected, differences = scenario
    outcome = reconcile(lines, items, SOURCE, TODAY)
    seen = dispositions(outcome)
    # Every line and every entry: exactly one match or one exception.
    assert set(seen) == set(expected)
    assert {k: v for k, v in seen.items() if len(v) != 1} == {}
    got = {k: v[0] for k, v in seen.items()}
    twins = sorted(got[k] for k, v in expected.items() if v == TWIN)
    assert Counter(twins) == Counter({"duplicate": len(twins) // 2, "matched": len(twins) // 2})
    assert {k: v for k, v in got.items() if expected[k] != TWIN} == {
        k: v for k, v in expected.items() if v != TWIN
    }
    # A match within the tolerance leaves a low exception for its difference.
    assert {
        f.subject.removeprefix("difference:")
        for f in outcome.findings
        if f.subject.startswith("difference:")
    } == differences
    for m in outcome.matches:
        if m.kind == "tolerance":
            assert 0 < abs(m.difference) <= TOLERANCE
        else:
            assert m.difference == 0, m
    for f in outcome.findings:
        assert f.severity == ("info" if f.cls == "timing" else f.severity)
    # The same lines and entries in another order: the same result.
    shuffled_lines, shuffled_items = list(lines), list(items)
    shuffler.shuffle(shuffled_lines)
    shuffler.shuffle(shuffled_items)
    assert reconcile(shuffled_lines, shuffled_items, SOURCE, TODAY) == outcome


def test_several_candidates_of_the_same_amount_and_day_are_ambiguous_not_guessed():
    lines = [
        Line(id="l1", line_no=1, amount=500, currency="EUR", booked_on=day(5)),
    ]
    items = [
        LedgerItem(
            entry_id=f"e{i}",
            transaction_id=f"t{i}",
            amount=500,
            booked_on=day(5),
            at=datetime.combine(day(5), datetime.min.time(), UTC),
            reference=None,
        )
        for i in range(2)
    ]
    outcome = reconcile(lines, items, SOURCE, TODAY)
    assert outcome.matches == []
    assert Counter(f.cls for f in outcome.findings) == {"ambiguous": 3}


def test_informational_lines_are_skipped_and_pending_ones_tentative():
    lines = [
        Line(
            id="l1",
            line_no=1,
            amount=700,
            currency="EUR",
            booked_on=day(5),
            reference="P",
            status="pending",
        ),
        Line(id="l2", line_no=2, amount=5, currency="EUR", booked_on=day(5), status="info"),
    ]
    items = [
        LedgerItem(
            entry_id="e1",
            transaction_id="t1",
            amount=700,
            booked_on=day(5),
            at=datetime.combine(day(5), datetime.min.time(), UTC),
            reference="p ",
        ),
    ]
    outcome = reconcile(lines, items, SOURCE, TODAY)
    assert outcome.skipped == 1 and outcome.findings == []
    (match,) = outcome.matches
    assert match.tentative and match.kind == "reference"


def test_severity_rises_with_amount_and_age():
    old, big = day(0), 10**9
    lines = [
        Line(id="l1", line_no=1, amount=100, currency="EUR", booked_on=day(25)),
        Line(id="l2", line_no=2, amount=200, currency="EUR", booked_on=old),
        Line(id="l3", line_no=3, amount=big, currency="EUR", booked_on=day(25)),
    ]
    items = [
        LedgerItem(
            entry_id="e1",
            transaction_id="t1",
            amount=300,
            booked_on=day(25),
            at=datetime.combine(day(25), datetime.min.time(), UTC),
            reference=None,
        ),
        LedgerItem(
            entry_id="e2",
            transaction_id="t2",
            amount=400,
            booked_on=old,
            at=datetime.combine(old, datetime.min.time(), UTC),
            reference=None,
        ),
    ]
    outcome = reconcile(lines, items, SOURCE, TODAY)
    severity = {f.subject: (f.cls, f.severity) for f in outcome.findings}
    assert severity == {
        "line:l1": ("missing_in_ledger", "high"),
        "line:l2": ("missing_in_ledger", "high"),
        "line:l3": ("missing_in_ledger", "high"),
        "entry:e1": ("missing_in_statement", "medium"),
        "entry:e2": ("missing_in_statement", "high"),  # past the lag by a week
    }


def test_a_batch_booking_of_many_lines_matches_the_posting_named_by_its_group():
    # Twelve lines are more than a subset sum looks at: only the group finds them.
    lines = [
        Line(
            id=f"l{n}", line_no=n, amount=100 + n, currency="EUR", booked_on=day(3), group="BATCH-9"
        )
        for n in range(12)
    ]
    total = sum(x.amount for x in lines)
    items = [
        LedgerItem(
            entry_id="e1",
            transaction_id="t1",
            amount=total,
            booked_on=day(3),
            at=datetime.combine(day(3), datetime.min.time(), UTC),
            reference="batch-9",
        ),
    ]
    outcome = reconcile(lines, items, SOURCE, TODAY)
    (match,) = outcome.matches
    assert match.kind == "group" and len(match.statement_lines) == 12 and outcome.findings == []
