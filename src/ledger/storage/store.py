"""The SQL implementation of the engine's Store and PostingUnit protocols."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    String,
    and_,
    bindparam,
    case,
    column,
    func,
    or_,
    select,
    text,
    update,
    values,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger.engine import errors
from ledger.engine.model import (
    Account,
    AccountEntry,
    AccountFlags,
    AccountState,
    BalanceDelta,
    HeaderRef,
    IdempotencyKey,
    JournalFacts,
    NewAccount,
    NewEntry,
    PostedLeg,
    StoredPosting,
    Transaction,
    TransactionHeader,
    UnbalancedRecord,
)
from ledger.engine.ports import PostingUnit
from ledger.storage import dialect
from ledger.storage.retry import Attempt, KeyRace, RetryPolicy, run_transaction
from ledger.storage.tables import (
    IDEMPOTENCY_CONSTRAINT,
    RESOLVES_CONSTRAINT,
    REVERSES_CONSTRAINT,
    account_balances,
    accounts,
    entries,
    pending_expiry,
    transactions,
)

T = TypeVar("T")

_ACCOUNT_COLUMNS = (
    accounts.c.id,
    accounts.c.currency,
    accounts.c.scale,
    accounts.c.normal_side,
    accounts.c.debits_must_not_exceed_credits,
    accounts.c.credits_must_not_exceed_debits,
    accounts.c.metadata,
    accounts.c.created_at,
)

_debit_sum = func.coalesce(
    func.sum(case((entries.c.direction == "debit", entries.c.amount), else_=0)), 0
)
_credit_sum = func.coalesce(
    func.sum(case((entries.c.direction == "credit", entries.c.amount), else_=0)), 0
)

_BALANCE_COLUMNS = (
    account_balances.c.posted_debits,
    account_balances.c.posted_credits,
    account_balances.c.pending_debits,
    account_balances.c.pending_credits,
)

_LOCK_ACCOUNTS = (
    select(*_ACCOUNT_COLUMNS, *_BALANCE_COLUMNS)
    .join(account_balances, account_balances.c.account_id == accounts.c.id)
    .where(accounts.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(accounts.c.id)
    .with_for_update(of=account_balances)
)

_INSERT_HEADER = transactions.insert().returning(transactions.c.created_at)

_ENTRY_COLUMNS = (
    "account_id",
    "entry_id",
    "transaction_id",
    "leg",
    "direction",
    "amount",
    "currency",
    "created_at",
    "pending",
)


@functools.cache
def _insert_entries(n: int):
    """INSERT of n entries in one statement, with bind parameters
    `<column>_<i>`: built and compiled once per n, not once per posting."""
    return entries.insert().values(
        [
            {c: bindparam(f"{c}_{i}", type_=entries.c[c].type) for c in _ENTRY_COLUMNS}
            for i in range(n)
        ]
    )


_DELTA_FIELDS = ("d", "c", "pd", "pc")


@functools.cache
def _add_to_balances(n: int):
    """UPDATE account_balances ... FROM (VALUES (a_i, d_i, c_i, pd_i, pc_i),
    ...) for n accounts, built and compiled once per n."""
    changes = values(
        column("a_id", String), *(column(f, BigInteger) for f in _DELTA_FIELDS), name="v"
    ).data(
        [
            (
                bindparam(f"a_{i}", type_=String),
                *(bindparam(f"{f}_{i}", type_=BigInteger) for f in _DELTA_FIELDS),
            )
            for i in range(n)
        ]
    )
    b = account_balances.c
    return (
        update(account_balances)
        .where(b.account_id == changes.c.a_id)
        .values(
            posted_debits=b.posted_debits + changes.c.d,
            posted_credits=b.posted_credits + changes.c.c,
            pending_debits=b.pending_debits + changes.c.pd,
            pending_credits=b.pending_credits + changes.c.pc,
        )
    )


_ENQUEUE_EXPIRY = pending_expiry.insert()
_DEQUEUE_EXPIRY = pending_expiry.delete().where(
    pending_expiry.c.transaction_id == bindparam("resolves")
)


_reverser = transactions.alias("reverser")
_resolver = transactions.alias("resolver")
_TRANSACTION_BY_ID = (
    select(
        transactions.c.id,
        transactions.c.description,
        transactions.c.metadata,
        transactions.c.created_at,
        transactions.c.reverses,
        transactions.c.pending,
        transactions.c.timeout_seconds,
        transactions.c.resolves,
        transactions.c.resolution,
        _reverser.c.id.label("reversed_by"),
        _resolver.c.id.label("resolved_by"),
        _resolver.c.resolution.label("resolved_as"),
    )
    .select_from(
        transactions.outerjoin(_reverser, _reverser.c.reverses == transactions.c.id).outerjoin(
            _resolver, _resolver.c.resolves == transactions.c.id
        )
    )
    .where(transactions.c.id == bindparam("id"))
)

_LEGS_OF = (
    select(
        entries.c.account_id,
        entries.c.direction,
        entries.c.amount,
        entries.c.currency,
        entries.c.entry_id,
    )
    .where(entries.c.transaction_id == bindparam("id"))
    .order_by(entries.c.leg)
)


def _account(row: Any) -> Account:
    return Account(
        id=row.id,
        currency=row.currency,
        scale=row.scale,
        normal_side=row.normal_side,
        flags=AccountFlags(
            debits_must_not_exceed_credits=row.debits_must_not_exceed_credits,
            credits_must_not_exceed_debits=row.credits_must_not_exceed_debits,
        ),
        metadata=row.metadata,
        created_at=row.created_at,
    )


def _parse_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return None


async def _load_transaction(conn: AsyncConnection, transaction_id: str) -> Transaction | None:
    tid = _parse_uuid(transaction_id)
    if tid is None:
        return None
    row = (await conn.execute(_TRANSACTION_BY_ID, {"id": tid})).first()
    if row is None:
        return None
    legs = (await conn.execute(_LEGS_OF, {"id": tid})).all()
    pending_fields = {}
    if row.pending:
        pending_fields = {
            "pending": True,
            "state": row.resolved_as or "pending",
            "resolved_by": str(row.resolved_by) if row.resolved_by is not None else None,
            "expires_at": (
                row.created_at + timedelta(seconds=row.timeout_seconds)
                if row.timeout_seconds is not None
                else None
            ),
        }
    return Transaction(
        id=str(row.id),
        entries=[
            PostedLeg(leg.account_id, leg.direction, leg.amount, leg.currency, str(leg.entry_id))
            for leg in legs
        ],
        description=row.description,
        metadata=row.metadata,
        created_at=row.created_at,
        reverses=str(row.reverses) if row.reverses is not None else None,
        reversed_by=str(row.reversed_by) if row.reversed_by is not None else None,
        resolves=str(row.resolves) if row.resolves is not None else None,
        resolution=row.resolution,
        **pending_fields,
    )


def _state(row: Any) -> AccountState:
    return AccountState(
        _account(row),
        row.posted_debits,
        row.posted_credits,
        row.pending_debits,
        row.pending_credits,
    )


class SqlPostingUnit(PostingUnit):
    def __init__(self, conn: AsyncConnection, attempt: Attempt) -> None:
        self.conn = conn
        self.attempt = attempt

    @property
    def after_ambiguous(self) -> bool:
        return self.attempt.after_ambiguous

    async def find_by_key(self, key: IdempotencyKey) -> StoredPosting | None:
        row = (
            await self.conn.execute(
                select(transactions.c.id, transactions.c.fingerprint).where(
                    and_(
                        transactions.c.client_id == key.client_id,
                        transactions.c.idempotency_key == key.key,
                    )
                )
            )
        ).first()
        if row is None:
            return None
        transaction = await _load_transaction(self.conn, str(row.id))
        assert transaction is not None  # same snapshot as the row just read
        return StoredPosting(row.fingerprint, transaction)

    async def lock_accounts(self, account_ids: Sequence[str]) -> dict[str, AccountState]:
        rows = await self.conn.execute(_LOCK_ACCOUNTS, {"ids": list(account_ids)})
        return {row.id: _state(row) for row in rows}

    async def now(self) -> datetime:
        return (await self.conn.execute(select(func.now()))).scalar_one()

    async def get_transaction(self, transaction_id: str) -> Transaction | None:
        return await _load_transaction(self.conn, transaction_id)

    @property
    def first_attempt(self) -> bool:
        return self.attempt.number == 1

    async def insert_header(self, header: TransactionHeader) -> HeaderRef:
        transaction_id = dialect.new_transaction_id()
        self.attempt.wrote = True
        try:
            created_at = (
                await self.conn.execute(
                    _INSERT_HEADER,
                    {
                        "id": transaction_id,
                        "client_id": header.client_id,
                        "idempotency_key": header.idempotency_key,
                        "fingerprint": header.fingerprint,
                        "reverses": uuid.UUID(header.reverses) if header.reverses else None,
                        "description": header.description,
                        "metadata": header.metadata,
                        "pending": header.pending,
                        "timeout_seconds": header.timeout_seconds,
                        "resolves": uuid.UUID(header.resolves) if header.resolves else None,
                        "resolution": header.resolution,
                    },
                )
            ).scalar_one()
        except sa_exc.IntegrityError as exc:
            name = dialect.constraint_name(exc)
            if name == IDEMPOTENCY_CONSTRAINT:
                raise KeyRace() from exc
            if name == RESOLVES_CONSTRAINT:
                raise errors.AlreadyResolved(
                    f"pending transaction {header.resolves!r} was already resolved",
                    transaction_id=header.resolves,
                ) from exc
            if name == REVERSES_CONSTRAINT:
                raise errors.AlreadyReversed(
                    f"transaction {header.reverses!r} was already reversed",
                    transaction_id=header.reverses,
                ) from exc
            raise
        return HeaderRef(str(transaction_id), created_at)

    async def append_entries(
        self,
        ref: HeaderRef,
        header: TransactionHeader,
        new_entries: Sequence[NewEntry],
        deltas: Sequence[BalanceDelta],
    ) -> Transaction:
        transaction_id = uuid.UUID(ref.id)
        rows = [
            {
                "account_id": e.account_id,
                "entry_id": dialect.new_entry_id(),
                "transaction_id": transaction_id,
                "leg": e.leg,
                "direction": e.direction,
                "amount": e.amount,
                "currency": e.currency,
                "created_at": ref.created_at,
                "pending": e.pending,
            }
            for e in new_entries
        ]
        # One multi-row INSERT and one UPDATE ... FROM (VALUES ...): two
        # statements whatever the number of legs, each compiled once per size.
        if rows:  # a void writes no entries
            await self.conn.execute(
                _insert_entries(len(rows)),
                {f"{k}_{i}": v for i, row in enumerate(rows) for k, v in row.items()},
            )
        params = {}
        for i, d in enumerate(deltas):
            params[f"a_{i}"] = d.account_id
            params[f"d_{i}"], params[f"c_{i}"] = d.debits, d.credits
            params[f"pd_{i}"], params[f"pc_{i}"] = d.pending_debits, d.pending_credits
        if header.pending and header.timeout_seconds is not None:
            await self.conn.execute(
                _ENQUEUE_EXPIRY,
                {
                    "transaction_id": transaction_id,
                    "expires_at": ref.created_at + timedelta(seconds=header.timeout_seconds),
                },
            )
        if header.resolves is not None:
            await self.conn.execute(_DEQUEUE_EXPIRY, {"resolves": uuid.UUID(header.resolves)})
        try:
            await self.conn.execute(_add_to_balances(len(deltas)), params)
        except sa_exc.DBAPIError as exc:
            if dialect.is_numeric_overflow(exc):
                raise errors.BalanceOverflow(
                    "the posting would overflow an account's running totals"
                ) from exc
            raise
        return Transaction(
            id=ref.id,
            entries=[
                PostedLeg(
                    r["account_id"], r["direction"], r["amount"], r["currency"], str(r["entry_id"])
                )
                for r in rows
            ],
            description=header.description,
            metadata=header.metadata,
            created_at=ref.created_at,
            reverses=header.reverses,
            reversed_by=None,
            resolves=header.resolves,
            resolution=header.resolution,
            **(
                {
                    "pending": True,
                    "state": "pending",
                    "expires_at": (
                        ref.created_at + timedelta(seconds=header.timeout_seconds)
                        if header.timeout_seconds is not None
                        else None
                    ),
                }
                if header.pending
                else {}
            ),
        )


class SqlStore:
    """The engine's Store over an AsyncEngine. Every call, reads included, goes
    through the retry loop, so a connection the server dropped costs a retry,
    not an error."""

    def __init__(self, engine: AsyncEngine, policy: RetryPolicy) -> None:
        self.engine = engine
        self.policy = policy

    async def run(self, work: Callable[[PostingUnit], Awaitable[T]]) -> T:
        return await run_transaction(
            self.engine, self.policy, lambda conn, attempt: work(SqlPostingUnit(conn, attempt))
        )

    async def _read(
        self, fn: Callable[[AsyncConnection], Awaitable[T]], *, stale: bool = False
    ) -> T:
        opening = dialect.stale_read_statements(self.engine.dialect.name) if stale else []

        async def work(conn: AsyncConnection, _attempt: Attempt) -> T:
            for statement in opening:
                await conn.execute(text(statement))
            return await fn(conn)

        return await run_transaction(self.engine, self.policy, work)

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(select(1))
            return True
        except (sa_exc.DBAPIError, sa_exc.TimeoutError, OSError):
            return False

    async def insert_account(self, account_id: str, cmd: NewAccount) -> Account | None:
        async def work(conn: AsyncConnection) -> Account | None:
            row = (
                await conn.execute(
                    pg_insert(accounts)
                    .values(
                        id=account_id,
                        currency=cmd.currency,
                        scale=cmd.scale,
                        normal_side=cmd.normal_side,
                        debits_must_not_exceed_credits=cmd.flags.debits_must_not_exceed_credits,
                        credits_must_not_exceed_debits=cmd.flags.credits_must_not_exceed_debits,
                        metadata=cmd.metadata,
                    )
                    .on_conflict_do_nothing(index_elements=[accounts.c.id])
                    .returning(*_ACCOUNT_COLUMNS)
                )
            ).first()
            if row is None:
                return None
            await conn.execute(
                account_balances.insert().values(
                    account_id=account_id, posted_debits=0, posted_credits=0
                )
            )
            return _account(row)

        return await self._read(work)

    async def get_account(self, account_id: str) -> Account | None:
        async def work(conn: AsyncConnection) -> Account | None:
            row = (
                await conn.execute(select(*_ACCOUNT_COLUMNS).where(accounts.c.id == account_id))
            ).first()
            return None if row is None else _account(row)

        return await self._read(work)

    async def list_accounts(self, after: str | None, limit: int) -> list[Account]:
        async def work(conn: AsyncConnection) -> list[Account]:
            query = select(*_ACCOUNT_COLUMNS).order_by(accounts.c.id).limit(limit)
            if after is not None:
                query = query.where(accounts.c.id > after)
            return [_account(row) for row in await conn.execute(query)]

        return await self._read(work)

    async def get_transaction(
        self, transaction_id: str, *, stale: bool = False
    ) -> Transaction | None:
        return await self._read(lambda conn: _load_transaction(conn, transaction_id), stale=stale)

    async def cached_totals(
        self, account_id: str, *, stale: bool = False
    ) -> tuple[AccountState, datetime] | None:
        async def work(conn: AsyncConnection):
            row = (
                await conn.execute(
                    select(*_ACCOUNT_COLUMNS, *_BALANCE_COLUMNS, func.now().label("read_at"))
                    .join(account_balances, account_balances.c.account_id == accounts.c.id)
                    .where(accounts.c.id == account_id)
                )
            ).first()
            return None if row is None else (_state(row), row.read_at)

        return await self._read(work, stale=stale)

    async def journal_totals(self, account_id: str, as_of: datetime) -> AccountState | None:
        async def work(conn: AsyncConnection):
            row = (
                await conn.execute(select(*_ACCOUNT_COLUMNS).where(accounts.c.id == account_id))
            ).first()
            if row is None:
                return None
            posted = (
                await conn.execute(
                    select(_debit_sum, _credit_sum).where(
                        entries.c.account_id == account_id,
                        entries.c.created_at <= as_of,
                        entries.c.pending.is_(False),
                    )
                )
            ).one()
            # Held at `as_of`: pending entries created by then whose
            # transaction had no resolution yet at that time.
            held = (
                await conn.execute(
                    select(_debit_sum, _credit_sum)
                    .select_from(
                        entries.outerjoin(
                            _resolver, _resolver.c.resolves == entries.c.transaction_id
                        )
                    )
                    .where(
                        entries.c.account_id == account_id,
                        entries.c.created_at <= as_of,
                        entries.c.pending.is_(True),
                        or_(_resolver.c.id.is_(None), _resolver.c.created_at > as_of),
                    )
                )
            ).one()
            return AccountState(
                _account(row), int(posted[0]), int(posted[1]), int(held[0]), int(held[1])
            )

        return await self._read(work)

    async def account_entries(
        self, account_id: str, after: str | None, limit: int, *, stale: bool = False
    ) -> list[AccountEntry]:
        after_id = None
        if after is not None:
            after_id = _parse_uuid(after)
            if after_id is None:
                raise errors.InvalidCursor("cursor is not valid for this account's history")

        async def work(conn: AsyncConnection) -> list[AccountEntry]:
            query = (
                select(
                    entries,
                    _resolver.c.id.label("resolved_by"),
                    _resolver.c.resolution.label("resolved_as"),
                )
                .select_from(
                    entries.outerjoin(
                        _resolver,
                        and_(entries.c.pending, _resolver.c.resolves == entries.c.transaction_id),
                    )
                )
                .where(entries.c.account_id == account_id)
                .order_by(entries.c.entry_id)
                .limit(limit)
            )
            if after_id is not None:
                query = query.where(entries.c.entry_id > after_id)
            return [
                AccountEntry(
                    entry_id=str(r.entry_id),
                    transaction_id=str(r.transaction_id),
                    account_id=r.account_id,
                    direction=r.direction,
                    amount=r.amount,
                    currency=r.currency,
                    created_at=r.created_at,
                    pending=r.pending,
                    state=(r.resolved_as or "pending") if r.pending else "posted",
                    resolved_by=str(r.resolved_by) if r.resolved_by is not None else None,
                )
                for r in await conn.execute(query)
            ]

        return await self._read(work, stale=stale)

    async def due_for_expiry(self, limit: int) -> list[str]:
        async def work(conn: AsyncConnection) -> list[str]:
            rows = await conn.execute(
                select(pending_expiry.c.transaction_id)
                .where(pending_expiry.c.expires_at <= func.now())
                .order_by(pending_expiry.c.expires_at)
                .limit(limit)
            )
            return [str(r.transaction_id) for r in rows]

        return await self._read(work)

    async def journal_facts(self) -> JournalFacts:
        async def work(conn: AsyncConnection) -> JournalFacts:
            # Posted totals: every posted entry. Pending totals: pending
            # entries whose transaction has not been resolved.
            unresolved = and_(entries.c.pending, _resolver.c.id.is_(None))

            def when(condition, direction):
                return func.coalesce(
                    func.sum(
                        case(
                            (and_(condition, entries.c.direction == direction), entries.c.amount),
                            else_=0,
                        )
                    ),
                    0,
                )

            journal = (
                select(
                    entries.c.account_id,
                    when(entries.c.pending.is_(False), "debit").label("d"),
                    when(entries.c.pending.is_(False), "credit").label("c"),
                    when(unresolved, "debit").label("pd"),
                    when(unresolved, "credit").label("pc"),
                )
                .select_from(
                    entries.outerjoin(_resolver, _resolver.c.resolves == entries.c.transaction_id)
                )
                .group_by(entries.c.account_id)
                .subquery()
            )
            b = account_balances.c
            per_account = {
                r.account_id: (
                    r.cd,
                    r.cc,
                    r.cpd,
                    r.cpc,
                    int(r.d or 0),
                    int(r.c or 0),
                    int(r.pd or 0),
                    int(r.pc or 0),
                )
                for r in await conn.execute(
                    select(
                        accounts.c.id.label("account_id"),
                        # A missing balance row shows as -1: always drift.
                        func.coalesce(b.posted_debits, -1).label("cd"),
                        func.coalesce(b.posted_credits, -1).label("cc"),
                        func.coalesce(b.pending_debits, -1).label("cpd"),
                        func.coalesce(b.pending_credits, -1).label("cpc"),
                        journal.c.d,
                        journal.c.c,
                        journal.c.pd,
                        journal.c.pc,
                    ).select_from(
                        accounts.outerjoin(
                            account_balances, account_balances.c.account_id == accounts.c.id
                        ).outerjoin(journal, journal.c.account_id == accounts.c.id)
                    )
                )
            }
            unbalanced = [
                UnbalancedRecord(str(r.transaction_id), r.currency, int(r.d), int(r.c))
                for r in await conn.execute(
                    select(
                        entries.c.transaction_id,
                        entries.c.currency,
                        _debit_sum.label("d"),
                        _credit_sum.label("c"),
                    )
                    .group_by(entries.c.transaction_id, entries.c.currency)
                    .having(_debit_sum != _credit_sum)
                )
            ]
            short = [
                str(r.id)
                for r in await conn.execute(
                    select(transactions.c.id)
                    .select_from(
                        transactions.outerjoin(
                            entries, entries.c.transaction_id == transactions.c.id
                        )
                    )
                    .group_by(transactions.c.id, transactions.c.resolution)
                    .having(
                        # A void or expiry moves no entry; anything else needs two.
                        case(
                            (
                                transactions.c.resolution.in_(["voided", "expired"]),
                                func.count(entries.c.entry_id) > 0,
                            ),
                            else_=func.count(entries.c.entry_id) < 2,
                        )
                    )
                )
            ]
            mismatches = (
                await conn.execute(
                    select(func.count())
                    .select_from(entries.join(accounts, accounts.c.id == entries.c.account_id))
                    .where(entries.c.currency != accounts.c.currency)
                )
            ).scalar_one()
            per_currency = {
                r.currency: (int(r.d), int(r.c))
                for r in await conn.execute(
                    select(
                        entries.c.currency, _debit_sum.label("d"), _credit_sum.label("c")
                    ).group_by(entries.c.currency)
                )
            }
            counts = (
                await conn.execute(
                    select(
                        select(func.count()).select_from(accounts).scalar_subquery(),
                        select(func.count()).select_from(transactions).scalar_subquery(),
                        select(func.count()).select_from(entries).scalar_subquery(),
                    )
                )
            ).one()
            return JournalFacts(
                accounts=counts[0],
                transactions=counts[1],
                entries=counts[2],
                per_account=per_account,
                unbalanced=unbalanced,
                short_transactions=short,
                currency_mismatches=mismatches,
                per_currency=per_currency,
            )

        return await run_transaction(
            self.engine.execution_options(
                **dialect.snapshot_read_options(self.engine.dialect.name)
            ),
            self.policy,
            lambda conn, _attempt: work(conn),
        )
