"""The SQL implementation of the engine's Store and PostingUnit protocols."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, TypeVar

import msgspec
import psycopg
from psycopg.rows import namedtuple_row
from psycopg.types.json import Jsonb
from sqlalchemy import (
    BigInteger,
    Interval,
    String,
    and_,
    bindparam,
    case,
    cast,
    column,
    event,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    true,
    update,
    values,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger.engine import errors
from ledger.engine.model import (
    Account,
    AccountChange,
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
    SnapshotCheck,
    StoredPosting,
    Transaction,
    TransactionHeader,
    UnbalancedRecord,
)
from ledger.engine.ports import PostingUnit
from ledger.storage import dialect
from ledger.storage.retry import Attempt, KeyRace, RetryPolicy, StatementsLost, run_transaction
from ledger.storage.tables import (
    IDEMPOTENCY_CONSTRAINT,
    RESOLVES_CONSTRAINT,
    REVERSES_CONSTRAINT,
    account_balances,
    account_changes,
    accounts,
    entries,
    hot_deltas,
    hot_snapshots,
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

# The accounts with the hotness of each, joined where an account is read.
_ACCOUNTS_WITH_HOT = accounts.join(account_balances, account_balances.c.account_id == accounts.c.id)


_HEADER_COLUMNS = (
    "id",
    "client_id",
    "idempotency_key",
    "fingerprint",
    "reverses",
    "description",
    "metadata",
    "pending",
    "timeout_seconds",
    "resolves",
    "resolution",
)


@functools.cache
def _open_posting(n: int):
    """A posting's first statement: insert its header and read its n
    accounts, with the balance rows of the ordinary ones locked in id order.

    The header goes in first in the same statement, so a used idempotency
    key (or a resolution already made) fails the statement before any rule
    is judged. A hot account's row is read (to learn that it is hot) but not
    locked, so postings to it do not queue behind each other. One row per
    account found, or one row of NULLs (but the header's time) when none is.

    The ids are n bind parameters, not one array: with `= ANY(array)` a
    prepared statement's generic plan scanned the whole balance table, and
    under SERIALIZABLE a scan takes a predicate lock on all of it, so every
    concurrent posting conflicted."""
    ids = [bindparam(f"id_{i}", type_=String) for i in range(n)]
    # created_at is the database's now(): the transaction's start.
    header = (
        transactions.insert()
        .values({c: bindparam(c, type_=transactions.c[c].type) for c in _HEADER_COLUMNS})
        .returning(transactions.c.created_at)
        .cte("header")
    )
    locked = (
        select(account_balances.c.account_id, *_BALANCE_COLUMNS)
        .where(account_balances.c.account_id.in_(ids), account_balances.c.hot.is_(False))
        .order_by(account_balances.c.account_id)
        .with_for_update()
        .cte("locked")
    )
    found = (
        select(
            *_ACCOUNT_COLUMNS,
            account_balances.c.hot,
            *(
                func.coalesce(locked.c[c.name], literal_column("0")).label(c.name)
                for c in _BALANCE_COLUMNS
            ),
        )
        .select_from(_ACCOUNTS_WITH_HOT.outerjoin(locked, locked.c.account_id == accounts.c.id))
        .where(accounts.c.id.in_(ids))
        .subquery("found")
    )
    return select(header.c.created_at.label("header_created_at"), *found.c).select_from(
        header.outerjoin(found, true())
    )


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


@functools.cache
def _insert_hot_deltas(n: int):
    """INSERT of n hot-account deltas in one statement, compiled once per n."""
    return hot_deltas.insert().values(
        [
            {c.name: bindparam(f"h{c.name}_{i}", type_=c.type) for c in hot_deltas.c}
            for i in range(n)
        ]
    )


@functools.cache
def _write_entries(entry_count: int, hot_count: int, balance_count: int = 0):
    """Everything a posting writes after its header, in one statement (one
    round trip): the balance UPDATE, with the entries' and the hot deltas'
    INSERTs riding along as CTEs. Any of the three may be absent (a void
    writes no entries; a posting among hot accounts updates no row)."""
    parts = []
    if entry_count:
        parts.append(_insert_entries(entry_count))
    if hot_count:
        parts.append(_insert_hot_deltas(hot_count))
    if balance_count:
        parts.append(_add_to_balances(balance_count))
    main, *riders = reversed(parts)
    for i, rider in enumerate(riders):
        main = main.add_cte(rider.cte(f"w{i}"))
    return main


_DRIVER_SQL: dict[tuple, str] = {}


async def _driver(
    conn: AsyncConnection, key: tuple, build: Callable[[], Any], params: dict, *, rows=False
) -> list | None:
    """Run a posting-path statement straight on psycopg, from its SQL text
    compiled once per dialect (`build()` makes the Core statement; `key`
    names it and its size).

    Profiles under load showed where a posting's CPU went: SQLAlchemy
    compiled the multi-row VALUES statements on every execution (their cache
    key leaves the rows out, so its compiled cache never hit), and its
    execution context and greenlet hop cost more per statement than
    psycopg's own work. The statements are still built with Core, once; they
    run here with psycopg's parameters and prepared statements. Errors come
    back as SQLAlchemy's, so the retry loop and the constraint checks see no
    difference, and a lost connection is invalidated so the pool drops it.
    """
    dialect_obj = conn.dialect
    cache_key = (type(dialect_obj), *key)
    sql = _DRIVER_SQL.get(cache_key)
    if sql is None:
        sql = _DRIVER_SQL[cache_key] = str(build().compile(dialect=dialect_obj))
    raw = (await conn.get_raw_connection()).driver_connection
    try:
        async with raw.cursor(row_factory=namedtuple_row) as cursor:
            await cursor.execute(sql, params)
            return await cursor.fetchall() if rows else None
    except psycopg.Error as exc:
        raise await _sa_error(conn, raw, sql, params, exc) from exc


async def _sa_error(
    conn: AsyncConnection, raw: psycopg.AsyncConnection, sql: str, params: Any, exc: psycopg.Error
) -> sa_exc.DBAPIError:
    """A psycopg error as SQLAlchemy's. A conflict (40001 is an
    OperationalError too) leaves the connection healthy; only a lost one is
    invalidated, so the pool drops it."""
    lost = raw.closed or dialect.connection_lost(exc)
    if lost:
        await conn.invalidate()
    return sa_exc.DBAPIError.instance(sql, params, exc, psycopg.Error, connection_invalidated=lost)


class _Prepared(NamedTuple):
    """A posting statement as a server-side prepared statement (see
    `dialect.batches_postings`)."""

    name: str
    prepare: str  # PREPARE <name> AS <the statement with $n parameters>
    order: tuple[str, ...]  # the parameters' names, in $n order
    execute: str  # EXECUTE <name>(, followed by the literals and )


_PREPARED: dict[tuple, _Prepared] = {}


def _prepared(conn: AsyncConnection, key: tuple, build: Callable[[], Any]) -> _Prepared:
    """The statement `build()` makes, compiled once per dialect with
    numbered parameters, under a name made of `key`."""
    cache_key = (type(conn.dialect), *key)
    found = _PREPARED.get(cache_key)
    if found is None:
        compiled = build().compile(dialect=type(conn.dialect)(paramstyle="numeric_dollar"))
        order = tuple(compiled.positiontup or ())
        name = "ledger_" + "_".join(str(part) for part in key)
        found = _PREPARED[cache_key] = _Prepared(
            name,
            f"PREPARE {name} AS {compiled.string}",
            order,
            f"EXECUTE {name}(",
        )
    return found


_BEGIN = "BEGIN ISOLATION LEVEL SERIALIZABLE"


def _literal(value: Any, escape: Callable[[bytes], bytes]) -> str:
    """`value` as an SQL literal for an EXECUTE argument (the prepared
    statement's parameter types cast it). Text goes through libpq's
    PQescapeLiteral; the other types the posting statements take render as
    themselves. psycopg's client-side binding does the same with a dumper
    lookup per value, which profiling showed cost about a tenth of a
    service's CPU on the posting path."""
    kind = type(value)
    if kind is str:
        if "\x00" in value:
            raise psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
        return escape(value.encode()).decode()
    if value is None:
        return "NULL"
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is uuid.UUID:
        return f"'{value}'"
    if kind is datetime:
        if value.tzinfo is None:
            raise TypeError("naive datetime in a posting statement")
        return f"'{value.isoformat()}'"
    if kind is Jsonb:
        return _literal(msgspec.json.encode(value.obj).decode(), escape)
    raise TypeError(f"no SQL literal for {kind.__name__}")


_PREPARED_KEY = "ledger_prepared"  # in the pool's info of each connection
_PREPARED_NAMES = "SELECT name FROM pg_prepared_statements WHERE name LIKE 'ledger\\_%'"


def _forget_prepared_on_rollback(engine: AsyncEngine) -> None:
    """psycopg answers ROLLBACK, on a connection where it has prepared
    statements of its own, with DEALLOCATE ALL, which drops the posting
    statements as well. So whenever a transaction is about to be rolled
    back, by the retry loop or by the pool's reset on return, the connection
    forgets which posting statements it had; the next posting prepares them
    again (one round trip, after a conflict or a refusal only)."""

    def forget(raw: Any, info: dict) -> None:
        if raw is not None and raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            info.pop(_PREPARED_KEY, None)

    @event.listens_for(engine.sync_engine, "rollback")
    def _rolling_back(conn) -> None:
        try:
            fairy = conn.connection
        except sa_exc.SQLAlchemyError:
            return  # closed or invalidated: its statements go with it
        forget(fairy.driver_connection, fairy.info)

    @event.listens_for(engine.sync_engine.pool, "reset")
    def _resetting(_dbapi_connection, record, _state) -> None:
        forget(record.driver_connection, record.info)


def _raise_overflow(exc: sa_exc.DBAPIError) -> None:
    """A running total past its column's range is the client's refusal."""
    if dialect.is_numeric_overflow(exc):
        raise errors.BalanceOverflow(
            "the posting would overflow an account's running totals"
        ) from exc


_ENQUEUE_EXPIRY = pending_expiry.insert()
_DEQUEUE_EXPIRY = pending_expiry.delete().where(
    pending_expiry.c.transaction_id == bindparam("resolves")
)


# --- hot accounts ---------------------------------------------------------------------
#
# A hot account's balance is its newest snapshot plus its deltas, read in one
# statement (so one consistent view on both engines). The compactor folds
# deltas into a new snapshot and deletes exactly the deltas it folded, in one
# transaction, so each delta is always in exactly one of the two places.

_HOT_TOTALS = ("posted_debits", "posted_credits", "pending_debits", "pending_credits")
_hs = hot_snapshots.c
_latest_snapshot = (
    select(*(_hs[c] for c in _HOT_TOTALS))
    .where(_hs.account_id == accounts.c.id)
    .order_by(_hs.seq.desc())
    .limit(1)
    .lateral("snap")
)
_delta_sums = (
    select(*(func.sum(hot_deltas.c[c]).label(c) for c in _HOT_TOTALS))
    .where(hot_deltas.c.account_id == accounts.c.id)
    .lateral("dsum")
)


def _current(column: str):
    """The account's current total: snapshot plus deltas when hot, else the
    balance row."""
    hot_value = _latest_snapshot.c[column] + func.coalesce(_delta_sums.c[column], 0)
    return cast(
        case((account_balances.c.hot, hot_value), else_=account_balances.c[column]), BigInteger
    ).label(column)


_WITH_CURRENT = _ACCOUNTS_WITH_HOT.outerjoin(_latest_snapshot, true()).outerjoin(
    _delta_sums, true()
)

_CURRENT_TOTALS = (
    select(
        *_ACCOUNT_COLUMNS,
        account_balances.c.hot,
        *(_current(c) for c in _HOT_TOTALS),
        func.now().label("read_at"),
    )
    .select_from(_WITH_CURRENT)
    .where(accounts.c.id == bindparam("account_id"))
)

# The opening snapshot of an account that becomes hot: its balance row as it
# stands (locked by the caller), as of now.
_OPEN_SNAPSHOT = hot_snapshots.insert().from_select(
    ["account_id", "seq", "kind", "watermark", *_HOT_TOTALS, "folded"],
    select(
        account_balances.c.account_id,
        select(func.coalesce(func.max(_hs.seq), 0) + 1)
        .where(_hs.account_id == bindparam("account_id"))
        .scalar_subquery(),
        literal("open"),
        func.now(),
        *(account_balances.c[c] for c in _HOT_TOTALS),
        literal(0),
    ).where(account_balances.c.account_id == bindparam("account_id")),
)

_PREVIOUS_SNAPSHOT = (
    select(_hs.seq, _hs.watermark, func.now().label("now"))
    .where(_hs.account_id == bindparam("account_id"))
    .order_by(_hs.seq.desc())
    .limit(1)
)

# The fold: delete the deltas created at or before the watermark, and append
# a snapshot of the previous one plus exactly the deleted rows (RETURNING,
# not a separate read: what is summed is what was removed). `late_from`
# records the oldest folded delta that the previous snapshot's watermark
# already covered: a transaction that committed after that snapshot was
# taken, which makes that snapshot (and older ones) inexact for `as_of`.
_gone = (
    hot_deltas.delete()
    .where(
        hot_deltas.c.account_id == bindparam("account_id"),
        hot_deltas.c.created_at <= bindparam("watermark"),
    )
    .returning(hot_deltas.c.created_at, *(hot_deltas.c[c] for c in _HOT_TOTALS))
    .cte("gone")
)
_prev = hot_snapshots.alias("prev")
_FOLD = (
    hot_snapshots.insert()
    .from_select(
        ["account_id", "seq", "kind", "watermark", *_HOT_TOTALS, "folded", "late_from"],
        select(
            _prev.c.account_id,
            _prev.c.seq + 1,
            bindparam("kind", type_=String),
            bindparam("watermark"),
            *(
                cast(_prev.c[c] + func.coalesce(func.sum(_gone.c[c]), 0), BigInteger)
                for c in _HOT_TOTALS
            ),
            func.count(_gone.c.created_at),
            func.min(case((_gone.c.created_at <= _prev.c.watermark, _gone.c.created_at))),
        )
        .select_from(_prev.outerjoin(_gone, true()))
        .where(_prev.c.account_id == bindparam("account_id"), _prev.c.seq == bindparam("seq"))
        .group_by(
            _prev.c.account_id,
            _prev.c.seq,
            _prev.c.watermark,
            *(_prev.c[c] for c in _HOT_TOTALS),
        )
        .having(func.count(_gone.c.created_at) >= bindparam("min_folded")),
    )
    .add_cte(_gone)
    .returning(hot_snapshots.c.folded, *(hot_snapshots.c[c] for c in _HOT_TOTALS))
)

_DUE_FOR_COMPACTION = (
    select(hot_deltas.c.account_id)
    .group_by(hot_deltas.c.account_id)
    .having(
        or_(
            func.count() >= bindparam("min_deltas"),
            func.min(hot_deltas.c.created_at) <= func.now() - bindparam("max_age", type_=Interval),
        )
    )
    .limit(bindparam("limit"))
)

# The newest snapshot `as_of` may start from: a fold of this hot period (not
# the opening one, taken from a balance row), at or before the time asked,
# that no late commit made inexact, neither one folded later nor one still
# among the deltas.
_later = hot_snapshots.alias("later")
_opening = hot_snapshots.alias("opening")
_exact_snapshot = and_(
    _hs.account_id == bindparam("account_id"),
    _hs.kind == "compact",
    _hs.seq
    > select(func.coalesce(func.max(_opening.c.seq), 0))
    .where(_opening.c.account_id == bindparam("account_id"), _opening.c.kind == "open")
    .scalar_subquery(),
    ~exists().where(
        _later.c.account_id == bindparam("account_id"),
        _later.c.seq > _hs.seq,
        _later.c.late_from <= _hs.watermark,
    ),
    ~exists().where(
        hot_deltas.c.account_id == bindparam("account_id"),
        hot_deltas.c.created_at <= _hs.watermark,
    ),
)
_SNAPSHOT_AS_OF = (
    select(_hs.seq, _hs.watermark, _hs.posted_debits, _hs.posted_credits)
    .where(_exact_snapshot, _hs.watermark <= bindparam("as_of"))
    .order_by(_hs.watermark.desc(), _hs.seq.desc())
    .limit(1)
)


_FAR_FUTURE = datetime(9999, 12, 31, tzinfo=UTC)


def _posted_between(account_id: str, after: datetime | None, until: datetime | None):
    """Posted debit and credit sums of the account's entries created in
    (after, until]. Entry ids are time-ordered by creation time, so the
    bounds are also a primary-key range: no scan of older history."""
    conditions = [entries.c.account_id == account_id, entries.c.pending.is_(False)]
    if after is not None:
        conditions += [
            entries.c.entry_id >= dialect.entry_id_floor(after),
            entries.c.created_at > after,
        ]
    if until is not None:
        conditions += [
            entries.c.entry_id < dialect.entry_id_ceiling(until),
            entries.c.created_at <= until,
        ]
    return select(_debit_sum, _credit_sum).where(*conditions)


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
        hot=getattr(row, "hot", False),
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


class _LostFold(Exception):
    """Another compactor appended the snapshot this one was about to."""


class SqlPostingUnit(PostingUnit):
    """One attempt of one posting transaction.

    Batched (PostgreSQL, see `dialect.batches_postings`): the connection is
    in autocommit mode and the unit sends BEGIN and COMMIT itself, folded
    into its first and last messages. The header insert and the locking read
    go as `BEGIN; EXECUTE open(...)`; the writes after the engine's checks
    are held back and go with COMMIT in one message (`finish`). A statement
    the unit sends through SQLAlchemy (a lookup on a later attempt, the
    clock) first begins the transaction and sends what is held, so the order
    of statements is the engine's order.
    """

    def __init__(self, conn: AsyncConnection, attempt: Attempt, *, batched: bool = False) -> None:
        self.conn = conn
        self.attempt = attempt
        self.batched = batched
        self.begun = False
        self.held: list[tuple[_Prepared, dict]] = []
        self._raw: psycopg.AsyncConnection | None = None

    @property
    def after_ambiguous(self) -> bool:
        return self.attempt.after_ambiguous

    async def _batch(
        self, statement: tuple[_Prepared, dict] | None = None, *, commit=False, rows=False
    ) -> list | None:
        """One message: BEGIN unless sent already, the held writes,
        `statement`, COMMIT when `commit`. Returns `statement`'s rows when
        `rows`."""
        if self._raw is None:
            self._raw = (await self.conn.get_raw_connection()).driver_connection
        raw = self._raw
        parts = [] if self.begun else [_BEGIN]
        todo = [*self.held, statement] if statement is not None else self.held
        self.held = []
        escape = psycopg.pq.Escaping(raw.pgconn).escape_literal
        for prepared, params in todo:
            await self._prepare(raw, prepared)
            literals = ", ".join([_literal(params[name], escape) for name in prepared.order])
            parts.append(f"{prepared.execute}{literals})")
        if commit:
            parts.append("COMMIT")
            self.attempt.committing = True
        self.begun = True
        sql = "; ".join(parts)
        try:
            async with raw.cursor(row_factory=namedtuple_row) as cursor:
                # No parameters: psycopg sends the text as one simple query.
                await cursor.execute(sql, prepare=False)
                if not rows:
                    return None
                while cursor.nextset():
                    pass  # to the last statement's result
                return await cursor.fetchall()
        except psycopg.errors.InvalidSqlStatementName as exc:
            self.conn.info.pop(_PREPARED_KEY, None)
            raise StatementsLost() from exc
        except psycopg.Error as exc:
            raise await _sa_error(self.conn, raw, sql, None, exc) from exc

    async def _prepare(self, raw: psycopg.AsyncConnection, prepared: _Prepared) -> None:
        """PREPARE on this connection unless it has the statement already.
        Which it has is kept in the pool's info for the connection, and
        asked of the server when that was forgotten (a new connection, or a
        rollback that may have deallocated them)."""
        done = self.conn.info.get(_PREPARED_KEY)
        sql = prepared.prepare
        try:
            if done is None:
                sql = _PREPARED_NAMES
                found = await (await raw.execute(sql)).fetchall()
                done = self.conn.info[_PREPARED_KEY] = {name for (name,) in found}
            if prepared.name not in done:
                sql = prepared.prepare
                await raw.execute(sql)
                done.add(prepared.name)
        except psycopg.Error as exc:
            raise await _sa_error(self.conn, raw, sql, None, exc) from exc

    async def _in_transaction(self) -> None:
        """Batched: before a statement sent through SQLAlchemy, BEGIN and
        the held writes."""
        if self.batched and (not self.begun or self.held):
            await self._batch()

    async def finish(self) -> None:
        """Batched: the held writes and COMMIT, in one message."""
        if not self.batched or not (self.begun or self.held):
            return
        try:
            await self._batch(commit=True)
        except sa_exc.DBAPIError as exc:
            _raise_overflow(exc)
            raise

    async def find_by_key(self, key: IdempotencyKey) -> StoredPosting | None:
        await self._in_transaction()
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

    async def now(self) -> datetime:
        await self._in_transaction()
        return (await self.conn.execute(select(func.now()))).scalar_one()

    async def get_transaction(self, transaction_id: str) -> Transaction | None:
        await self._in_transaction()
        return await _load_transaction(self.conn, transaction_id)

    @property
    def first_attempt(self) -> bool:
        return self.attempt.number == 1

    async def open_posting(
        self, header: TransactionHeader, account_ids: Sequence[str]
    ) -> tuple[HeaderRef, dict[str, AccountState]]:
        transaction_id = dialect.new_transaction_id()
        self.attempt.wrote = True
        n = len(account_ids)
        params = {
            "id": transaction_id,
            "client_id": header.client_id,
            "idempotency_key": header.idempotency_key,
            "fingerprint": header.fingerprint,
            "reverses": uuid.UUID(header.reverses) if header.reverses else None,
            "description": header.description,
            "metadata": Jsonb(header.metadata),
            "pending": header.pending,
            "timeout_seconds": header.timeout_seconds,
            "resolves": uuid.UUID(header.resolves) if header.resolves else None,
            "resolution": header.resolution,
            **{f"id_{i}": a for i, a in enumerate(account_ids)},
        }
        try:
            if self.batched:
                statement = _prepared(self.conn, ("open", n), lambda: _open_posting(n))
                rows = await self._batch((statement, params), rows=True)
            else:
                rows = await _driver(
                    self.conn, ("open", n), lambda: _open_posting(n), params, rows=True
                )
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
        assert rows is not None
        ref = HeaderRef(str(transaction_id), rows[0].header_created_at)
        return ref, {row.id: _state(row) for row in rows if row.id is not None}

    async def append_entries(
        self,
        ref: HeaderRef,
        header: TransactionHeader,
        new_entries: Sequence[NewEntry],
        deltas: Sequence[BalanceDelta],
        hot: Sequence[BalanceDelta] = (),
    ) -> Transaction:
        transaction_id = uuid.UUID(ref.id)
        rows = [
            {
                "account_id": e.account_id,
                "entry_id": dialect.new_entry_id(ref.created_at),
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
        # One statement whatever the number of legs: the balance UPDATE ...
        # FROM (VALUES ...) with the entries' and hot deltas' multi-row
        # INSERTs as CTEs, compiled once per size. A hot account's row is
        # neither locked nor updated: it gets one delta row, which the
        # compactor folds.
        written = {f"{k}_{i}": v for i, row in enumerate(rows) for k, v in row.items()}
        for i, d in enumerate(hot):
            written[f"haccount_id_{i}"] = d.account_id
            written[f"htransaction_id_{i}"] = transaction_id
            written[f"hcreated_at_{i}"] = ref.created_at
            written[f"hposted_debits_{i}"], written[f"hposted_credits_{i}"] = d.debits, d.credits
            written[f"hpending_debits_{i}"] = d.pending_debits
            written[f"hpending_credits_{i}"] = d.pending_credits
        for i, d in enumerate(deltas):
            written[f"a_{i}"] = d.account_id
            written[f"d_{i}"], written[f"c_{i}"] = d.debits, d.credits
            written[f"pd_{i}"], written[f"pc_{i}"] = d.pending_debits, d.pending_credits
        sizes = (len(rows), len(hot), len(deltas))
        expiry = None
        if header.pending and header.timeout_seconds is not None:
            expiry = (
                ("enqueue",),
                lambda: _ENQUEUE_EXPIRY,
                {
                    "transaction_id": transaction_id,
                    "expires_at": ref.created_at + timedelta(seconds=header.timeout_seconds),
                },
            )
        dequeue = None
        if header.resolves is not None:
            dequeue = (
                ("dequeue",),
                lambda: _DEQUEUE_EXPIRY,
                {"resolves": uuid.UUID(header.resolves)},
            )
        if self.batched:
            # Held for the COMMIT message (`finish`); an overflow is refused there.
            if written:
                statement = _prepared(self.conn, ("write", *sizes), lambda: _write_entries(*sizes))
                self.held.append((statement, written))
            for key, build, params in filter(None, (expiry, dequeue)):
                self.held.append((_prepared(self.conn, key, build), params))
            return self._transaction(ref, header, rows)
        if written:
            try:
                await _driver(self.conn, ("write", *sizes), lambda: _write_entries(*sizes), written)
            except sa_exc.DBAPIError as exc:
                _raise_overflow(exc)
                raise
        for _key, build, params in filter(None, (expiry, dequeue)):
            await self.conn.execute(build(), params)
        return self._transaction(ref, header, rows)

    @staticmethod
    def _transaction(ref: HeaderRef, header: TransactionHeader, rows: list[dict]) -> Transaction:
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

    def __init__(
        self,
        engine: AsyncEngine,
        policy: RetryPolicy,
        *,
        batch_postings: bool | None = None,
        posting_engine: AsyncEngine | None = None,
    ) -> None:
        self.engine = engine
        self.policy = policy
        # `batch_postings` overrides the dialect's choice (the tests run the
        # four-message path on PostgreSQL too, as CockroachDB takes it).
        self.batch_postings = (
            dialect.batches_postings(engine.dialect.name)
            if batch_postings is None
            else batch_postings
        )
        # Batched postings need autocommit connections: a pool of their own
        # (`posting_engine`, what `app.build_store` makes), or else the same
        # pool with each connection switched to autocommit while it posts,
        # which costs about 45 us of CPU per posting.
        self.posting_engine = posting_engine
        if self.batch_postings:
            if self.posting_engine is None:
                self.posting_engine = engine.execution_options(isolation_level="AUTOCOMMIT")
            _forget_prepared_on_rollback(self.posting_engine)

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.posting_engine is not None:
            await self.posting_engine.dispose()

    async def run(self, work: Callable[[PostingUnit], Awaitable[T]]) -> T:
        if not self.batch_postings:
            return await run_transaction(
                self.engine, self.policy, lambda conn, attempt: work(SqlPostingUnit(conn, attempt))
            )

        async def batched(conn: AsyncConnection, attempt: Attempt) -> T:
            unit = SqlPostingUnit(conn, attempt, batched=True)
            result = await work(unit)
            await unit.finish()
            return result

        assert self.posting_engine is not None
        return await run_transaction(self.posting_engine, self.policy, batched)

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
                    account_id=account_id, posted_debits=0, posted_credits=0, hot=cmd.hot
                )
            )
            if cmd.hot:
                await conn.execute(_OPEN_SNAPSHOT, {"account_id": account_id})
            return msgspec.structs.replace(_account(row), hot=cmd.hot)

        return await self._read(work)

    async def get_account(self, account_id: str) -> Account | None:
        async def work(conn: AsyncConnection) -> Account | None:
            row = (
                await conn.execute(
                    select(*_ACCOUNT_COLUMNS, account_balances.c.hot)
                    .select_from(_ACCOUNTS_WITH_HOT)
                    .where(accounts.c.id == account_id)
                )
            ).first()
            return None if row is None else _account(row)

        return await self._read(work)

    async def list_accounts(self, after: str | None, limit: int) -> list[Account]:
        async def work(conn: AsyncConnection) -> list[Account]:
            query = (
                select(*_ACCOUNT_COLUMNS, account_balances.c.hot)
                .select_from(_ACCOUNTS_WITH_HOT)
                .order_by(accounts.c.id)
                .limit(limit)
            )
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
            row = (await conn.execute(_CURRENT_TOTALS, {"account_id": account_id})).first()
            return None if row is None else (_state(row), row.read_at)

        return await self._read(work, stale=stale)

    async def journal_totals(self, account_id: str, as_of: datetime) -> AccountState | None:
        async def work(conn: AsyncConnection):
            row = (
                await conn.execute(
                    select(*_ACCOUNT_COLUMNS, account_balances.c.hot)
                    .select_from(_ACCOUNTS_WITH_HOT)
                    .where(accounts.c.id == account_id)
                )
            ).first()
            if row is None:
                return None
            # A hot account: its newest exact snapshot before `as_of`, plus
            # the journal after its watermark. Otherwise the whole journal.
            base, after = (0, 0), None
            if row.hot:
                snapshot = (
                    await conn.execute(_SNAPSHOT_AS_OF, {"account_id": account_id, "as_of": as_of})
                ).first()
                if snapshot is not None:
                    base = (snapshot.posted_debits, snapshot.posted_credits)
                    after = snapshot.watermark
            since = (await conn.execute(_posted_between(account_id, after, as_of))).one()
            posted = (base[0] + int(since[0]), base[1] + int(since[1]))
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
                        # Bare, so the partial index entries_pending serves it.
                        entries.c.pending,
                        or_(_resolver.c.id.is_(None), _resolver.c.created_at > as_of),
                    )
                )
            ).one()
            return AccountState(_account(row), posted[0], posted[1], int(held[0]), int(held[1]))

        return await self._read(work)

    async def set_hot(self, account_id: str, hot: bool) -> tuple[Account, bool] | None:
        """Make the account hot or ordinary; None if there is no such account.

        Returns the account and whether it changed. One transaction: it locks
        the balance row (postings to an ordinary account lock it too, and
        every posting reads whether the account is hot, so a posting either
        commits before the change or sees it), then:
        - to hot: appends an opening snapshot of the row's totals;
        - to ordinary: folds every delta into a closing snapshot and writes
          its totals into the row;
        and records the change.
        """

        async def work(conn: AsyncConnection, attempt: Attempt) -> tuple[Account, bool] | None:
            row = (
                await conn.execute(
                    select(account_balances.c.hot)
                    .where(account_balances.c.account_id == account_id)
                    .with_for_update()
                )
            ).first()
            if row is None:
                return None
            changed = row.hot != hot
            if changed:
                attempt.wrote = True
                params = {"account_id": account_id}
                if hot:
                    await conn.execute(_OPEN_SNAPSHOT, params)
                    await conn.execute(
                        update(account_balances)
                        .where(account_balances.c.account_id == account_id)
                        .values(hot=True)
                    )
                else:
                    prev = (await conn.execute(_PREVIOUS_SNAPSHOT, params)).one()
                    closed = (
                        await conn.execute(
                            _FOLD,
                            {
                                **params,
                                "seq": prev.seq,
                                "kind": "close",
                                "watermark": max(prev.watermark, prev.now),
                                "min_folded": 0,
                            },
                        )
                    ).one()
                    await conn.execute(
                        update(account_balances)
                        .where(account_balances.c.account_id == account_id)
                        .values(hot=False, **{c: getattr(closed, c) for c in _HOT_TOTALS})
                    )
                await conn.execute(
                    account_changes.insert().values(
                        account_id=account_id,
                        change_id=dialect.new_entry_id(),
                        field="hot",
                        old_value=msgspec.json.encode(row.hot).decode(),
                        new_value=msgspec.json.encode(hot).decode(),
                    )
                )
            account = (
                await conn.execute(
                    select(*_ACCOUNT_COLUMNS, account_balances.c.hot)
                    .select_from(_ACCOUNTS_WITH_HOT)
                    .where(accounts.c.id == account_id)
                )
            ).one()
            return _account(account), changed

        return await run_transaction(self.engine, self.policy, work)

    async def hot_accounts_due(self, min_deltas: int, max_age: timedelta, limit: int) -> list[str]:
        async def work(conn: AsyncConnection) -> list[str]:
            rows = await conn.execute(
                _DUE_FOR_COMPACTION,
                {"min_deltas": min_deltas, "max_age": max_age, "limit": limit},
            )
            return [r.account_id for r in rows]

        return await self._read(work)

    async def compact_hot(self, account_id: str, grace: timedelta) -> int:
        """Fold the account's deltas created before now - `grace` into a new
        snapshot; returns how many were folded (0: nothing to fold, or another
        process folded them first).

        Correct with concurrent postings and compactors on both engines:
        - A posting that has not committed is invisible here, whatever its
          creation time: its delta is not deleted, stays, and is folded by a
          later compaction. Nothing is lost, and because the snapshot adds
          exactly the rows this DELETE removed (RETURNING), nothing is counted
          twice. On CockroachDB a posting cannot commit "under" this read
          either: a write below a timestamp another transaction has read is
          pushed above it, so it too lands after this snapshot.
        - Two compactors build on the same previous snapshot and both try to
          append seq + 1: the primary key lets one commit. The other fails
          (a unique violation, or a serialization failure on its DELETE) and
          folds nothing.
        - The grace only keeps `as_of` fast: a posting that commits after a
          snapshot whose watermark covers its creation time would make that
          snapshot inexact (the next fold records it in `late_from`, and
          `as_of` skips such snapshots). Waiting `grace` makes that rare.
        """

        async def work(conn: AsyncConnection, attempt: Attempt) -> int:
            params = {"account_id": account_id}
            prev = (await conn.execute(_PREVIOUS_SNAPSHOT, params)).first()
            if prev is None:
                return 0
            attempt.wrote = True
            try:
                row = (
                    await conn.execute(
                        _FOLD,
                        {
                            **params,
                            "seq": prev.seq,
                            "kind": "compact",
                            # Watermarks never go back, whatever the clocks.
                            "watermark": max(prev.watermark, prev.now - grace),
                            "min_folded": 1,
                        },
                    )
                ).first()
            except sa_exc.IntegrityError as exc:
                if dialect.constraint_name(exc) == "hot_snapshots_pkey":
                    raise _LostFold() from exc
                raise
            return 0 if row is None else row.folded

        try:
            return await run_transaction(self.engine, self.policy, work)
        except _LostFold:
            return 0  # another compactor appended this snapshot first

    async def account_changes(
        self, account_id: str, after: str | None, limit: int
    ) -> list[AccountChange]:
        after_id = None
        if after is not None:
            after_id = _parse_uuid(after)
            if after_id is None:
                raise errors.InvalidCursor("cursor is not valid for this account's changes")

        async def work(conn: AsyncConnection) -> list[AccountChange]:
            query = (
                select(account_changes)
                .where(account_changes.c.account_id == account_id)
                .order_by(account_changes.c.change_id)
                .limit(limit)
            )
            if after_id is not None:
                query = query.where(account_changes.c.change_id > after_id)
            return [
                AccountChange(
                    change_id=str(r.change_id),
                    account_id=r.account_id,
                    changed_at=r.changed_at,
                    field=r.field,
                    old_value=msgspec.json.decode(r.old_value),
                    new_value=msgspec.json.decode(r.new_value),
                )
                for r in await conn.execute(query)
            ]

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

    async def refresh_statistics(self) -> None:
        """ANALYZE the account tables (needs the owner). Right after many
        accounts are created the planner has no statistics and may read the
        balance rows with a bitmap scan, whose coarse SERIALIZABLE predicate
        locks make concurrent postings conflict (a benchmark on a freshly
        seeded database measured 0.9 retries per commit instead of 0.02).
        Autovacuum gets there by itself after a while; a benchmark that has
        just seeded cannot wait."""

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(text("ANALYZE accounts"))
            await conn.execute(text("ANALYZE account_balances"))

        await self._read(work)

    async def transactions_by_keys(self, client_id: str, keys: list[str]) -> dict[str, list[str]]:
        """key -> the ids of the transactions under it, for those of `keys`
        in the journal (audits of what a load run was acknowledged; more than
        one id would be a posting written twice)."""

        async def work(conn: AsyncConnection) -> dict[str, list[str]]:
            found: dict[str, list[str]] = {}
            for start in range(0, len(keys), 5000):
                rows = await conn.execute(
                    select(transactions.c.idempotency_key, transactions.c.id).where(
                        transactions.c.client_id == client_id,
                        transactions.c.idempotency_key.in_(keys[start : start + 5000]),
                    )
                )
                for r in rows:
                    found.setdefault(r.idempotency_key, []).append(str(r.id))
            return found

        return await self._read(work)

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
                        # What a balance read returns (snapshot plus deltas
                        # for a hot account); a missing balance row or
                        # snapshot shows as -1: always drift.
                        *(
                            func.coalesce(_current(c), -1).label(label)
                            for c, label in zip(
                                _HOT_TOTALS, ("cd", "cc", "cpd", "cpc"), strict=True
                            )
                        ),
                        journal.c.d,
                        journal.c.c,
                        journal.c.pd,
                        journal.c.pc,
                    ).select_from(
                        accounts.outerjoin(
                            account_balances, account_balances.c.account_id == accounts.c.id
                        )
                        .outerjoin(_latest_snapshot, true())
                        .outerjoin(_delta_sums, true())
                        .outerjoin(journal, journal.c.account_id == accounts.c.id)
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
            # Each hot account's newest snapshot that `as_of` would trust,
            # against the journal up to its watermark.
            snapshots = []
            hot_ids = await conn.execute(
                select(account_balances.c.account_id).where(account_balances.c.hot)
            )
            for (hot_id,) in hot_ids.all():
                snap = (
                    await conn.execute(
                        _SNAPSHOT_AS_OF, {"account_id": hot_id, "as_of": _FAR_FUTURE}
                    )
                ).first()
                if snap is None:
                    continue
                journal_sums = (
                    await conn.execute(_posted_between(hot_id, None, snap.watermark))
                ).one()
                snapshots.append(
                    SnapshotCheck(
                        hot_id,
                        snap.seq,
                        snap.watermark,
                        snap.posted_debits,
                        snap.posted_credits,
                        int(journal_sums[0]),
                        int(journal_sums[1]),
                    )
                )
            return JournalFacts(
                snapshots=snapshots,
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
