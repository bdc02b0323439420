"""Statement files parsed into `Line`s: amounts in integer minor units from
the parser on (decimals, never floats), dates in the source's time zone.
One module per family of formats; `parse` picks by the source's format."""

from __future__ import annotations

from ledger.engine.reconcile.model import NewSource, ParsedStatement


def parse(source: NewSource, body: bytes, scale: int) -> ParsedStatement:
    """Raises StatementMalformed (naming the line or element) and
    StatementUnbalanced."""
    if source.format == "camt.053":
        from ledger.engine.reconcile.statements import camt

        return camt.parse(body, source, scale)
    from ledger.engine.reconcile.statements import csv_formats

    return csv_formats.parse(body, source, scale)
