"""Reports for accountants and auditors (scope `reports:read`): an
account's statement over a period, and the trial balance as of a time.
Read from one database snapshot each; the trial balance streams, so a
million accounts are never held in memory at once."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ledger.engine import access, account_rules, errors, paging, rules
from ledger.engine.access import DIRECT, Actor
from ledger.engine.account_rules import CURRENCY
from ledger.engine.free_text import check_text
from ledger.engine.limits import Limits
from ledger.engine.model import Page, Transaction
from ledger.engine.report_model import (
    AccountStatement,
    CurrencyTotals,
    StatementEntry,
    TransactionQuery,
    TrialLine,
)

if TYPE_CHECKING:
    from ledger.engine.ports import ReportStore

# Times are microseconds apart in both databases: the last instant before one.
JUST_BEFORE = timedelta(microseconds=1)


MAX_METADATA_FILTERS = 8


class Reports:
    def __init__(self, store: ReportStore, limits: Limits) -> None:
        self.store = store
        self.limits = limits

    async def _check_period(self, start: datetime, end: datetime | None) -> datetime:
        """The period's end (the database's current time when not given),
        once the period is a real one that is over."""
        now = await self.store.now()
        if end is None:
            end = now
        if start >= end:
            raise errors.InvalidValue("from must be before to", field="to")
        if end > now:
            raise errors.InvalidValue(
                f"to {end.isoformat()} is after the database's current time "
                f"{now.isoformat()}: the period is not over (leave to out for up to now)",
                field="to",
            )
        return end

    async def statement(
        self,
        account_id: str,
        start: datetime,
        end: datetime | None,
        cursor: str | None,
        limit: int | None,
        actor: Actor = DIRECT,
    ) -> AccountStatement:
        """Opening totals at `start`, the posted entries in [start, end) oldest
        first (a page), each with the balance after it, and closing totals at
        `end` (None: the database's current time, which the answer's `to`
        names; later pages should ask for that `to`). Raises AccountNotFound,
        AccountOutOfReach, InvalidValue, InvalidCursor."""
        access.check_reach(actor, [account_id])
        if not account_rules.known_account_id(account_id):
            raise errors.AccountNotFound(f"no account {account_id!r}", account_id=account_id)
        end = await self._check_period(start, end)
        size = paging.page_size(limit, self.limits.default_page_size, self.limits.max_page_size)
        after = paging.decode_cursor(cursor)
        read = await self.store.statement_page(
            account_id, start - JUST_BEFORE, end - JUST_BEFORE, after, size + 1
        )
        if read is None:
            raise errors.AccountNotFound(f"no account {account_id!r}", account_id=account_id)
        side = read.normal_side
        running = rules.totals(side, *read.before_page).balance
        entries = []
        for entry_id, transaction_id, at, direction, amount in read.entries[:size]:
            running += amount if direction == side else -amount
            entries.append(StatementEntry(entry_id, transaction_id, at, direction, amount, running))
        more = len(read.entries) > size
        return AccountStatement(
            account_id=account_id,
            currency=read.currency,
            scale=read.scale,
            normal_side=side,
            from_=start,
            to=end,
            opening=rules.totals(side, *read.opening),
            closing=rules.totals(side, *read.closing),
            entries=entries,
            next_cursor=paging.encode_cursor(entries[-1].entry_id) if more else None,
        )

    async def whole_statement(
        self, account_id: str, start: datetime, end: datetime | None, actor: Actor = DIRECT
    ) -> AsyncIterator[AccountStatement]:
        """Every page of the statement, for a streamed export (all of them
        up to the first page's end, when `end` was not given)."""
        cursor = None
        while True:
            page = await self.statement(
                account_id, start, end, cursor, self.limits.max_page_size, actor
            )
            yield page
            if page.next_cursor is None:
                return
            cursor, end = page.next_cursor, page.to

    async def search(
        self,
        where: TransactionQuery,
        cursor: str | None,
        limit: int | None,
        actor: Actor = DIRECT,
    ) -> Page[Transaction]:
        """Transactions by account and metadata equality, oldest first.
        Raises InvalidValue, InvalidCursor, AccountOutOfReach. A key limited
        to account prefixes must name an account it reaches, and sees only
        the transactions whose every leg it reaches."""
        if where.account_id is None and not where.metadata:
            raise errors.InvalidValue(
                "name an account_id or a metadata.<key>=<value> to search by",
                field="account_id",
            )
        if len(where.metadata) > MAX_METADATA_FILTERS:
            raise errors.InvalidValue(
                f"at most {MAX_METADATA_FILTERS} metadata filters", field="metadata"
            )
        for key, value in where.metadata.items():
            check_text(key, "metadata key", 128)
            check_text(value, f"metadata.{key}", 255)
        if where.start is not None and where.end is not None and where.start >= where.end:
            raise errors.InvalidValue("from must be before to", field="to")
        if actor.accounts is not None:
            if where.account_id is None:
                raise errors.AccountOutOfReach(
                    "this API key is limited to account prefixes: name an account_id",
                    account_id=None,
                )
            access.check_reach(actor, [where.account_id])
        size = paging.page_size(limit, self.limits.default_page_size, self.limits.max_page_size)
        after = _search_key(cursor)
        found = await self.store.search_transactions(where, after, size + 1)
        page = paging.page(found, size, lambda t: f"{t.created_at.isoformat()} {t.id}")
        if actor.accounts is None:
            return page
        reach = actor.accounts
        items = [t for t in page.items if all(e.account_id.startswith(reach) for e in t.entries)]
        return Page(items=items, next_cursor=page.next_cursor)

    async def check_trial_balance(
        self, as_of: datetime | None, currency: str | None, actor: Actor = DIRECT
    ) -> datetime:
        """The time the trial balance is read at (now when absent). Raises
        InvalidValue, and Forbidden for a key limited to account prefixes:
        the trial balance is every account's, or it does not balance."""
        if actor.accounts is not None:
            raise errors.Forbidden(
                "the trial balance covers every account; this API key is limited to "
                f"accounts starting with {', '.join(repr(p) for p in actor.accounts)}"
            )
        if currency is not None and not CURRENCY.match(currency):
            raise errors.InvalidValue("currency must be a currency code", field="currency")
        now = await self.store.now()
        if as_of is not None and as_of > now:
            raise errors.InvalidValue(
                f"as_of {as_of.isoformat()} is after the database's current time {now.isoformat()}",
                field="as_of",
            )
        at = now if as_of is None else as_of
        await self.store.probe_reads(at)
        return at

    async def trial_balance(
        self, as_of: datetime, currency: str | None, totals: list[CurrencyTotals]
    ) -> AsyncIterator[TrialLine]:
        """Every account's posted totals as of `as_of` (of `currency`), in id
        order, read from one snapshot; when done, `totals` holds the debits
        and credits per currency."""
        sums: dict[str, list[int]] = {}
        async for account_id, code, side, debits, credits in self.store.trial_balance_rows(
            as_of, currency
        ):
            got = sums.setdefault(code, [0, 0])
            got[0] += debits
            got[1] += credits
            yield TrialLine(
                account_id, code, side, debits, credits, rules.totals(side, debits, credits).balance
            )
        totals.extend(CurrencyTotals(code, d, c, d == c) for code, (d, c) in sorted(sums.items()))


def _search_key(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    text = paging.decode_cursor(cursor)
    if text is None:
        return None
    at, _, transaction_id = text.partition(" ")
    try:
        return datetime.fromisoformat(at), uuid.UUID(transaction_id)
    except ValueError as exc:
        raise errors.InvalidCursor(f"cursor {cursor!r} is not valid", cursor=cursor) from exc
