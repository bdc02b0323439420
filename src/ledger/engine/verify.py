"""`verify`'s verdict: the rules the whole journal must satisfy, judged from
the sums storage reads (`JournalFacts`), and the records of both. No I/O
here."""

from __future__ import annotations

from datetime import datetime

import msgspec

from ledger.engine.journal_check import JournalReport

# --- what storage reads for a verdict, and the verdict ----------------------------


class Totals(msgspec.Struct, frozen=True):
    """An account's four running totals."""

    posted_debits: int
    posted_credits: int
    pending_debits: int = 0
    pending_credits: int = 0


class AccountSums(msgspec.Struct, frozen=True):
    """One account's totals as a balance read returns them (the balance row,
    or snapshot plus deltas for a hot account; all -1 when that is missing),
    and as summed from the journal."""

    cached: Totals
    journal: Totals


class LegCount(msgspec.Struct, frozen=True):
    """How many transactions of one resolution (None for a plain posting)
    have `entries` entries (0, 1, or 2 standing for two or more), with one of
    their ids as an example."""

    resolution: str | None
    entries: int
    transactions: int
    example: str


class CurrencyTotals(msgspec.Struct, frozen=True):
    debits: int
    credits: int


class AccountDrift(msgspec.Struct, frozen=True):
    account_id: str
    cached_debits: int
    cached_credits: int
    journal_debits: int
    journal_credits: int
    cached_pending_debits: int = 0
    cached_pending_credits: int = 0
    journal_pending_debits: int = 0
    journal_pending_credits: int = 0


class UnbalancedRecord(msgspec.Struct, frozen=True):
    transaction_id: str
    currency: str
    debits: int
    credits: int


class SnapshotCheck(msgspec.Struct, frozen=True):
    account_id: str
    seq: int
    watermark: datetime
    snapshot_debits: int
    snapshot_credits: int
    journal_debits: int
    journal_credits: int


class JournalFacts(msgspec.Struct, frozen=True):
    """The sums storage reads in one consistent snapshot for `verify`; the
    engine judges them (`ledger.engine.verify`)."""

    accounts: int
    transactions: int
    entries: int
    per_account: dict[str, AccountSums]
    # Transactions whose debits and credits differ in some currency.
    unbalanced: list[UnbalancedRecord]
    leg_counts: list[LegCount]
    # Entries whose currency differs from their account's.
    currency_mismatches: int
    per_currency: dict[str, CurrencyTotals]
    # Hot accounts: the newest snapshot `as_of` would trust, against the
    # journal up to its watermark.
    snapshots: list[SnapshotCheck] = msgspec.field(default_factory=list)
    # Currencies whose accounts do not all have the currency's one scale.
    mixed_scales: list[str] = msgspec.field(default_factory=list)


class VerifyReport(msgspec.Struct, frozen=True):
    ok: bool
    accounts: int
    transactions: int
    entries: int
    drift: list[AccountDrift]
    unbalanced: list[UnbalancedRecord]
    # Transactions with the wrong number of entries for their kind: one
    # example id per kind and count, and how many there are in all.
    short_transactions: list[str]
    currency_mismatches: int
    per_currency: dict[str, CurrencyTotals]
    # Hot-account snapshots that differ from the journal up to their watermark.
    snapshot_drift: list[SnapshotCheck] = msgspec.field(default_factory=list)
    short_transaction_count: int = 0
    mixed_scales: list[str] = msgspec.field(default_factory=list)
    # The sealed journal's verdict (`ledger.engine.journal_check`).
    journal: JournalReport | None = None


# A void or an expiry moves no posted amount and writes no entry; every
# other transaction has two entries or more.
_ENTRYLESS = frozenset({"voided", "expired"})


def has_wrong_leg_count(group: LegCount) -> bool:
    if group.resolution in _ENTRYLESS:
        return group.entries > 0
    return group.entries < 2


def judge(facts: JournalFacts) -> VerifyReport:
    """Turn the journal's sums into a verdict: every cached balance equals its
    journal sum, every hot-account snapshot equals the journal up to its
    watermark, every transaction balances per currency and has the entries
    its kind needs, every entry has its account's currency, and the whole
    book balances per currency."""
    drift = [
        AccountDrift(
            account_id,
            s.cached.posted_debits,
            s.cached.posted_credits,
            s.journal.posted_debits,
            s.journal.posted_credits,
            s.cached.pending_debits,
            s.cached.pending_credits,
            s.journal.pending_debits,
            s.journal.pending_credits,
        )
        for account_id, s in sorted(facts.per_account.items())
        if s.cached != s.journal
    ]
    books_balance = all(t.debits == t.credits for t in facts.per_currency.values())
    snapshot_drift = [
        s
        for s in facts.snapshots
        if (s.snapshot_debits, s.snapshot_credits) != (s.journal_debits, s.journal_credits)
    ]
    short = [g for g in facts.leg_counts if has_wrong_leg_count(g)]
    ok = (
        not drift
        and not snapshot_drift
        and not facts.unbalanced
        and not short
        and facts.currency_mismatches == 0
        and not facts.mixed_scales
        and books_balance
    )
    return VerifyReport(
        ok=ok,
        accounts=facts.accounts,
        transactions=facts.transactions,
        entries=facts.entries,
        drift=drift,
        unbalanced=facts.unbalanced,
        short_transactions=[g.example for g in short],
        short_transaction_count=sum(g.transactions for g in short),
        currency_mismatches=facts.currency_mismatches,
        per_currency=facts.per_currency,
        snapshot_drift=snapshot_drift,
        mixed_scales=facts.mixed_scales,
    )


class SampleCheck(msgspec.Struct, frozen=True):
    """One round of the continuous verifier: the accounts it checked (in id
    order), which of them drift, and where the next round starts (None:
    back at the first account)."""

    checked: list[str]
    drifted: list[str]
    next_after: str | None


def check_sample(sums: dict[str, AccountSums], limit: int) -> SampleCheck:
    """The accounts whose cached totals are not their journal sums."""
    checked = sorted(sums)
    drifted = [a for a in checked if sums[a].cached != sums[a].journal]
    more = len(checked) >= limit
    return SampleCheck(checked, drifted, checked[-1] if more else None)
