"""The store's side of reconciliation (`ReconciliationStore`), mixed into
`SqlStore`: each call one database transaction through the retry loop."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.engine import errors
from ledger.engine.audit import AuditRecord
from ledger.engine.reconcile.model import (
    Decision,
    ExceptionFilter,
    Line,
    Loaded,
    Match,
    NewSource,
    ParsedStatement,
    ReconException,
    Resolved,
    Run,
    Source,
    Statement,
    Window,
)
from ledger.storage import failures
from ledger.storage.methods import StoreMethods
from ledger.storage.queries.reconciliation import exceptions, runs
from ledger.storage.queries.reconciliation import queries as q
from ledger.storage.queries.reconciliation.tables import STATEMENT_SHA256

SOURCE_PKEY = "recon_sources_pkey"


class ReconciliationMethods(StoreMethods):
    async def insert_source(self, cmd: NewSource, record: AuditRecord) -> Source:
        try:
            return await self._write(lambda conn: q.insert_source(conn, cmd), record)
        except sa_exc.IntegrityError as exc:
            if failures.constraint_name(exc) != SOURCE_PKEY:
                raise
            raise errors.SourceExists(
                f"a reconciliation source {cmd.id!r} exists", source_id=cmd.id
            ) from exc

    async def get_source(self, source_id: str) -> Source | None:
        return await self._read(lambda conn: q.get_source(conn, source_id))

    async def list_sources(self, after: str | None, limit: int) -> list[Source]:
        return await self._read(lambda conn: q.list_sources(conn, after, limit))

    async def insert_statement(
        self,
        statement_id: str,
        source_id: str,
        sha256: str,
        parsed: ParsedStatement,
        skipped: int,
        record: AuditRecord,
    ) -> tuple[Statement, bool]:
        async def insert(conn: AsyncConnection) -> tuple[Statement, bool]:
            earlier = await q.statement_by_hash(conn, source_id, sha256)
            if earlier is not None:
                return earlier, True
            made = await q.insert_statement(conn, statement_id, source_id, sha256, parsed, skipped)
            return made, False

        def row(done: tuple[Statement, bool]) -> AuditRecord | None:
            return None if done[1] else record

        try:
            return await self._write(insert, row)
        except sa_exc.IntegrityError as exc:
            # The same bytes, uploaded at the same moment by another request.
            if failures.constraint_name(exc) != STATEMENT_SHA256:
                raise
            return await self._write(insert, row)

    async def get_line(self, source_id: str, line_id: str) -> Line | None:
        return await self._read(lambda conn: q.get_line(conn, source_id, line_id))

    async def reconcile(
        self,
        source: Source,
        window: Window,
        decide: Callable[[Loaded], Decision],
        record: AuditRecord,
        dry_run: bool,
    ) -> Run:
        async def write(conn: AsyncConnection) -> Run:
            decision = decide(await runs.load(conn, source, window))
            return await runs.write_run(conn, decision, source)

        return await self._write(write, record)

    async def get_run(self, run_id: str) -> Run | None:
        return await self._read(lambda conn: runs.get_run(conn, run_id))

    async def run_matches(self, run_id: str, after: str | None, limit: int) -> list[Match]:
        return await self._read(lambda conn: runs.run_matches(conn, run_id, after, limit))

    async def list_exceptions(
        self, where: ExceptionFilter, after: str | None, limit: int
    ) -> list[ReconException]:
        return await self._read(lambda conn: exceptions.list_exceptions(conn, where, after, limit))

    async def get_exception(self, exception_id: str) -> ReconException | None:
        return await self._read(lambda conn: exceptions.get_exception(conn, exception_id))

    async def resolve_exception(
        self, exception_id: str, resolved: Resolved, record: AuditRecord
    ) -> ReconException | None:
        async def work(conn: AsyncConnection) -> ReconException | None:
            found = await exceptions.get_exception(conn, exception_id)
            if found is None:
                return None
            return await exceptions.resolve(conn, exception_id, resolved, found.source_id)

        return await self._write(work, lambda done: record if done is not None else None)

    async def open_exception_counts(self) -> list[tuple[str, str, int]]:
        return await self._read(exceptions.open_counts)
