"""Reconciliation's use cases: sources, statement uploads, runs, the
exceptions and their resolution. Each write carries its audit row; a
write-off posts its adjusting transaction through the ledger's own
posting path (`post`), idempotent on the exception."""

from __future__ import annotations

import hashlib
from datetime import date, datetime, time
from typing import TYPE_CHECKING

import msgspec

from ledger.engine import access, errors, paging, reach
from ledger.engine import reconciliation_resolution as resolution
from ledger.engine.access import DIRECT, Actor
from ledger.engine.audit import (
    RECON_RESOLVE,
    RECON_RUN,
    RECON_SOURCE_CREATE,
    RECON_STATEMENT_UPLOAD,
    AuditRecord,
)
from ledger.engine.free_text import check_text
from ledger.engine.limits import Limits
from ledger.engine.model import Account, Page
from ledger.engine.reconcile import lifecycle, statements
from ledger.engine.reconcile.model import (
    CLASSES,
    MAX_DAYS,
    SEVERITIES,
    ExceptionFilter,
    Match,
    NewRun,
    NewSource,
    ReconException,
    Resolved,
    ResolveRequest,
    Run,
    Source,
    Statement,
    Window,
    check_new_source,
    new_id,
    zone,
)
from ledger.engine.reconciliation_resolution import Post

if TYPE_CHECKING:
    from ledger.engine.ports import ReconciliationCases

# The media types a statement of each format may be sent as: its own, and
# application/octet-stream for any. Never text/plain, which a browser sends
# cross-origin without asking first.
OCTETS = "application/octet-stream"
XML_MEDIA = ("application/xml", "text/xml", OCTETS)
CSV_MEDIA = ("text/csv", "application/csv", OCTETS)
MEDIA = {"camt.053": XML_MEDIA}
# Every media type a statement may come as (`application/*+xml`: any XML
# type, the ISO 20022 ones among them), for the HTTP layer to refuse others
# before it reads the body.
STATEMENT_MEDIA = (*dict.fromkeys((*XML_MEDIA, *CSV_MEDIA)), "application/*+xml")


def media_fits(media_type: str, expected: tuple[str, ...]) -> bool:
    media = media_type.split(";")[0].strip().lower()
    return media in expected or (
        expected is XML_MEDIA and media.startswith("application/") and media.endswith("+xml")
    )


class Reconciliation:
    def __init__(self, store: ReconciliationCases, limits: Limits, post: Post) -> None:
        self.store = store
        self.limits = limits
        self.post = post

    # --- sources ----------------------------------------------------------------------

    async def create_source(self, cmd: NewSource, actor: Actor) -> Source:
        """Raises InvalidValue, AccountOutOfReach, UnknownAccount,
        CurrencyMismatch, SourceExists."""
        check_new_source(cmd)
        access.check_reach(actor, [cmd.account_id])
        account = await self._account(cmd.account_id)
        if account.currency != cmd.currency:
            raise errors.CurrencyMismatch(
                f"account {account.id!r} is in {account.currency}, the source in {cmd.currency}",
                account_id=account.id,
                currency=cmd.currency,
            )
        record = AuditRecord(
            actor=actor,
            action=RECON_SOURCE_CREATE,
            outcome="created",
            target=cmd.id,
            reach=(cmd.account_id,),
        )
        return await self.store.insert_source(cmd, record)

    async def source(self, source_id: str, actor: Actor = DIRECT) -> Source:
        """A source whose account `actor` reaches. Raises
        ReconciliationNotFound (for one out of reach too)."""
        found = await self.store.get_source(source_id)
        if found is None or not access.reaches(actor, found.account_id):
            raise errors.ReconciliationNotFound(
                f"no reconciliation source {source_id!r}", kind="source", id=source_id
            )
        return found

    async def sources(
        self, cursor: str | None, limit: int | None = None, actor: Actor = DIRECT
    ) -> Page[Source]:
        """The sources of accounts `actor` reaches, in id order."""
        size = paging.page_size(limit, self.limits.default_page_size, self.limits.max_page_size)
        return await reach.filtered_page(
            self.store.list_sources,
            lambda s: access.reaches(actor, s.account_id),
            cursor,
            size,
            lambda s: s.id,
        )

    async def _reaches_source(self, actor: Actor, source_id: str) -> bool:
        if actor.accounts is None:
            return True
        found = await self.store.get_source(source_id)
        return found is not None and access.reaches(actor, found.account_id)

    async def _account(self, account_id: str) -> Account:
        account = await self.store.get_account(account_id)
        if account is None:
            raise errors.UnknownAccount(f"no account {account_id!r}", account_id=account_id)
        return account

    # --- statements -------------------------------------------------------------------

    async def upload(
        self, source_id: str, body: bytes, media_type: str, actor: Actor
    ) -> tuple[Statement, bool]:
        """Parse and keep a statement file; the same bytes again are a
        replay (True). Raises ReconciliationNotFound, InvalidValue (the
        media type), StatementMalformed, StatementUnbalanced."""
        source = await self.source(source_id, actor)
        expected = MEDIA.get(source.format, CSV_MEDIA)
        if not media_fits(media_type, expected):
            raise errors.InvalidValue(
                f"a {source.format} statement is sent as {expected[0]}, not {media_type!r}",
                field="content-type",
            )
        account = await self._account(source.account_id)
        parsed = statements.parse(source, body, account.scale)
        statement_id = new_id("stm_")
        lines = [msgspec.structs.replace(x, id=f"{statement_id}.{x.line_no}") for x in parsed.lines]
        kept = [x for x in lines if x.status != "info"]
        sha256 = hashlib.sha256(body).hexdigest()
        record = AuditRecord(
            actor=actor,
            action=RECON_STATEMENT_UPLOAD,
            outcome="created",
            target=statement_id,
            fingerprint=sha256,
            reach=(source.account_id,),
        )
        statement, replayed = await self.store.insert_statement(
            statement_id,
            source.id,
            sha256,
            msgspec.structs.replace(parsed, lines=lines),
            len(lines) - len(kept),
            record,
        )
        if replayed:
            await self.store.insert_audit(
                msgspec.structs.replace(record, outcome="replayed", target=statement.id)
            )
        return statement, replayed

    # --- runs -------------------------------------------------------------------------

    async def run(self, cmd: NewRun, actor: Actor) -> Run:
        """Match the source's lines in [from, to) against its account's
        journal entries of the same days. Raises ReconciliationNotFound,
        InvalidValue."""
        source = await self.source(cmd.source_id, actor)
        if not cmd.from_ < cmd.to or (cmd.to - cmd.from_).days > MAX_DAYS:
            raise errors.InvalidValue(
                f"from must be before to, at most {MAX_DAYS} days apart", field="to"
            )
        account = await self._account(source.account_id)
        window = window_of(cmd.from_, cmd.to, source.timezone)
        today = (await self.store.now()).astimezone(zone(source.timezone)).date()
        run_id = new_id("run_")
        record = AuditRecord(
            actor=actor,
            action=RECON_RUN,
            outcome="created",
            target=run_id,
            detail=source.id,
            reach=(source.account_id,),
        )
        return await self.store.reconcile(
            source,
            window,
            lambda loaded: lifecycle.decide(
                run_id, source, account, window, today, loaded, cmd.dry_run
            ),
            record,
            cmd.dry_run,
        )

    async def get_run(self, run_id: str, actor: Actor = DIRECT) -> Run:
        """Raises ReconciliationNotFound (for a run of a source out of
        `actor`'s reach too)."""
        found = await self.store.get_run(run_id)
        if found is None or not await self._reaches_source(actor, found.source_id):
            raise errors.ReconciliationNotFound(f"no run {run_id!r}", kind="run", id=run_id)
        return found

    async def matches(
        self, run_id: str, cursor: str | None, limit: int | None, actor: Actor = DIRECT
    ) -> Page[Match]:
        await self.get_run(run_id, actor)
        size = paging.page_size(limit, self.limits.default_page_size, self.limits.max_page_size)
        items = await self.store.run_matches(run_id, paging.decode_cursor(cursor), size + 1)
        return paging.page(items, size, lambda m: m.id)

    # --- exceptions -------------------------------------------------------------------

    async def exceptions(
        self,
        where: ExceptionFilter,
        cursor: str | None,
        limit: int | None,
        actor: Actor = DIRECT,
    ) -> Page[ReconException]:
        """The exceptions of sources `actor` reaches, oldest first. Raises
        InvalidValue, InvalidCursor."""
        for field, value, allowed in (
            ("class", where.cls, CLASSES),
            ("severity", where.severity, SEVERITIES),
            ("status", where.status, ("open", "resolved")),
        ):
            if value is not None and value not in allowed:
                raise errors.InvalidValue(
                    f"{field} must be one of {', '.join(allowed)}", field=field, value=value
                )
        check_text(where.source_id, "source_id", 128)
        size = paging.page_size(limit, self.limits.default_page_size, self.limits.max_page_size)
        accounts: dict[str, str | None] = {}

        async def fetch(after: str | None, count: int) -> list[ReconException]:
            rows = await self.store.list_exceptions(where, after, count)
            if actor.accounts is not None:
                for source_id in {r.source_id for r in rows} - accounts.keys():
                    found = await self.store.get_source(source_id)
                    accounts[source_id] = None if found is None else found.account_id
            return rows

        def keep(e: ReconException) -> bool:
            account_id = accounts.get(e.source_id)
            return actor.accounts is None or (
                account_id is not None and access.reaches(actor, account_id)
            )

        return await reach.filtered_page(fetch, keep, cursor, size, lambda e: e.id)

    async def get_exception(self, exception_id: str, actor: Actor = DIRECT) -> ReconException:
        """Raises ReconciliationNotFound (for one of a source out of
        `actor`'s reach too)."""
        found = await self.store.get_exception(exception_id)
        if found is None or not await self._reaches_source(actor, found.source_id):
            raise errors.ReconciliationNotFound(
                f"no exception {exception_id!r}", kind="exception", id=exception_id
            )
        return found

    async def open_counts(self) -> list[tuple[str, str, int]]:
        return await self.store.open_exception_counts()

    async def resolve(self, exception_id: str, cmd: ResolveRequest, actor: Actor) -> ReconException:
        """Close an open exception as accepted, matched (with the posting
        or line it belongs to) or written off (posting the difference to
        `offset_account_id`). Raises ReconciliationNotFound, InvalidValue,
        ExceptionResolved, and a posting's refusals."""
        found = await self.get_exception(exception_id, actor)
        if not cmd.note.strip():
            raise errors.InvalidValue("a resolution needs a note saying why", field="note")
        check_text(cmd.note, "note", 500)
        if found.status == "resolved":
            raise errors.ExceptionResolved(
                f"exception {found.id!r} is resolved already ({found.resolution})",
                exception_id=found.id,
                resolution=found.resolution,
            )
        source = await self.source(found.source_id)
        if cmd.resolution == "accepted":
            resolved = Resolved(resolution="accepted", note=cmd.note)
        elif cmd.resolution == "matched":
            account = await self._account(source.account_id)
            resolved = await resolution.manual_match(self.store, account, found, source, cmd)
        else:
            account = await self._account(source.account_id)
            resolved = await resolution.write_off(self.post, account, found, cmd, actor)
        record = AuditRecord(
            actor=actor,
            action=RECON_RESOLVE,
            outcome="updated",
            target=found.id,
            transaction_id=None,
            detail=cmd.resolution,
            reach=tuple(sorted({source.account_id, cmd.offset_account_id or source.account_id})),
        )
        done = await self.store.resolve_exception(found.id, resolved, record)
        if done is None:
            again = await self.get_exception(found.id, actor)
            if resolved.adjustment_transaction_id and (
                again.adjustment_transaction_id == resolved.adjustment_transaction_id
            ):
                return again  # a retry of the same write-off
            raise errors.ExceptionResolved(
                f"exception {found.id!r} was resolved meanwhile ({again.resolution})",
                exception_id=found.id,
                resolution=again.resolution,
            )
        return done


def window_of(start: date, end: date, timezone: str) -> Window:
    tz = zone(timezone)
    return Window(
        from_=start,
        to=end,
        start=datetime.combine(start, time(0), tz),
        end=datetime.combine(end, time(0), tz),
    )
