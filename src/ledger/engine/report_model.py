"""The records of the reports: statements, trial balance lines, currency
totals, and what a transaction search asks for."""

from __future__ import annotations

from datetime import datetime

import msgspec

from ledger.engine.model import BalanceTotals, Direction


class StatementEntry(msgspec.Struct, frozen=True):
    entry_id: str
    transaction_id: str
    created_at: datetime
    direction: Direction
    amount: int
    # The posted balance on the account's normal side after this entry.
    balance: int


class AccountStatement(msgspec.Struct, frozen=True, kw_only=True, rename={"from_": "from"}):
    account_id: str
    currency: str
    scale: int
    normal_side: Direction
    from_: datetime
    to: datetime
    # Posted totals before `from` and before `to`: opening plus the
    # period's entries is closing.
    opening: BalanceTotals
    closing: BalanceTotals
    entries: list[StatementEntry]
    next_cursor: str | None


class StatementRead(msgspec.Struct, frozen=True, kw_only=True):
    """What storage reads for a page, in one snapshot: posted totals before
    the period, before the page, and at its end, and the page's entries."""

    normal_side: Direction
    currency: str
    scale: int
    opening: tuple[int, int]
    before_page: tuple[int, int]
    closing: tuple[int, int]
    entries: list[tuple[str, str, datetime, Direction, int]]


class TrialLine(msgspec.Struct, frozen=True):
    account_id: str
    currency: str
    normal_side: Direction
    debits: int
    credits: int
    balance: int


class CurrencyTotals(msgspec.Struct, frozen=True):
    currency: str
    debits: int
    credits: int
    # Debits equal credits: the books balance in this currency.
    balanced: bool


class TransactionQuery(msgspec.Struct, frozen=True, kw_only=True):
    """What `GET /transactions` looks for: at least an account or a metadata
    equality, within [start, end) when given."""

    account_id: str | None = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    start: datetime | None = None
    end: datetime | None = None
