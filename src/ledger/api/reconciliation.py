"""HTTP handlers for reconciliation (scopes `reconciliation:read` and
`reconciliation:write`): thin, like the rest; `ledger.engine.reconcile`
has the rules. Statement files have a body limit of their own
(`LEDGER_MAX_STATEMENT_BYTES`), set on the router that holds these."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Request, Response, Router, get, post
from litestar.params import FromPath, FromQuery, QueryParameter

from ledger.api import request as req
from ledger.api.access import requires
from ledger.api.decoding import decode_body
from ledger.api.openapi import body_operation, file_operation
from ledger.engine import STATEMENT_MEDIA, audit
from ledger.engine.access import RECONCILIATION_READ, RECONCILIATION_WRITE
from ledger.engine.model import Page
from ledger.engine.reconcile.model import (
    ExceptionFilter,
    Match,
    NewRun,
    NewSource,
    ReconException,
    ResolveRequest,
    Run,
    Source,
    Statement,
)
from ledger.settings import Settings


class ReconciliationController(Controller):
    path = "/"
    tags = ["reconciliation"]

    @post(
        "/sources",
        operation_class=body_operation(NewSource),
        **requires(RECONCILIATION_WRITE, audit.RECON_SOURCE_CREATE, answers=(409,)),
    )
    async def create_source(
        self, request: Request, ledger: req.LedgerDep, settings: req.SettingsDep
    ) -> Response[Source]:
        """A feed of statements for one ledger account: its `format`
        (`camt.053`, `stripe-payout-itemized`, `adyen-settlement-details`,
        or `csv` with a `columns` map), and how its lines are matched
        (`settlement_lag_days`, `date_window_days`, `amount_tolerance` in
        minor units, `timezone`, `ledger_reference`: the metadata key, or
        `idempotency_key`, that carries a posting's external reference)."""
        cmd = decode_body(await request.body(), NewSource, settings.max_body_bytes)
        made = await ledger.reconciliation.create_source(cmd, req.actor(request))
        return Response(made, status_code=201)

    @get("/sources", **requires(RECONCILIATION_READ))
    async def list_sources(
        self,
        request: Request,
        ledger: req.LedgerDep,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int | None] = None,
    ) -> Page[Source]:
        """Sources of accounts the key reaches, in id order."""
        return await ledger.reconciliation.sources(cursor, limit, req.actor(request))

    @get("/sources/{source_id:str}", **requires(RECONCILIATION_READ))
    async def get_source(
        self, source_id: FromPath[str], request: Request, ledger: req.LedgerDep
    ) -> Source:
        """The source and its matching settings."""
        return await ledger.reconciliation.source(source_id, req.actor(request))

    @post(
        "/sources/{source_id:str}/statements",
        operation_class=file_operation(
            STATEMENT_MEDIA,
            "The file, as bytes: application/xml (or an ISO 20022 XML media type) for "
            "camt.053, text/csv for the others; application/octet-stream for any.",
        ),
        **requires(
            RECONCILIATION_WRITE,
            audit.RECON_STATEMENT_UPLOAD,
            answers=(413, 415),
            file_body=STATEMENT_MEDIA,
        ),
    )
    async def upload_statement(
        self, source_id: FromPath[str], request: Request, ledger: req.LedgerDep
    ) -> Response[Statement]:
        """Upload a statement file as the body. 201 with its `lines`; the
        same bytes again: 200 with `Idempotent-Replayed: true` and nothing
        new. A file that cannot be read is 422 naming the line or element,
        a camt.053 statement whose opening balance plus entries is not its
        closing balance is 422 with the three figures; nothing is kept."""
        body = await request.body()
        media = request.headers.get("content-type", "")
        statement, replayed = await ledger.reconciliation.upload(
            source_id, body, media, req.actor(request)
        )
        if replayed:
            return Response(statement, status_code=200, headers={req.REPLAYED_HEADER: "true"})
        return Response(statement, status_code=201)

    @post(
        "/runs",
        operation_class=body_operation(NewRun),
        **requires(RECONCILIATION_WRITE, audit.RECON_RUN, answers=(404,)),
    )
    async def create_run(
        self, request: Request, ledger: req.LedgerDep, settings: req.SettingsDep
    ) -> Response[Run]:
        """Match the source's statement lines dated in [`from`, `to`) against
        its account's journal entries of those days (in the source's time
        zone). Every line and entry ends in one match or one exception;
        `dry_run` writes the run and its matches but changes no exception."""
        cmd = decode_body(await request.body(), NewRun, settings.max_body_bytes)
        run = await ledger.reconciliation.run(cmd, req.actor(request))
        return Response(run, status_code=201)

    @get("/runs/{run_id:str}", **requires(RECONCILIATION_READ))
    async def get_run(self, run_id: FromPath[str], request: Request, ledger: req.LedgerDep) -> Run:
        """The run: its window and its counts (matches, exceptions by class,
        lines and entries it looked at, and what a person had settled)."""
        return await ledger.reconciliation.get_run(run_id, req.actor(request))

    @get("/runs/{run_id:str}/matches", **requires(RECONCILIATION_READ))
    async def list_matches(
        self,
        run_id: FromPath[str],
        request: Request,
        ledger: req.LedgerDep,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int | None] = None,
    ) -> Page[Match]:
        """The run's matches: their kind (`reference`, `amount_date`,
        `group`, `tolerance`), lines, entries and transactions."""
        return await ledger.reconciliation.matches(run_id, cursor, limit, req.actor(request))

    @get("/exceptions", **requires(RECONCILIATION_READ))
    async def list_exceptions(
        self,
        request: Request,
        ledger: req.LedgerDep,
        source_id: FromQuery[str | None] = None,
        exception_class: Annotated[str | None, QueryParameter(name="class")] = None,
        severity: FromQuery[str | None] = None,
        status: FromQuery[str | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int | None] = None,
    ) -> Page[ReconException]:
        """Exceptions oldest first, by source, class, severity and status."""
        where = ExceptionFilter(
            source_id=source_id, cls=exception_class, severity=severity, status=status
        )
        return await ledger.reconciliation.exceptions(where, cursor, limit, req.actor(request))

    @get("/exceptions/{exception_id:str}", **requires(RECONCILIATION_READ))
    async def get_exception(
        self, exception_id: FromPath[str], request: Request, ledger: req.LedgerDep
    ) -> ReconException:
        """The exception: its class, severity, amount (statement minus
        ledger, minor units), what it is about, and its resolution."""
        return await ledger.reconciliation.get_exception(exception_id, req.actor(request))

    @post(
        "/exceptions/{exception_id:str}/resolve",
        status_code=200,
        operation_class=body_operation(ResolveRequest),
        **requires(RECONCILIATION_WRITE, audit.RECON_RESOLVE, answers=(409,)),
    )
    async def resolve(
        self,
        exception_id: FromPath[str],
        request: Request,
        ledger: req.LedgerDep,
        settings: req.SettingsDep,
    ) -> ReconException:
        """Close an open exception: `accepted`; `matched` (with the
        `transaction_id` a statement line belongs to, or the
        `statement_line` a ledger entry belongs to); `written_off`, which
        posts the difference between `offset_account_id` and the source's
        account (idempotent on the exception), the note as its reason."""
        cmd = decode_body(await request.body(), ResolveRequest, settings.max_body_bytes)
        return await ledger.reconciliation.resolve(exception_id, cmd, req.actor(request))


def router(settings: Settings) -> Router:
    return Router(
        path="/reconciliation",
        route_handlers=[ReconciliationController],
        request_max_body_size=settings.max_statement_bytes,
    )
