"""Matching a statement's lines against the journal's entries: pure, and
deterministic (every pass walks its items in a fixed order of their
content, never of their arrival), so the same lines and entries give the
same matches and exceptions whatever order they came in.

The passes, in order (each takes only what the ones before left):
0. a line repeating an earlier line's bank id and amount is a `duplicate`;
1. exact reference: lines and entries sharing a reference (and whether
   they are reversals) whose sums agree; left-over pairs of the same
   amount; a lone pair that differs is a tolerance match or an
   `amount_mismatch`; a second line like a matched one is a `duplicate`;
2. amount, direction and date window, where the candidate is unique on
   both sides (several: `ambiguous`, unless a later pass settles it);
3. group sums: the lines of one payout or batch booking against one
   entry, then a bounded subset sum (a line that nets several entries,
   fees included, or an entry that several lines split);
4. tolerance: amounts within the source's tolerance, unique on both sides
   (matched, the difference a `low` exception);
what is left is a `timing` difference (younger than the settlement lag,
or a bank line still pending), else `missing_in_ledger` or
`missing_in_statement`. Every line and entry ends in exactly one match or
one exception (a tolerance match's difference is an exception besides).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable
from datetime import date

import msgspec

from ledger.engine.reconcile.keys import Buckets, item_order, line_order, norm, signature
from ledger.engine.reconcile.model import (
    SEVERITIES,
    ExceptionClass,
    Finding,
    LedgerItem,
    Line,
    Match,
    NewSource,
    Severity,
)

# Candidates a subset sum looks at, nearest in date first: 2^10 subsets.
SUBSET_CANDIDATES = 10
# Free lines times free entries beyond which the all-pairs passes (subset
# sums, tolerance) are skipped: they would take minutes, not seconds.
PAIRS_BUDGET = 4_000_000
FLOOR: dict[str, Severity] = {
    "timing": "info",
    "ambiguous": "low",
    "amount_mismatch": "medium",
    "duplicate": "medium",
    "missing_in_statement": "medium",
    "missing_in_ledger": "high",
}
# Days past the settlement lag after which an exception rises a severity.
OVERDUE_DAYS = 7


class Outcome(msgspec.Struct, frozen=True):
    matches: list[Match]
    findings: list[Finding]
    skipped: int


def reconcile(
    lines: Iterable[Line], items: Iterable[LedgerItem], source: NewSource, today: date
) -> Outcome:
    """Match `lines` against `items`; ages (timing, severity) are counted
    in days to `today`."""
    lines = list(lines)
    kept = sorted((line for line in lines if line.status != "info"), key=line_order)
    work = _Matching(kept, sorted(items, key=item_order), source, today)
    work.repeated_lines()
    work.by_reference()
    work.by_amount_and_date()
    work.by_group()
    work.by_subset_sum()
    work.by_tolerance()
    work.what_is_left()
    matches = sorted(work.matches, key=lambda m: (m.statement_lines, m.entry_ids))
    findings = sorted(work.findings, key=lambda f: f.subject)
    return Outcome(matches, findings, len(lines) - len(kept))


class _Matching:
    def __init__(self, lines: list[Line], items: list[LedgerItem], source: NewSource, today: date):
        self.source = source
        self.today = today
        self.window = source.date_window_days
        self.free_lines: dict[str, Line] = {line.id: line for line in lines}
        self.free_items: dict[str, LedgerItem] = {item.entry_id: item for item in items}
        self.matches: list[Match] = []
        self.findings: list[Finding] = []
        self.ambiguous: set[str] = set()
        self.matched_signatures: set[tuple] = set()

    # --- bookkeeping ------------------------------------------------------------------

    def take(self, kind: str, lines: list[Line], items: list[LedgerItem]) -> Match:
        for line in lines:
            del self.free_lines[line.id]
            self.matched_signatures.add(signature(line))
        for item in items:
            del self.free_items[item.entry_id]
        amount = sum(line.amount for line in lines)
        match = Match(
            kind=kind,  # type: ignore[arg-type]
            statement_lines=[line.id for line in lines],
            entry_ids=[item.entry_id for item in items],
            transaction_ids=sorted({item.transaction_id for item in items}),
            amount=amount,
            difference=amount - sum(item.amount for item in items),
            tentative=any(line.status == "pending" for line in lines),
        )
        self.matches.append(match)
        return match

    def find(
        self, cls: ExceptionClass, amount: int, age: int, *, line=None, item=None, subject=None
    ):
        self.findings.append(
            Finding(
                cls=cls,
                severity=self.severity(cls, amount, age),
                amount=amount,
                subject=subject
                or (f"line:{line.id}" if line is not None else f"entry:{item.entry_id}"),
                statement_line=None if line is None else line.id,
                entry_id=None if item is None else item.entry_id,
                transaction_id=None if item is None else item.transaction_id,
            )
        )

    def severity(self, cls: ExceptionClass, amount: int, age: int) -> Severity:
        if cls == "timing":
            return "info"
        level = SEVERITIES.index(FLOOR[cls])
        if abs(amount) >= self.source.escalate_amount:
            level += 1
        if age >= self.source.settlement_lag_days + OVERDUE_DAYS:
            level += 1
        return SEVERITIES[min(level, len(SEVERITIES) - 1)]

    def age(self, on: date) -> int:
        return (self.today - on).days

    def near(self, a: date, b: date) -> bool:
        return abs((a - b).days) <= self.window

    def mismatch(self, line: Line, item: LedgerItem) -> None:
        """A line and an entry that belong together but differ: a tolerance
        match (with a `low` exception for the difference), or one
        `amount_mismatch` exception for the pair."""
        difference = line.amount - item.amount
        if abs(difference) <= self.source.amount_tolerance:
            self.take("tolerance", [line], [item])
            self.findings.append(
                Finding(
                    cls="amount_mismatch",
                    severity="low",
                    amount=difference,
                    subject=f"difference:{line.id}",
                    statement_line=line.id,
                    entry_id=item.entry_id,
                    transaction_id=item.transaction_id,
                    detail="matched within the source's amount tolerance",
                )
            )
            return
        del self.free_lines[line.id]
        del self.free_items[item.entry_id]
        self.find("amount_mismatch", difference, self.age(line.booked_on), line=line, item=item)

    # --- 0: a bank transaction twice ------------------------------------------------

    def repeated_lines(self) -> None:
        """A line whose bank id and amount an earlier line has: a
        `duplicate`, whatever else matches (the first one goes on)."""
        first: set[tuple] = set()
        for line in list(self.free_lines.values()):
            if line.external_id is None:
                continue
            key = (line.external_id, line.amount, line.reversal)
            if key in first:
                del self.free_lines[line.id]
                self.find("duplicate", line.amount, self.age(line.booked_on), line=line)
            first.add(key)

    # --- 1: exact reference -----------------------------------------------------------

    def by_reference(self) -> None:
        lines: dict[tuple, list[Line]] = defaultdict(list)
        items: dict[tuple, list[LedgerItem]] = defaultdict(list)
        for line in self.free_lines.values():
            if (ref := norm(line.reference)) is not None:
                lines[(ref, line.reversal)].append(line)
        for item in self.free_items.values():
            if (ref := norm(item.reference)) is not None:
                items[(ref, item.reversal)].append(item)
        for key in sorted(lines.keys() & items.keys()):
            self._one_reference(lines[key], items[key])

    def _one_reference(self, lines: list[Line], items: list[LedgerItem]) -> None:
        if sum(x.amount for x in lines) == sum(x.amount for x in items):
            self.take("reference" if len(lines) == len(items) == 1 else "group", lines, items)
            return
        left_items = list(items)
        left_lines = []
        paired: set[int] = set()
        for line in lines:
            twin = next((i for i in left_items if i.amount == line.amount), None)
            if twin is None:
                left_lines.append(line)
            else:
                left_items.remove(twin)
                paired.add(line.amount)
                self.take("reference", [line], [twin])
        if left_lines and left_items:
            if sum(x.amount for x in left_lines) == sum(x.amount for x in left_items):
                self.take("group", left_lines, left_items)
                return
            if len(left_lines) == 1 and len(left_items) == 1:
                self.mismatch(left_lines[0], left_items[0])
                return
        for line in left_lines:
            # A second line of a reference and amount already matched.
            if line.amount in paired or signature(line) in self.matched_signatures:
                del self.free_lines[line.id]
                self.find("duplicate", line.amount, self.age(line.booked_on), line=line)

    # --- 2: amount, direction and date, unique on both sides --------------------------

    def by_amount_and_date(self) -> None:
        items = Buckets(self.free_items.values(), lambda i: (i.amount, i.reversal))
        lines = Buckets(self.free_lines.values(), lambda x: (x.amount, x.reversal))
        pairs = []
        for line in list(self.free_lines.values()):
            found = items.near((line.amount, line.reversal), line.booked_on, self.window)
            if len(found) > 1:
                self.ambiguous.add(f"line:{line.id}")
                self.ambiguous.update(f"entry:{i.entry_id}" for i in found)
                continue
            if not found:
                continue
            item = found[0]
            back = lines.near((item.amount, item.reversal), item.booked_on, self.window)
            if len(back) == 1:
                pairs.append((line, item))
            else:
                self.ambiguous.update((f"line:{line.id}", f"entry:{item.entry_id}"))
        for item in self.free_items.values():
            found = lines.near((item.amount, item.reversal), item.booked_on, self.window)
            if len(found) > 1:
                self.ambiguous.add(f"entry:{item.entry_id}")
                self.ambiguous.update(f"line:{x.id}" for x in found)
        for line, item in pairs:
            self.take("amount_date", [line], [item])

    # --- 3: group sums ----------------------------------------------------------------

    def by_group(self) -> None:
        groups: dict[str, list[Line]] = defaultdict(list)
        for line in self.free_lines.values():
            if line.group is not None:
                groups[line.group].append(line)
        if not groups:
            return
        by_reference: dict[str | None, list[LedgerItem]] = defaultdict(list)
        by_amount: dict[int, list[LedgerItem]] = defaultdict(list)
        for item in self.free_items.values():
            by_reference[norm(item.reference)].append(item)
            by_amount[item.amount].append(item)
        for group in sorted(groups):
            members = groups[group]
            total = sum(x.amount for x in members)
            last = max(x.booked_on for x in members)
            named = [i for i in by_reference.get(norm(group), ()) if i.entry_id in self.free_items]
            if named and sum(i.amount for i in named) == total:
                self.take("group", members, named)
                continue
            found = [
                i
                for i in by_amount.get(total, ())
                if i.entry_id in self.free_items and not i.reversal and self.near(i.booked_on, last)
            ]
            if len(found) == 1:
                self.take("group", members, found)

    def too_many_left(self) -> bool:
        """The passes that compare every free line with every free entry
        are skipped past this (what is left is classified as it stands)."""
        return len(self.free_lines) * len(self.free_items) > PAIRS_BUDGET

    def by_subset_sum(self) -> None:
        if self.too_many_left():
            return
        for line in list(self.free_lines.values()):
            if line.id not in self.free_lines:
                continue
            pool = [i for i in self.free_items.values() if i.reversal == line.reversal]
            subset = self._unique_subset(line.amount, line.booked_on, pool, lambda i: i.booked_on)
            if subset is not None:
                self.take("group", [line], subset)
        for item in list(self.free_items.values()):
            if item.entry_id not in self.free_items:
                continue
            pool = [x for x in self.free_lines.values() if x.reversal == item.reversal]
            subset = self._unique_subset(item.amount, item.booked_on, pool, lambda x: x.booked_on)
            if subset is not None:
                self.take("group", subset, [item])

    def _unique_subset(self, target: int, on: date, pool: list, day_of) -> list | None:
        """The one subset (two or more) of the candidates nearest in date
        that sums to `target`; None when there is none or more than one."""
        near = [c for c in pool if self.near(day_of(c), on)]
        near.sort(key=lambda c: abs((day_of(c) - on).days))  # stable: content order kept
        near = near[:SUBSET_CANDIDATES]
        found = None
        for size in range(2, len(near) + 1):
            for combo in itertools.combinations(near, size):
                if sum(c.amount for c in combo) == target:
                    if found is not None:
                        return None
                    found = list(combo)
        return found

    # --- 4: tolerance -----------------------------------------------------------------

    def by_tolerance(self) -> None:
        tolerance = self.source.amount_tolerance
        if tolerance == 0 or self.too_many_left():
            return

        def close(amount: int, reversal: bool, on: date, pool) -> list:
            return [
                c
                for c in pool
                if c.reversal == reversal
                and abs(c.amount - amount) <= tolerance
                and (c.amount > 0) == (amount > 0)
                and self.near(c.booked_on, on)
            ]

        for line in list(self.free_lines.values()):
            found = close(line.amount, line.reversal, line.booked_on, self.free_items.values())
            if len(found) != 1:
                continue
            item = found[0]
            back = close(item.amount, item.reversal, item.booked_on, self.free_lines.values())
            if len(back) == 1:
                self.ambiguous.discard(f"line:{line.id}")
                self.mismatch(line, item)

    # --- what is left -----------------------------------------------------------------

    def what_is_left(self) -> None:
        lag = self.source.settlement_lag_days
        for line in list(self.free_lines.values()):
            age = self.age(line.booked_on)
            if signature(line) in self.matched_signatures:
                self.find("duplicate", line.amount, age, line=line)
            elif f"line:{line.id}" in self.ambiguous:
                self.find("ambiguous", line.amount, age, line=line)
            elif line.status == "pending" or age < lag:
                self.find("timing", line.amount, age, line=line)
            else:
                self.find("missing_in_ledger", line.amount, age, line=line)
            self.matched_signatures.add(signature(line))
        for item in self.free_items.values():
            age = self.age(item.booked_on)
            if f"entry:{item.entry_id}" in self.ambiguous:
                self.find("ambiguous", -item.amount, age, item=item)
            elif age < lag:
                self.find("timing", -item.amount, age, item=item)
            else:
                self.find("missing_in_statement", -item.amount, age, item=item)
