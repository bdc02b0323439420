"""The reconciliation port: sources, statements, runs and exceptions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from ledger.engine.audit import AuditRecord
from ledger.engine.ports.accounts import AccountStore
from ledger.engine.ports.posting import PostingStore
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


class ReconciliationStore(Protocol):
    async def insert_source(self, cmd: NewSource, audit: AuditRecord) -> Source:
        """Raises SourceExists."""
        ...

    async def get_source(self, source_id: str) -> Source | None: ...

    async def list_sources(self, after: str | None, limit: int) -> list[Source]: ...

    async def insert_statement(
        self,
        statement_id: str,
        source_id: str,
        sha256: str,
        parsed: ParsedStatement,
        skipped: int,
        audit: AuditRecord,
    ) -> tuple[Statement, bool]:
        """The statement, and whether these bytes were uploaded before (then
        nothing is written, and the earlier statement comes back)."""
        ...

    async def reconcile(
        self,
        source: Source,
        window: Window,
        decide: Callable[[Loaded], Decision],
        audit: AuditRecord,
        dry_run: bool,
    ) -> Run:
        """Read what the run needs and write what `decide` says, in one
        SERIALIZABLE transaction: two runs of one source at once cannot both
        open an exception for the same line (one of them is retried, and
        `decide` runs again on what the other wrote)."""
        ...

    async def get_run(self, run_id: str) -> Run | None: ...

    async def run_matches(self, run_id: str, after: str | None, limit: int) -> list[Match]: ...

    async def list_exceptions(
        self, where: ExceptionFilter, after: str | None, limit: int
    ) -> list[ReconException]: ...

    async def get_exception(self, exception_id: str) -> ReconException | None: ...

    async def get_line(self, source_id: str, line_id: str) -> Line | None: ...

    async def resolve_exception(
        self, exception_id: str, resolved: Resolved, audit: AuditRecord
    ) -> ReconException | None:
        """Mark it resolved (and store its manual match) if it is open;
        None when it is not open (any more)."""
        ...

    async def open_exception_counts(self) -> list[tuple[str, str, int]]:
        """(class, severity, open exceptions)."""
        ...

    async def now(self) -> datetime: ...


class ReconciliationCases(ReconciliationStore, AccountStore, PostingStore, Protocol):
    """What reconciliation's use cases read beside their own rows: a
    source's account, the transaction a resolution names, the time; and
    refusals' audit rows."""
