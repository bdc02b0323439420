"""The values every format has: amounts as decimals turned into integer
minor units, dates and times turned into the source's calendar day."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from ledger.engine import errors

DECIMAL = re.compile(r"^[+-]?(\d{1,18})(\.\d{1,18})?$")


def malformed(where: dict, what: str) -> errors.StatementMalformed:
    place = ", ".join(f"{k} {v}" for k, v in where.items())
    return errors.StatementMalformed(f"{place}: {what}", **where)


def minor_units(
    text: str | None, scale: int, where: dict, *, unit: str = "major", signed: bool = True
) -> int:
    """`text` (a decimal in major units, or an integer in minor units) as
    an integer of minor units, exactly: digits past the currency's scale
    must be zeros."""
    value = (text or "").strip()
    if not DECIMAL.match(value):
        raise malformed(where, f"amount {text!r} is not a decimal number")
    if not signed and value[0] in "+-":
        raise malformed(where, f"amount {text!r} must be unsigned (CdtDbtInd gives the sign)")
    if unit == "minor":
        if "." in value:
            raise malformed(where, f"amount {text!r} must be whole minor units")
        return int(value)
    try:
        exact = Decimal(value).scaleb(scale)
    except InvalidOperation as exc:  # pragma: no cover - the pattern checked it
        raise malformed(where, f"amount {text!r} is not a decimal number") from exc
    if exact != exact.to_integral_value():
        raise malformed(where, f"amount {text!r} has more decimals than the currency's {scale}")
    return int(exact)


def day(
    text: str | None, zone: ZoneInfo, where: dict, *, given_zone: ZoneInfo | None = None
) -> date:
    """The calendar day, in `zone`, of a date or a date and time (ISO 8601;
    a time without an offset is in `given_zone`, else in `zone`; a bare
    number is a Unix time)."""
    value = (text or "").strip()
    if not value:
        raise malformed(where, "the date is missing")
    try:
        if value.isdigit() and len(value) > 8:
            return datetime.fromtimestamp(int(value), UTC).astimezone(zone).date()
        if len(value) == 10:
            return date.fromisoformat(value)
        moment = datetime.fromisoformat(value.replace(" ", "T", 1))
    except ValueError as exc:
        raise malformed(where, f"date {text!r} is not an ISO 8601 date or time") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=given_zone or zone)
    return moment.astimezone(zone).date()


def clean(text: str | None, max_chars: int = 500) -> str | None:
    """Free text from a file: trimmed, NULs and control characters out, cut
    to `max_chars`; None when empty."""
    if text is None:
        return None
    value = text.strip()
    if not value.isprintable():
        value = "".join(ch for ch in value if ch.isprintable())
    return value[:max_chars] or None
