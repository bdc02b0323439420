"""What a run decides from what it read: the journal's entries as the
statement would show them, the matching, and what becomes of the
source's exceptions. An exception is found again by its subject (the line
or entry it is about): the same class again keeps it open (its severity
and amount brought up to date); a subject now matched, settled by a
person, or found to be something else closes it (`matched_by_run`,
`superseded`); a dry run changes no exception."""

from __future__ import annotations

from collections import Counter
from datetime import date

from ledger.engine.model import Account
from ledger.engine.reconcile import feed, matching
from ledger.engine.reconcile.model import (
    IDEMPOTENCY_KEY,
    WRITE_OFF_KEY,
    Counts,
    Decision,
    ExceptionUpdate,
    JournalRow,
    LedgerItem,
    Loaded,
    Run,
    Source,
    Window,
    zone,
)


def ledger_item(row: JournalRow, source: Source, account: Account) -> LedgerItem:
    """The entry as the statement shows it: + when it raised the balance;
    its day in the source's zone; its reference from the field the source
    names (a reversal's or a resolution's from the original when it has
    none of its own; by idempotency key, always the original's)."""
    sign = 1 if row.direction == account.normal_side else -1
    if source.ledger_reference == IDEMPOTENCY_KEY:
        reference = row.original_key or row.idempotency_key
    else:
        value = row.metadata.get(source.ledger_reference)
        if value is None and row.original_metadata is not None:
            value = row.original_metadata.get(source.ledger_reference)
        reference = None if value is None or isinstance(value, dict | list) else str(value)
    return LedgerItem(
        entry_id=row.entry_id,
        transaction_id=row.transaction_id,
        amount=sign * row.amount,
        booked_on=row.created_at.astimezone(zone(source.timezone)).date(),
        at=row.created_at,
        reference=reference,
        reversal=row.reversal,
    )


def decide(
    run_id: str,
    source: Source,
    account: Account,
    window: Window,
    today: date,
    loaded: Loaded,
    dry_run: bool,
) -> Decision:
    rows = [row for row in loaded.journal if WRITE_OFF_KEY not in row.metadata]
    items = [ledger_item(row, source, account) for row in rows]
    lines = [x for x in loaded.lines if f"line:{x.id}" not in loaded.settled]
    items_left = [i for i in items if f"entry:{i.entry_id}" not in loaded.settled]
    settled = len(loaded.lines) - len(lines) + len(items) - len(items_left)
    outcome = matching.reconcile(lines, items_left, source, today)
    matches = outcome.matches
    classes = Counter(f.cls for f in outcome.findings)
    run = Run(
        id=run_id,
        source_id=source.id,
        from_=window.from_,
        to=window.to,
        as_of=today,
        dry_run=dry_run,
        status="completed",
        counts=Counts(
            matched=len(matches),
            exceptions={c: classes[c] for c in sorted(classes)},
            lines=len(lines) - outcome.skipped,
            entries=len(items_left),
            skipped=outcome.skipped,
            settled=settled,
        ),
        created_at=window.start,  # the store answers with its own time
    )
    if dry_run:
        return Decision(run=run, matches=matches, opened=[], updated=[], closed=[])
    scope = {f"line:{x.id}" for x in loaded.lines} | {f"entry:{i.entry_id}" for i in items}
    scope |= {f"difference:{x.id}" for x in loaded.lines}
    found = {f.subject: f for f in outcome.findings}
    matched = {f"line:{i}" for m in matches for i in m.statement_lines}
    matched |= {f"entry:{i}" for m in matches for i in m.entry_ids}
    opened, updated, closed = [], [], []
    still_open: set[str] = set()
    for exception_id, subject, cls, severity in loaded.open:
        finding = found.get(subject)
        if finding is not None and finding.cls == cls and subject not in still_open:
            still_open.add(subject)
            updated.append(
                ExceptionUpdate(
                    id=exception_id,
                    severity=finding.severity,
                    amount=finding.amount,
                    raised=feed.raised(severity, finding.severity),
                )
            )
        elif subject in scope:
            closed.append((exception_id, "matched_by_run" if subject in matched else "superseded"))
    opened = [f for subject, f in sorted(found.items()) if subject not in still_open]
    return Decision(run=run, matches=matches, opened=opened, updated=updated, closed=closed)
