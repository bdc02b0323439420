"""The engine's Store over SQLAlchemy: a thin facade. Each call runs one
database transaction through the retry loop and hands the connection to the
query that knows the SQL (`queries/`); postings run in a `SqlPostingUnit`
over the wire path chosen once, here (`posting/`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

import msgspec
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger.engine import errors
from ledger.engine.access import ApiKey, NewKey, StoredKey
from ledger.engine.audit import AuditEntry, AuditFilter, AuditRecord
from ledger.engine.currencies import CurrencyScale
from ledger.engine.model import (
    Account,
    AccountChange,
    AccountEntry,
    AccountState,
    FieldChange,
    NewAccount,
    Transaction,
)
from ledger.engine.ports import PostingUnit
from ledger.engine.verify import AccountSums, JournalFacts
from ledger.settings import Settings
from ledger.storage import dialect, failures
from ledger.storage.database import create_engine
from ledger.storage.journal_store import JournalMethods
from ledger.storage.posting.unit import SqlPostingUnit
from ledger.storage.posting.wire import FourMessages, TwoMessages, forget_prepared_on_rollback
from ledger.storage.queries import (
    account_update,
    accounts,
    audit,
    balances,
    currencies,
    expiry,
    history,
    hot,
    keys,
    operator,
    transactions,
    verify,
    webhooks,
)
from ledger.storage.reconcile.store import ReconciliationMethods
from ledger.storage.replica import Replica
from ledger.storage.report_store import ReportMethods
from ledger.storage.retry import Attempt, RetryPolicy, run_transaction
from ledger.storage.tables import CURRENCY_SCALE_CONSTRAINT
from ledger.storage.webhook_store import WebhookMethods

T = TypeVar("T")


class SqlStore(JournalMethods, WebhookMethods, ReconciliationMethods, ReportMethods):
    """Every call, reads included, goes through the retry loop, so a
    connection the server dropped costs a retry, not an error."""

    def __init__(
        self,
        engine: AsyncEngine,
        policy: RetryPolicy,
        *,
        batch_postings: bool | None = None,
        posting_engine: AsyncEngine | None = None,
        seal_lookback_seconds: float = 300.0,
        replica: Replica | None = None,
    ) -> None:
        self.engine = engine
        # Reads that feed no decision go there when there is one.
        self.replica = replica
        self.policy = policy
        self.seal_lookback_seconds = seal_lookback_seconds
        # `batch_postings` overrides the dialect's choice (the tests run the
        # four-message path on PostgreSQL too, as CockroachDB takes it).
        self.batch_postings = (
            dialect.batches_postings(engine.dialect.name)
            if batch_postings is None
            else batch_postings
        )
        self.wire = TwoMessages if self.batch_postings else FourMessages
        self.posting_settings = dialect.posting_settings(engine.dialect.name)
        # Two messages need autocommit connections: a pool of their own
        # (`posting_engine`, what `build_store` makes), or else the same pool
        # with each connection switched to autocommit while it posts, which
        # costs about 45 us of CPU per posting.
        self.posting_engine = posting_engine
        if self.batch_postings:
            if self.posting_engine is None:
                self.posting_engine = engine.execution_options(isolation_level="AUTOCOMMIT")
            forget_prepared_on_rollback(self.posting_engine)

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.replica is not None:
            await self.replica.dispose()
        if self.posting_engine is not None:
            await self.posting_engine.dispose()

    async def run(self, work: Callable[[PostingUnit], Awaitable[T]]) -> T:
        async def attempt(conn: AsyncConnection, attempt: Attempt) -> T:
            unit = SqlPostingUnit(conn, attempt, self.wire(conn, attempt, self.posting_settings))
            result = await work(unit)
            await unit.finish()
            return result

        engine = self.posting_engine if self.batch_postings else self.engine
        assert engine is not None
        return await run_transaction(engine, self.policy, attempt)

    async def now(self) -> datetime:
        async def read(conn: AsyncConnection) -> datetime:
            return (await conn.execute(select(func.now()))).scalar_one()

        return await self._read(read)

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(select(1))
            return True
        except (sa_exc.DBAPIError, sa_exc.TimeoutError, OSError):
            return False

    # --- accounts -------------------------------------------------------------------

    async def insert_account(
        self, account_id: str, cmd: NewAccount, record: AuditRecord
    ) -> Account | None:
        try:
            return await self._write(
                lambda conn: accounts.insert(conn, account_id, cmd),
                lambda made: record if made else None,
            )
        except sa_exc.IntegrityError as exc:
            # Another account fixed the currency's scale between the
            # engine's check and this insert.
            if failures.constraint_name(exc) != CURRENCY_SCALE_CONSTRAINT:
                raise
            raise errors.CurrencyScaleMismatch(
                f"{cmd.currency} has another scale in this ledger than {cmd.scale}",
                currency=cmd.currency,
                asked=cmd.scale,
            ) from exc

    async def currency_scale(self, code: str) -> int | None:
        return await self._read(lambda conn: currencies.scale_of(conn, code))

    async def currencies(self) -> list[CurrencyScale]:
        return await self._read(currencies.listing)

    async def get_account(self, account_id: str) -> Account | None:
        return await self._read(lambda conn: accounts.get(conn, account_id))

    async def list_accounts(
        self, after: str | None, limit: int, prefixes: tuple[str, ...] | None = None
    ) -> list[Account]:
        return await self._read(lambda conn: accounts.listing(conn, after, limit, prefixes))

    async def account_changes(
        self, account_id: str, after: str | None, limit: int
    ) -> list[AccountChange]:
        return await self._read(lambda conn: accounts.changes(conn, account_id, after, limit))

    async def change_account(
        self,
        account_id: str,
        plan: Callable[[AccountState], list[FieldChange]],
        record: AuditRecord,
    ) -> tuple[Account, bool] | None:
        async def change(conn: AsyncConnection):
            return await account_update.change(conn, account_id, plan, record.actor.reason)

        def row(done) -> AuditRecord | None:
            if done is None:
                return None
            outcome = "updated" if done[1] else "unchanged"
            return msgspec.structs.replace(record, outcome=outcome)

        done = await self._write(change, row)
        return None if done is None else (done[0], bool(done[1]))

    # --- hot accounts ----------------------------------------------------------------

    async def hot_accounts_due(self, min_deltas: int, max_age: timedelta, limit: int) -> list[str]:
        return await self._read(lambda conn: hot.due(conn, min_deltas, max_age, limit))

    async def compact_hot(self, account_id: str, grace: timedelta) -> int:
        """Fold the account's deltas created before now - `grace` into a new
        snapshot (see `hot.fold`); 0 when another process folded them first."""
        try:
            return await run_transaction(
                self.engine,
                self.policy,
                lambda conn, attempt: hot.fold(conn, attempt, account_id, grace),
            )
        except hot.LostFold:
            return 0

    # --- transactions, balances, history ---------------------------------------------

    async def get_transaction(
        self, transaction_id: str, *, stale: bool = False
    ) -> Transaction | None:
        return await self._read(lambda conn: transactions.load(conn, transaction_id), stale=stale)

    async def cached_totals(
        self, account_id: str, *, stale: bool = False
    ) -> tuple[AccountState, datetime] | None:
        return await self._read(lambda conn: balances.cached(conn, account_id), stale=stale)

    async def journal_totals(self, account_id: str, as_of: datetime) -> AccountState | None:
        return await self._read(lambda conn: balances.as_of(conn, account_id, as_of))

    async def account_entries(
        self, account_id: str, after: str | None, limit: int, *, stale: bool = False
    ) -> list[AccountEntry]:
        return await self._read(
            lambda conn: history.entries_of(conn, account_id, after, limit), stale=stale
        )

    async def due_for_expiry(self, limit: int) -> list[str]:
        return await self._read(lambda conn: expiry.due(conn, limit))

    async def journal_facts(self) -> JournalFacts:
        """Read in one snapshot."""
        return await self._snapshot_read(verify.journal_facts)

    async def account_sums(self, after: str | None, limit: int) -> dict[str, AccountSums]:
        """A page of accounts' cached and journal totals, in one read-only
        snapshot (nothing a verifier does can write): on the replica when
        there is one, so the verifier never loads the primary."""
        return await self._snapshot_read(
            lambda conn: verify.per_account(conn, after, limit), replica=True
        )

    # --- API keys and the audit trail -------------------------------------------------

    async def get_key(self, key_id: str) -> StoredKey | None:
        return await self._read(lambda conn: keys.get(conn, key_id))

    async def insert_key(
        self, key_id: str, secret_sha256: bytes, cmd: NewKey, record: AuditRecord
    ) -> ApiKey:
        return await self._write(lambda conn: keys.insert(conn, key_id, secret_sha256, cmd), record)

    async def insert_first_key(
        self, key_id: str, secret_sha256: bytes, cmd: NewKey, record: AuditRecord
    ) -> ApiKey | None:
        return await self._write(
            lambda conn: keys.insert_first(conn, key_id, secret_sha256, cmd),
            lambda made: record if made is not None else None,
        )

    async def list_keys(self, after: str | None, limit: int) -> list[ApiKey]:
        return await self._read(lambda conn: keys.listing(conn, after, limit))

    async def revoke_key(self, key_id: str, record: AuditRecord) -> ApiKey | None:
        async def revoke(conn: AsyncConnection) -> ApiKey | None:
            found = await keys.revoke(conn, key_id)
            if found is not None:
                await webhooks.pause_for_key(conn, key_id)
            return found

        return await self._write(revoke, lambda found: record if found is not None else None)

    async def insert_audit(self, record: AuditRecord) -> None:
        async def nothing_else(conn: AsyncConnection) -> None:
            return None

        await self._write(nothing_else, record)

    async def audit_rows(
        self, where: AuditFilter, after: tuple[datetime, str] | None, limit: int
    ) -> list[AuditEntry]:
        return await self._read(lambda conn: audit.listing(conn, where, after, limit))

    # --- for the operator tools --------------------------------------------------------

    async def transactions_by_keys(self, client_id: str, keys: list[str]) -> dict[str, list[str]]:
        return await self._read(lambda conn: operator.transactions_by_keys(conn, client_id, keys))

    async def sealing_lags(self, since: datetime) -> tuple[list[float], int]:
        return await self._read(lambda conn: operator.sealing_lags(conn, since))

    async def refresh_statistics(self) -> None:
        await self._read(operator.refresh_statistics)


def build_store(
    url: str, settings: Settings, *, role: str | None = None, application_name: str = "ledger"
) -> SqlStore:
    """The store, with its pools: one for everything on CockroachDB; on
    PostgreSQL a second one, of autocommit connections, for postings (see
    `dialect.batches_postings`), each of `settings.pool_size`."""
    policy = RetryPolicy(
        settings.retry_attempts, settings.retry_base_seconds, settings.retry_cap_seconds
    )
    engine = create_engine(url, settings, role=role, application_name=application_name)
    replica = None
    if settings.read_database_url:
        reads = create_engine(
            settings.read_database_url,
            settings,
            role=role,
            application_name=f"{application_name}-reads",
            isolation_level=dialect.replica_read_options(
                dialect.dialect_name(settings.read_database_url)
            )["isolation_level"],
        )
        replica = Replica(reads, fallback=settings.read_fallback)
    postings = None
    if dialect.batches_postings(dialect.dialect_name(url)):
        postings = create_engine(
            url, settings, role=role, application_name=application_name, autocommit=True
        )
    return SqlStore(
        engine,
        policy,
        posting_engine=postings,
        seal_lookback_seconds=settings.seal_lookback_seconds,
        replica=replica,
    )
