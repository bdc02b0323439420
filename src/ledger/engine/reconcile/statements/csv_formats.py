"""CSV statements: Stripe's itemized payout reconciliation report, Adyen's
settlement details report, and any CSV through a source's `columns` map.
Columns are found by header name (processors reorder and add columns),
case and surrounding blanks ignored."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from zoneinfo import ZoneInfo

from ledger.engine.reconcile.model import Line, NewSource, ParsedStatement, zone
from ledger.engine.reconcile.statements.values import clean, day, malformed, minor_units

MAX_FIELD_CHARS = 64 * 1024
CREDIT = {"c", "cr", "crdt", "credit", "in"}
DEBIT = {"d", "dr", "dbit", "debit", "out"}

Row = dict[str, str]


def parse(body: bytes, source: NewSource, scale: int) -> ParsedStatement:
    reader = {
        "stripe-payout-itemized": _stripe,
        "adyen-settlement-details": _adyen,
        "csv": _mapped,
    }[source.format]
    lines = [
        line
        for n, (line_no, row) in enumerate(_rows(body), 1)
        if (line := reader(row, source, scale, {"line": line_no}, n)) is not None
    ]
    return ParsedStatement(lines=lines)


def _rows(body: bytes) -> Iterator[tuple[int, Row]]:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise malformed({"line": body[: exc.start].count(b"\n") + 1}, "not UTF-8 text") from exc
    if "\x00" in text:
        raise malformed({"line": text[: text.index("\x00")].count("\n") + 1}, "a NUL character")
    csv.field_size_limit(MAX_FIELD_CHARS)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise malformed({"line": 1}, "the file is empty; a header row comes first")
        names = [h.strip().lower() for h in header]
        if len(set(names)) != len(names):
            raise malformed({"line": 1}, "the header names a column twice")
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(names):
                raise malformed(
                    {"line": reader.line_num},
                    f"{len(row)} fields where the header has {len(names)}",
                )
            yield reader.line_num, dict(zip(names, row, strict=True))
    except csv.Error as exc:
        raise malformed({"line": reader.line_num}, f"not valid CSV: {exc}") from exc


def _field(row: Row, name: str, where: dict, *, required: bool = True) -> str | None:
    value = row.get(name.lower())
    if value is None:
        if required:
            raise malformed(where, f"the file has no column {name!r}")
        return None
    return value.strip()


def _currency(row: Row, name: str, source: NewSource, where: dict) -> str:
    currency = (_field(row, name, where) or "").upper()
    if currency != source.currency:
        raise malformed(where, f"currency {currency!r} is not the source's {source.currency}")
    return currency


def _stripe(row: Row, source: NewSource, scale: int, where: dict, n: int) -> Line:
    """One balance transaction of a payout: `net` (major units) is what it
    adds to the balance the payout empties; `source_id` (the charge or
    refund) is the reference, `automatic_payout_id` the group."""
    currency = _currency(row, "currency", source, where)
    when = _field(row, "available_on", where, required=False) or _field(
        row, "available_on_utc", where, required=False
    )
    if when is None:
        when = _field(row, "created_utc", where)
    category = _field(row, "reporting_category", where) or ""
    return Line(
        line_no=n,
        amount=minor_units(_field(row, "net", where), scale, where),
        currency=currency,
        booked_on=day(when, zone(source.timezone), where, given_zone=ZoneInfo("UTC")),
        external_id=clean(_field(row, "balance_transaction_id", where), 255),
        reference=clean(_field(row, "source_id", where, required=False), 255),
        description=clean(_field(row, "description", where, required=False)) or category,
        group=clean(_field(row, "automatic_payout_id", where, required=False), 255),
        reversal=category.endswith("_reversal"),
    )


def _adyen(row: Row, source: NewSource, scale: int, where: dict, n: int) -> Line:
    """Net credit minus net debit, in the net currency; `Creation Date` is
    in the row's own `TimeZone`."""
    currency = _currency(row, "Net Currency", source, where)

    def amount(name: str) -> int:
        text = _field(row, name, where, required=False)
        return minor_units(text, scale, where) if text else 0

    given = _field(row, "TimeZone", where, required=False) or "UTC"
    try:
        given_zone = ZoneInfo(given)
    except (ValueError, KeyError) as exc:
        raise malformed(where, f"TimeZone {given!r} is not a known time zone") from exc
    psp = clean(_field(row, "Psp Reference", where), 128)
    modification = clean(_field(row, "Modification Reference", where, required=False), 128)
    return Line(
        line_no=n,
        amount=amount("Net Credit (NC)") - amount("Net Debit (NC)"),
        currency=currency,
        booked_on=day(
            _field(row, "Creation Date", where), zone(source.timezone), where, given_zone=given_zone
        ),
        external_id="/".join(dict.fromkeys(i for i in (psp, modification) if i)) or None,
        reference=clean(_field(row, "Merchant Reference", where, required=False), 255),
        description=clean(_field(row, "Type", where)),
        group=clean(_field(row, "Batch Number", where, required=False), 64),
    )


def _mapped(row: Row, source: NewSource, scale: int, where: dict, n: int) -> Line:
    columns = source.columns
    assert columns is not None  # check_new_source made sure
    field: Callable[[str], str | None] = lambda name: _field(row, name, where)  # noqa: E731
    amount = minor_units(field(columns.amount), scale, where, unit=source.amount_unit)
    if columns.direction is not None:
        direction = (field(columns.direction) or "").lower()
        if direction in CREDIT:
            amount = abs(amount)
        elif direction in DEBIT:
            amount = -abs(amount)
        else:
            raise malformed(where, f"direction {direction!r} is neither credit nor debit")
    return Line(
        line_no=n,
        amount=amount,
        currency=_currency(row, columns.currency, source, where),
        booked_on=day(field(columns.date), zone(source.timezone), where),
        external_id=clean(field(columns.id), 255),
        reference=clean(field(columns.reference), 255),
        description=clean(field(columns.description)),
    )
