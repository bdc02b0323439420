"""The records of reconciliation: sources, statement lines, runs, matches,
exceptions, and the rules of what a source may be. No I/O here."""

from __future__ import annotations

import os
import re
import time
from datetime import date, datetime
from typing import Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from ledger.engine import errors
from ledger.engine.account_rules import ACCOUNT_ID, CURRENCY
from ledger.engine.free_text import check_text

Format = Literal["camt.053", "stripe-payout-itemized", "adyen-settlement-details", "csv"]
ExceptionClass = Literal[
    "timing",
    "missing_in_statement",
    "missing_in_ledger",
    "amount_mismatch",
    "duplicate",
    "ambiguous",
]
CLASSES: tuple[str, ...] = get_args(ExceptionClass)
Severity = Literal["info", "low", "medium", "high"]
SEVERITIES: tuple[str, ...] = get_args(Severity)
LineStatus = Literal["booked", "pending", "info"]
MatchKind = Literal["reference", "amount_date", "group", "tolerance", "manual"]
Resolution = Literal["accepted", "matched", "written_off"]
# A person's resolutions: what they settled, a later run leaves alone.
PERSON_RESOLUTIONS: tuple[str, ...] = get_args(Resolution)
# What the ledger says when it closes an exception itself: a later run
# matched it, or found it to be something else now (a timing difference
# past the settlement lag).
AutoResolution = Literal["matched_by_run", "superseded"]
# `ledger_reference`: this value names the posting's idempotency key;
# anything else names a metadata key.
IDEMPOTENCY_KEY = "idempotency_key"
# Metadata key of the adjusting posting a write-off makes: such postings
# are the ledger's own and are never matched against a statement.
WRITE_OFF_KEY = "reconciliation_exception"

SOURCE_ID = ACCOUNT_ID
MAX_DAYS = 366


class CsvColumns(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Which header of a `csv` source's file holds each field."""

    id: str
    amount: str
    currency: str
    date: str
    reference: str
    description: str
    # A column saying credit or debit (C/D, CRDT/DBIT, credit/debit, in/out);
    # absent: the amount's sign says it.
    direction: str | None = None


class NewSource(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    id: str
    account_id: str
    format: Format
    currency: str
    columns: CsvColumns | None = None
    amount_unit: Literal["minor", "major"] = "major"
    # A line or posting younger than this (to the run's `to`) is a timing
    # difference, not missing.
    settlement_lag_days: int = 2
    # How far apart a line's date and a posting's may be and still match.
    date_window_days: int = 3
    # Minor units a line and a posting may differ by and still match (the
    # difference is a `low` exception).
    amount_tolerance: int = 0
    # Exceptions at or above this amount (minor units) rise a severity.
    escalate_amount: int = 1_000_000
    # The time zone of the file's dates, and of a posting's date.
    timezone: str = "UTC"
    ledger_reference: str = "reference"
    description: str | None = None


class Source(NewSource, frozen=True, kw_only=True):
    created_at: datetime


class Line(msgspec.Struct, frozen=True, kw_only=True):
    """One statement line, normalised: `amount` in signed minor units (+ is
    money into the account), dates in the source's time zone."""

    line_no: int
    amount: int
    currency: str
    booked_on: date
    external_id: str | None = None
    reference: str | None = None
    description: str | None = None
    status: LineStatus = "booked"
    reversal: bool = False
    # Lines one payout or batch booking nets (payout id, batch number).
    group: str | None = None
    id: str = ""


class ParsedStatement(msgspec.Struct, frozen=True, kw_only=True):
    lines: list[Line]
    opening: int | None = None
    closing: int | None = None
    account: str | None = None


class Statement(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    source_id: str
    sha256: str
    lines: int
    skipped: int
    opening: int | None
    closing: int | None
    first_date: date | None
    last_date: date | None
    created_at: datetime


class LedgerItem(msgspec.Struct, frozen=True, kw_only=True):
    """One journal entry of the source's account, as the statement would
    show it: signed minor units (+ raised the account's balance)."""

    entry_id: str
    transaction_id: str
    amount: int
    booked_on: date
    at: datetime
    reference: str | None
    reversal: bool = False


class NewRun(msgspec.Struct, forbid_unknown_fields=True, frozen=True, rename={"from_": "from"}):
    source_id: str
    from_: date
    to: date
    dry_run: bool = False


class Counts(msgspec.Struct, frozen=True):
    matched: int
    exceptions: dict[str, int]
    lines: int
    entries: int
    skipped: int
    # Lines and entries a person already settled (a manual match, an
    # accepted or written-off exception): left out of matching.
    settled: int


class Run(msgspec.Struct, frozen=True, kw_only=True, rename={"from_": "from"}):
    id: str
    source_id: str
    from_: date
    to: date
    # The day ages were counted to (the run's day in the source's zone): a
    # line or entry younger than the settlement lag is a timing difference.
    as_of: date
    dry_run: bool
    status: Literal["completed"]
    counts: Counts
    created_at: datetime


class Match(msgspec.Struct, frozen=True, kw_only=True):
    id: str = ""
    kind: MatchKind
    statement_lines: list[str]
    entry_ids: list[str]
    transaction_ids: list[str]
    # Sum of the lines; `difference` is lines minus entries (0 but for
    # `tolerance` matches).
    amount: int
    difference: int = 0
    # A pending bank line is in it: tentative until the bank books it.
    tentative: bool = False
    run_id: str | None = None


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    """An exception as matching finds it, before it is stored. `subject`
    names what it is about, so a later run finds the same one again."""

    cls: ExceptionClass
    severity: Severity
    # Statement minus ledger, signed minor units.
    amount: int
    subject: str
    statement_line: str | None = None
    entry_id: str | None = None
    transaction_id: str | None = None
    detail: str | None = None


class ReconException(msgspec.Struct, frozen=True, kw_only=True, rename={"cls": "class"}):
    id: str
    source_id: str
    cls: ExceptionClass
    severity: Severity
    amount: int
    currency: str
    statement_line: str | None
    transaction_id: str | None
    entry_id: str | None
    detail: str | None
    detected_at: datetime
    run_id: str
    status: Literal["open", "resolved"]
    resolution: str | None = None
    note: str | None = None
    resolved_at: datetime | None = None
    adjustment_transaction_id: str | None = None


class ExceptionFilter(msgspec.Struct, frozen=True, rename={"cls": "class"}):
    source_id: str | None = None
    cls: str | None = None
    severity: str | None = None
    status: str | None = None


class ResolveRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    resolution: Resolution
    note: str
    # `matched`: the posting a statement line belongs to...
    transaction_id: str | None = None
    # ... or the statement line a ledger entry belongs to.
    statement_line: str | None = None
    # `written_off`: the account the adjusting posting moves the amount to.
    offset_account_id: str | None = None


class Resolved(msgspec.Struct, frozen=True, kw_only=True):
    """What a resolution writes on the exception."""

    resolution: str
    note: str | None
    adjustment_transaction_id: str | None = None
    match: Match | None = None


def new_id(prefix: str) -> str:
    """Time-ordered (milliseconds first), so id order is creation order."""
    return f"{prefix}{time.time_ns() // 1_000_000:012x}{os.urandom(8).hex()}"


def check_new_source(cmd: NewSource) -> None:
    """Raises InvalidValue naming the field."""
    if not SOURCE_ID.match(cmd.id):
        raise errors.InvalidValue(
            "id must be 1 to 128 letters, digits or :_.-", field="id", value=cmd.id
        )
    if not CURRENCY.match(cmd.currency):
        raise errors.InvalidValue("currency must be a currency code", field="currency")
    if cmd.format == "csv" and cmd.columns is None:
        raise errors.InvalidValue("a csv source needs its columns map", field="columns")
    if cmd.format != "csv" and cmd.columns is not None:
        raise errors.InvalidValue("only a csv source takes a columns map", field="columns")
    for name in ("settlement_lag_days", "date_window_days"):
        value = getattr(cmd, name)
        if not 0 <= value <= MAX_DAYS:
            raise errors.InvalidValue(f"{name} must be 0 to {MAX_DAYS}", field=name, value=value)
    for name in ("amount_tolerance", "escalate_amount"):
        value = getattr(cmd, name)
        if not 0 <= value <= 2**53 - 1:
            raise errors.InvalidValue(f"{name} must be 0 or more", field=name, value=value)
    zone(cmd.timezone)
    check_text(cmd.ledger_reference, "ledger_reference", 128)
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,128}", cmd.ledger_reference):
        raise errors.InvalidValue(
            "ledger_reference must be a metadata key or 'idempotency_key'",
            field="ledger_reference",
        )
    check_text(cmd.description, "description", 500)
    if cmd.columns is not None:
        for name in msgspec.structs.asdict(cmd.columns).values():
            check_text(name, "columns", 128)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise errors.InvalidValue(
            f"timezone {name!r} is not an IANA time zone", field="timezone"
        ) from exc


class JournalRow(msgspec.Struct, frozen=True, kw_only=True):
    """A journal entry of the source's account as storage reads it, with
    what its reference may come from (its transaction's, or for a reversal
    or a pending resolution, the original's)."""

    entry_id: str
    transaction_id: str
    direction: str
    amount: int
    created_at: datetime
    metadata: dict
    idempotency_key: str
    reversal: bool
    original_metadata: dict | None = None
    original_key: str | None = None


class Window(msgspec.Struct, frozen=True, kw_only=True):
    """A run's days, and the same as instants in the source's zone."""

    from_: date
    to: date
    start: datetime
    end: datetime


class Loaded(msgspec.Struct, frozen=True, kw_only=True):
    """What a run reads, in its one database transaction."""

    lines: list[Line]
    journal: list[JournalRow]
    # Subjects ("line:<id>", "entry:<id>") a person settled.
    settled: set[str]
    # Open exceptions of the source: (id, subject, class, severity).
    open: list[tuple[str, str, str, str]]


class ExceptionUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """An open exception found again: its severity and amount now, and
    whether its severity rose (then it is an event again)."""

    id: str
    severity: str
    amount: int
    raised: bool = False


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """What a run writes: itself, its matches, and (unless a dry run) the
    exceptions it opens, updates and closes. Each exception opened, and
    each update that `raised` a severity, is a `reconciliation.exception`
    event (`ledger.engine.reconcile.feed`)."""

    run: Run
    matches: list[Match]
    opened: list[Finding]
    updated: list[ExceptionUpdate]
    # (id, resolution): closed by this run.
    closed: list[tuple[str, AutoResolution]]
