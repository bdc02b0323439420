"""`verify`'s verdict: the rules the whole journal must satisfy, judged from
the sums storage reads (`JournalFacts`). No I/O here."""

from __future__ import annotations

from ledger.engine.model import AccountDrift, JournalFacts, LegCount, VerifyReport

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
