"""HTTP handlers for reports (scope `reports:read`): an account's
statement (JSON pages, or the whole period as CSV with `Accept: text/csv`)
and the trial balance, streamed as one JSON document."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Annotated

import msgspec
from litestar import Request, Response, Router, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Stream

from ledger.api import request as req
from ledger.api.access import requires
from ledger.engine import errors
from ledger.engine.access import REPORTS_READ
from ledger.engine.report_model import AccountStatement, CurrencyTotals, TrialLine
from ledger.settings import Settings

CSV_COLUMNS = ["kind", "entry_id", "transaction_id", "created_at", "direction", "amount", "balance"]


def _period(start: str | None, end: str | None):
    if start is None:
        raise errors.InvalidValue("from is required (an RFC 3339 time or a date)", field="from")
    begin = req.as_of(start, "from")
    assert begin is not None
    return begin, req.as_of(end, "to")


class TrialBalance(msgspec.Struct):
    """The trial balance's document, as streamed (for the OpenAPI document)."""

    as_of: str
    currency: str | None
    accounts: list[TrialLine]
    totals: list[CurrencyTotals]


@get(
    "/accounts/{account_id:str}/statement",
    tags=["reports"],
    responses={
        200: ResponseSpec(
            data_container=AccountStatement,
            description="A page of the statement (JSON), or the whole of it as text/csv",
        )
    },
    **requires(REPORTS_READ),
)
async def account_statement(
    account_id: FromPath[str],
    request: Request,
    ledger: req.LedgerDep,
    start: Annotated[str | None, QueryParameter(name="from")] = None,
    to: FromQuery[str | None] = None,
    cursor: FromQuery[str | None] = None,
    limit: FromQuery[int | None] = None,
) -> Response[AccountStatement] | Stream:
    """The account's statement for [`from`, `to`) (RFC 3339 times, or dates
    meaning their midnight UTC; `to` not in the future, and up to now when
    left out: the answer's `to` says when that was, for the next pages):
    opening totals at `from`, the posted entries of the
    period oldest first with the balance after each (paged: follow
    `next_cursor`), closing totals at `to`; each page read from one
    snapshot. With `Accept: text/csv`, the whole period as CSV: an
    `opening` row, one `entry` row each, a `closing` row."""
    start, end = _period(start, to)
    actor = req.actor(request)
    if "text/csv" in request.headers.get("accept", ""):
        # Checked before the answer starts, so a refusal is still a problem.
        first = await ledger.reports.statement(account_id, start, end, None, 1, actor)
        pages = ledger.reports.whole_statement(account_id, start, end, actor)
        name = f"statement-{first.account_id}.csv"
        return Stream(
            _csv(pages),
            media_type="text/csv",
            headers={"content-disposition": f'attachment; filename="{name}"'},
        )
    page = await ledger.reports.statement(account_id, start, end, cursor, limit, actor)
    return Response(page)


async def _csv(pages: AsyncIterator[AccountStatement]) -> AsyncIterator[str]:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    last = None
    async for page in pages:
        if last is None:
            writer.writerow(
                ["opening", "", "", page.from_.isoformat(), "", "", page.opening.balance]
            )
        for entry in page.entries:
            writer.writerow(
                [
                    "entry",
                    entry.entry_id,
                    entry.transaction_id,
                    entry.created_at.isoformat(),
                    entry.direction,
                    entry.amount,
                    entry.balance,
                ]
            )
        yield out.getvalue()
        out.seek(0)
        out.truncate()
        last = page
    if last is not None:
        writer.writerow(["closing", "", "", last.to.isoformat(), "", "", last.closing.balance])
        yield out.getvalue()


@get(
    "/reports/trial-balance",
    tags=["reports"],
    responses={200: ResponseSpec(data_container=TrialBalance, description="The trial balance")},
    **requires(REPORTS_READ),
)
async def trial_balance(
    request: Request,
    ledger: req.LedgerDep,
    as_of: FromQuery[str | None] = None,
    currency: FromQuery[str | None] = None,
) -> Stream:
    """Every account's posted debits, credits and balance as of `as_of`
    (RFC 3339; absent: now), of `currency` if given, in id order, then per
    currency the total debits and credits, which must be equal
    (`balanced`). Read from one snapshot and streamed as it is read:
    `{"as_of", "currency", "accounts": [...], "totals": [...]}`; a document
    cut short (no `totals`) means the read failed midway."""
    at = await ledger.reports.check_trial_balance(req.as_of(as_of), currency, req.actor(request))
    return Stream(_trial_json(ledger, at, currency), media_type="application/json")


async def _trial_json(ledger, at, currency) -> AsyncIterator[bytes]:
    encode = msgspec.json.encode
    head = {"as_of": at, "currency": currency}
    yield encode(head)[:-1] + b',"accounts":['
    totals: list[CurrencyTotals] = []
    first = True
    chunk: list[bytes] = []
    async for line in ledger.reports.trial_balance(at, currency, totals):
        chunk.append(encode(line) if first else b"," + encode(line))
        first = False
        if len(chunk) >= 500:
            yield b"".join(chunk)
            chunk.clear()
    yield b"".join(chunk) + b'],"totals":' + encode(totals) + b"}"


def router(settings: Settings) -> Router:
    """The reports' routes."""
    return Router(path="/", route_handlers=[account_statement, trial_balance])
