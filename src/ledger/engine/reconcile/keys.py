"""What lines and entries are compared and ordered by: a reference as
matching sees it, the content orders every pass walks in (never the
order things arrived in), what makes a line a repeat of another, and an
index of things by key and date."""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from datetime import date

from ledger.engine.reconcile.model import LedgerItem, Line


def norm(reference: str | None) -> str | None:
    if reference is None:
        return None
    value = reference.strip().casefold()
    return value or None


def line_order(line: Line) -> tuple:
    return (
        line.booked_on,
        line.amount,
        norm(line.reference) or "",
        line.external_id or "",
        line.description or "",
        line.group or "",
        line.status,
        line.reversal,
        line.id,
    )


def item_order(item: LedgerItem) -> tuple:
    return (item.booked_on, item.amount, norm(item.reference) or "", item.at, item.entry_id)


def signature(line: Line) -> tuple:
    """What makes a second line a duplicate of the first."""
    if line.external_id is not None:
        return ("id", line.external_id, line.amount)
    if norm(line.reference) is not None:
        return ("ref", norm(line.reference), line.amount, line.reversal)
    return ("text", line.amount, line.booked_on, line.description)


class Buckets:
    """Things by a key, each bucket in date order, for 'which of these are
    within N days of that date'."""

    def __init__(self, things: Iterable, key) -> None:
        self.buckets: dict = defaultdict(list)
        for thing in things:
            self.buckets[key(thing)].append(thing)
        self.days = {}
        for k, bucket in self.buckets.items():
            bucket.sort(key=lambda t: t.booked_on)
            self.days[k] = [t.booked_on.toordinal() for t in bucket]

    def near(self, key, on: date, window: int) -> list:
        bucket = self.buckets.get(key)
        if not bucket:
            return []
        days = self.days[key]
        start = bisect.bisect_left(days, on.toordinal() - window)
        stop = bisect.bisect_right(days, on.toordinal() + window)
        return bucket[start:stop]
