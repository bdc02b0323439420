"""One scale per currency across the ledger.

An amount is an integer count of minor units, and the account's scale says
how many digits of it are minor: 2 for USD means 100 is one dollar. Two
accounts of one currency with different scales would make a balanced
posting move different values (100 at scale 5 is a thousandth of a cent,
at scale 2 a dollar), so a currency has exactly one scale in a ledger: its
ISO 4217 minor-unit exponent by default, or, for a code ISO does not give
one (a private token, a loyalty point), the scale its first account named.
The database holds each currency's scale (`currencies`) and refuses an
account that disagrees with it, so a race cannot break the rule either.
"""

from __future__ import annotations

import msgspec
from iso4217 import Currency

from ledger.engine import errors


class CurrencyScale(msgspec.Struct, frozen=True):
    """A currency in use and its one scale."""

    code: str
    scale: int


def iso_scale(code: str) -> int | None:
    """ISO 4217's minor-unit exponent of `code`; None for a code ISO does
    not list, or lists without one (gold, SDR)."""
    try:
        return Currency(code).exponent
    except ValueError:
        return None


def account_scale(code: str, asked: int | None, in_ledger: int | None) -> int:
    """The scale a new account of currency `code` gets: the one the ledger
    holds for it, else ISO 4217's, else the one asked for.

    Raises CurrencyScaleMismatch when `asked` differs from the currency's
    scale, and InvalidAccount when the currency has none and none is asked.
    """
    expected = in_ledger if in_ledger is not None else iso_scale(code)
    if asked is None:
        if expected is None:
            raise errors.InvalidAccount(
                f"currency {code!r} has no ISO 4217 minor unit and no account of it yet: "
                "give its scale (the number of minor-unit digits), which then holds for "
                f"every {code} account",
                field="scale",
            )
        return expected
    if expected is not None and asked != expected:
        source = "in this ledger" if in_ledger is not None else "by ISO 4217"
        raise errors.CurrencyScaleMismatch(
            f"{code} has scale {expected} {source}; an account asking for scale {asked} "
            f"would make {10 ** max(asked, expected)} minor units mean two different amounts. "
            f"Leave scale out, or give {expected}",
            currency=code,
            scale=expected,
            asked=asked,
        )
    return asked
